/**
 * Gathers a host's reports into batches (issue 12, point 4): one message per batch, answered with
 * one answer per report, so the balancer's message rate — and, through its checkpoint journal, its
 * store writes — grows with hosts rather than with shares.
 *
 * The rule is Nagle's: while no batch is on its way, a result or failure leaves at once (with
 * whatever else is queued in the same turn of the event loop); while one is, reports queue and
 * leave together when it is answered. A checkpoint also waits up to `lingerMs` for company: it is
 * one of many and the next supersedes it, so a little delay costs nothing that the host's
 * checkpoint pace does not already make up for (checkpoint-pace.ts leads by the measured delay).
 * A batch never exceeds `maxBytes`: what does not fit goes in the next; a report too large for any
 * batch goes alone, and fails as it would have alone (E_MSG_TOO_LARGE), which the host handles.
 *
 * Must never import NATS or decide what a report's answer means: the host sends, and reads
 * answers; this only groups and routes them.
 */

import { ShoalError } from '../errors.ts'
import { MAX_REPORTS_PER_BATCH, type Report, type ReportAnswer, type ReportReply } from '../protocol/messages.ts'

export interface BatcherOptions {
  /** Sends one batch; resolves with one answer per report, in order (rejects for the whole batch). */
  send(reports: Report[]): Promise<ReportAnswer[]>
  /** Encoded size of one report (bytes). */
  sizeOf(report: Report): number
  /** Bytes a batch adds around its reports (envelope, array header), with room to spare. */
  overheadBytes: number
  maxBytes: number
  /** How long a checkpoint may wait for company (ms). */
  lingerMs: number
}

interface Queued {
  report: Report
  /** When it must leave at the latest (`performance.now()` ms). */
  due: number
  resolve: (r: ReportReply) => void
  reject: (e: unknown) => void
  /** Goes in a batch of its own (a batch it was in was refused as a whole). */
  alone?: boolean
}

export class ReportBatcher {
  private readonly queue: Queued[] = []
  private inFlight = false
  private timer: NodeJS.Timeout | undefined
  private immediate: NodeJS.Immediate | undefined
  private closed = false

  constructor(private readonly opts: BatcherOptions) {}

  /**
   * Sends `report` in the next batch. Resolves with its answer (ack or nack); rejects with the
   * batch's error (E_TIMEOUT, E_UNAVAILABLE, E_MSG_TOO_LARGE …) or the `err` answer the balancer
   * gave this report, as a ShoalError.
   */
  send(report: Report): Promise<ReportReply> {
    if (this.closed) return Promise.reject(new ShoalError('E_UNAVAILABLE', 'this host is stopping: report not sent'))
    return new Promise<ReportReply>((resolve, reject) => {
      const wait = report.t === 'checkpoint' ? this.opts.lingerMs : 0
      this.queue.push({ report, due: performance.now() + wait, resolve, reject })
      this.schedule()
    })
  }

  /** Reports queued and not yet sent. */
  get queued(): number {
    return this.queue.length
  }

  /** Fails every queued report with E_UNAVAILABLE; a batch on its way still settles. */
  close(): void {
    this.closed = true
    this.clearTimers()
    const err = new ShoalError('E_UNAVAILABLE', 'this host is stopping: report not sent')
    for (const q of this.queue.splice(0)) q.reject(err)
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer)
    if (this.immediate) clearImmediate(this.immediate)
    this.timer = undefined
    this.immediate = undefined
  }

  /** Arranges the next flush: now (next turn) when something is due, else when the first is. */
  private schedule(): void {
    if (this.inFlight || this.closed || !this.queue.length) return
    const now = performance.now()
    // A loop, not Math.min(...): a spread of a long queue overflows the call stack.
    let due = Number.POSITIVE_INFINITY
    for (const q of this.queue) if (q.due < due) due = q.due
    this.clearTimers()
    // setImmediate: reports queued in this same turn (several shares finishing together) share it.
    if (due <= now) this.immediate = setImmediate(() => this.flush())
    else this.timer = setTimeout(() => this.flush(), Math.ceil(due - now))
  }

  private flush(): void {
    this.clearTimers()
    if (this.inFlight || this.closed || !this.queue.length) return
    const batch = this.take()
    this.inFlight = true
    this.opts
      .send(batch.map((q) => q.report))
      .then(
        (answers) => {
          if (answers.length !== batch.length) {
            const err = new ShoalError('E_MSG_INVALID', `the balancer answered ${answers.length} of ${batch.length} reports`)
            for (const q of batch) q.reject(err)
            return
          }
          batch.forEach((q, i) => {
            const a = answers[i]!
            if (a.t === 'err') q.reject(new ShoalError(a.error.code, a.error.message, { details: a.error.details }))
            else q.resolve(a)
          })
        },
        (e: unknown) => {
          // A batch refused as a whole for its content: one report may be at fault, and must not
          // take the others down with it. Each goes again alone and gets its own verdict.
          const code = (e as ShoalError)?.code
          if (batch.length > 1 && (code === 'E_MSG_INVALID' || code === 'E_MSG_TOO_LARGE')) {
            for (const q of batch) q.alone = true
            this.queue.unshift(...batch)
            return
          }
          for (const q of batch) q.reject(e)
        },
      )
      .finally(() => {
        this.inFlight = false
        this.schedule()
      })
      .catch(() => undefined) // the handlers above never throw; this only keeps the chain quiet
  }

  /** The longest prefix of the queue that fits in a message (at least one report). */
  private take(): Queued[] {
    const first = this.queue.shift()!
    const out: Queued[] = [first]
    if (first.alone) return out
    let bytes = this.opts.overheadBytes + this.opts.sizeOf(first.report)
    while (this.queue.length && out.length < MAX_REPORTS_PER_BATCH && !this.queue[0]!.alone) {
      const size = this.opts.sizeOf(this.queue[0]!.report)
      if (bytes + size > this.opts.maxBytes) break
      bytes += size
      out.push(this.queue.shift()!)
    }
    return out
  }
}
