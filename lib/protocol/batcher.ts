/**
 * Gathers requests to one peer into batches (issue 12, point 4): one message per batch, answered
 * with one answer per item, in order, so a message rate grows with peers rather than with shares.
 * A host's reports to the balancer (worker-host/report-batcher.ts) and the balancer's assignments
 * to a host (balancer/apply/assign-sender.ts) both go this way.
 *
 * The rule is Nagle's: while no batch is on its way, an item leaves at once (with whatever else is
 * queued in the same turn of the event loop) unless it may linger (`lingerOf`); while one is,
 * items queue and leave together when it is answered. So batches grow by themselves exactly when
 * the peer is slow. A batch never exceeds `maxBytes` or `maxItems`: what does not fit goes in the
 * next; an item too large for any batch goes alone, and fails as it would have alone. A batch
 * refused as a whole for its content (E_MSG_INVALID, E_MSG_TOO_LARGE) is sent again item by item,
 * so one bad item fails alone.
 *
 * Must never import NATS or decide what an answer means: the caller sends and reads answers; this
 * only groups and routes them.
 */

import { ShoalError, type WireError } from '../errors.ts'

/** An item's answer: the peer's reply, or an error for that item alone. */
export type BatchAnswer<A> = A | { t: 'err'; error: WireError }

export interface BatcherOptions<T, A> {
  /** Sends one batch; resolves with one answer per item, in order (rejects for the whole batch). */
  send(items: T[]): Promise<Array<BatchAnswer<A>>>
  /** Encoded size of one item (bytes). */
  sizeOf(item: T): number
  /** Bytes a batch adds around its items (envelope, array header), with room to spare. */
  overheadBytes: number
  maxBytes: number
  maxItems: number
  /** How long an item may wait for company (ms); 0: it leaves at the next turn. */
  lingerOf(item: T): number
  /** The error message of items still queued when the batcher is closed. */
  closedMessage: string
  /** Nothing queued and nothing on its way (a batcher per peer can then be let go). */
  onIdle?(): void
  /** An item that must go in a batch of its own (absent: none). */
  aloneOf?(item: T): boolean
}

interface Queued<T, A> {
  item: T
  /** When it must leave at the latest (`performance.now()` ms). */
  due: number
  resolve: (a: A) => void
  reject: (e: unknown) => void
  /** Goes in a batch of its own (a batch it was in was refused as a whole). */
  alone?: boolean
}

export class Batcher<T, A extends { t: string }> {
  private readonly queue: Array<Queued<T, A>> = []
  private inFlight = false
  private timer: NodeJS.Timeout | undefined
  private immediate: NodeJS.Immediate | undefined
  private closed = false

  constructor(private readonly opts: BatcherOptions<T, A>) {}

  /**
   * Sends `item` in the next batch. Resolves with its answer; rejects with the batch's error
   * (E_TIMEOUT, E_UNAVAILABLE, E_MSG_TOO_LARGE …) or the `err` answer the peer gave this item, as
   * a ShoalError.
   */
  send(item: T): Promise<A> {
    if (this.closed) return Promise.reject(new ShoalError('E_UNAVAILABLE', this.opts.closedMessage))
    return new Promise<A>((resolve, reject) => {
      this.queue.push({ item, due: performance.now() + this.opts.lingerOf(item), resolve, reject, alone: this.opts.aloneOf?.(item) ?? false })
      this.schedule()
    })
  }

  /** Items queued and not yet sent. */
  get queued(): number {
    return this.queue.length
  }

  /** Fails every queued item with E_UNAVAILABLE; a batch on its way still settles. */
  close(): void {
    this.closed = true
    this.clearTimers()
    const err = new ShoalError('E_UNAVAILABLE', this.opts.closedMessage)
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
    if (this.inFlight || this.closed) return
    if (!this.queue.length) {
      this.opts.onIdle?.()
      return
    }
    const now = performance.now()
    // A loop, not Math.min(...): a spread of a long queue overflows the call stack.
    let due = Number.POSITIVE_INFINITY
    for (const q of this.queue) if (q.due < due) due = q.due
    this.clearTimers()
    // setImmediate: items queued in this same turn (several shares finishing together) share it.
    if (due <= now) this.immediate = setImmediate(() => this.flush())
    else this.timer = setTimeout(() => this.flush(), Math.ceil(due - now))
  }

  private flush(): void {
    this.clearTimers()
    if (this.inFlight || this.closed || !this.queue.length) return
    const batch = this.take()
    this.inFlight = true
    this.opts
      .send(batch.map((q) => q.item))
      .then(
        (answers) => {
          if (answers.length !== batch.length) {
            const err = new ShoalError('E_MSG_INVALID', `the peer answered ${answers.length} of ${batch.length} items`)
            for (const q of batch) q.reject(err)
            return
          }
          batch.forEach((q, i) => {
            const a = answers[i]!
            if (isErr(a)) q.reject(new ShoalError(a.error.code, a.error.message, { details: a.error.details }))
            else q.resolve(a)
          })
        },
        (e: unknown) => {
          // A batch refused as a whole for its content: one item may be at fault, and must not
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

  /** The longest prefix of the queue that fits in a message (at least one item). */
  private take(): Array<Queued<T, A>> {
    const first = this.queue.shift()!
    const out = [first]
    if (first.alone) return out
    let bytes = this.opts.overheadBytes + this.opts.sizeOf(first.item)
    while (this.queue.length && out.length < this.opts.maxItems && !this.queue[0]!.alone) {
      const size = this.opts.sizeOf(this.queue[0]!.item)
      if (bytes + size > this.opts.maxBytes) break
      bytes += size
      out.push(this.queue.shift()!)
    }
    return out
  }
}

function isErr<A extends { t: string }>(a: BatchAnswer<A>): a is { t: 'err'; error: WireError } {
  return a.t === 'err'
}
