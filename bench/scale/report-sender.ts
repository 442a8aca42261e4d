/**
 * Host → balancer report requests for many synthetic hosts sharing one NATS connection. A report
 * must be answered on the inbox of the host it names (`_INBOX.<cluster>.host-<id>.…`, see
 * lib/protocol/bus.ts), so the Bus's own request (one connection, one inbox) would open and close a
 * subscription per report; here each host subscribes once to its inbox and answers are matched to
 * requests by reply subject. Encoding and validation are the project's Codec and schemas, so the
 * balancer sees exactly what a real host sends.
 *
 * A request that gets no answer within the timeout settles as `timeout` (swept every 50 ms, so up
 * to 50 ms late); it never throws. An answer counts only if it arrives before that: a late one is
 * ignored, as the host's own request would have given up on it.
 *
 * Must never decide what to do with an answer: the synthetic host does.
 */

import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import type { Codec } from '../../lib/protocol/codec.ts'
import { errReplySchema, reportBatchReplySchema, reportReplySchema, type Report, type ReportAnswer, type ReportBatch, type ReportReply } from '../../lib/protocol/messages.ts'
import { hostIdentity, type Subjects } from '../../lib/protocol/subjects.ts'

/** How one report fared. */
export type ReportOutcome =
  | { t: 'answer'; reply: ReportReply; ms: number }
  | { t: 'timeout' }
  | { t: 'error'; message: string }

/** How one request (a report, or a batch of them) fared. */
export type SendOutcome = ReportOutcome | { t: 'answers'; answers: ReportAnswer[]; ms: number }

interface Pending {
  resolve: (o: SendOutcome) => void
  sentAt: number
  deadline: number
  batch: boolean
}

const SWEEP_MS = 50

export class ReportSender {
  private readonly pending = new Map<string, Pending>()
  private readonly subs: Subscription[] = []
  private seq = 0
  private readonly sweeper: NodeJS.Timeout

  constructor(
    private readonly nc: NatsConnection,
    private readonly codec: Codec,
    private readonly subjects: Subjects,
    private readonly timeoutMs: number,
  ) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS)
  }

  /** Starts receiving the answers to host `hostId`'s reports. */
  listen(hostId: string): void {
    this.subs.push(
      this.nc.subscribe(`${this.subjects.inbox(hostIdentity(hostId))}.*`, {
        callback: (err, m) => {
          if (err) return
          const p = this.pending.get(m.subject)
          if (!p) return // answered after its timeout: the host has moved on
          this.pending.delete(m.subject)
          const ms = performance.now() - p.sentAt
          if (p.batch) {
            const b = this.codec.decode(reportBatchReplySchema, m.data)
            if (b.ok) return p.resolve({ t: 'answers', answers: b.value.answers, ms })
          } else {
            const d = this.codec.decode(reportReplySchema, m.data)
            if (d.ok) return p.resolve({ t: 'answer', reply: d.value, ms })
          }
          const e = this.codec.decode(errReplySchema, m.data)
          p.resolve({ t: 'error', message: e.ok ? `${e.value.error.code}: ${e.value.error.message}` : 'invalid answer' })
        },
      }),
    )
  }

  /**
   * Sends `report` (or a batch of them, as hosts do) on host `hostId`'s report subject and waits
   * for the answer (or the timeout).
   */
  send(hostId: string, report: Report | ReportBatch): Promise<SendOutcome> {
    const reply = `${this.subjects.inbox(hostIdentity(hostId))}.${(++this.seq).toString(36)}`
    let data: Uint8Array
    try {
      data = this.codec.encode(report)
    } catch (e) {
      return Promise.resolve({ t: 'error', message: (e as Error).message })
    }
    return new Promise<SendOutcome>((resolve) => {
      const sentAt = performance.now()
      this.pending.set(reply, { resolve, sentAt, deadline: sentAt + this.timeoutMs, batch: report.t === 'reports' })
      try {
        this.nc.publish(this.subjects.report(hostId), data, { reply })
      } catch (e) {
        this.pending.delete(reply)
        resolve({ t: 'error', message: (e as Error).message })
      }
    })
  }

  private sweep(): void {
    const now = performance.now()
    // Insertion order is deadline order (one timeout for all): stop at the first still waiting.
    for (const [reply, p] of this.pending) {
      if (p.deadline > now) break
      this.pending.delete(reply)
      p.resolve({ t: 'timeout' })
    }
  }

  close(): void {
    clearInterval(this.sweeper)
    for (const s of this.subs) s.unsubscribe()
    for (const p of this.pending.values()) p.resolve({ t: 'error', message: 'closed' })
    this.pending.clear()
  }
}
