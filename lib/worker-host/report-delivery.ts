/**
 * How a host's reports reach the balancer: each share's reports in order (a chain per share), a
 * checkpoint sent once (the next one supersedes it), a result or failure sent again, with
 * back-off, until a balancer of the current term answers, because it is the only copy of that
 * work. A report that can never be delivered (too large, refused as malformed) becomes a failure
 * report saying why, so the job fails rather than hangs.
 */

import type { ShoalError } from '../errors.ts'
import type { LogLimiter, Logger } from '../log.ts'
import type { HostMetrics } from '../metrics/host-metrics.ts'
import { PROTOCOL_VERSION as V, type Report, type ReportReply } from '../protocol/messages.ts'

/** Most time between two sends of an unacknowledged result: it lands within a second of the store coming back. */
const RETRY_MAX_MS = 1_000

/** What `report` may be told about a report beyond its message. */
export interface ReportOptions {
  /** Checked just before sending: true skips the report (a newer one of the share supersedes it). */
  superseded?: () => boolean
  /** Called once the balancer acknowledged the report durable. */
  durable?: () => void
}

export interface ReportDeliveryOptions {
  hostId: string
  log: Logger
  limited: LogLimiter
  metrics: HostMetrics
  /** Sends one report, batched with others (report-batcher.ts). */
  send: (report: Report) => Promise<ReportReply>
  /** The highest balancer term this host has seen; an answer from a lower one does not count. */
  maxTerm: () => number
  /** A balancer of `term` answered: the host follows it from now. */
  observeTerm: (term: number) => void
  /** The balancer refused the report for good (stale epoch, share gone): the share is dropped. */
  onNack: (shareId: string, msg: Report, why: string) => void
  stopped: () => boolean
}

export class ReportDelivery {
  /** Per-share chain of reports, so a share's reports reach the balancer in order. */
  readonly #chains = new Map<string, Promise<void>>()

  constructor(private readonly o: ReportDeliveryOptions) {}

  /**
   * Sends a report in order after the share's earlier ones. A checkpoint is sent once (the next
   * one supersedes it); a result or failure is retried until the balancer answers. `msg` may be
   * built only when its turn comes (a large state is then uploaded only if still needed).
   */
  report(shareId: string, msg: Report | (() => Promise<Report>), mustArrive: boolean, opts: ReportOptions = {}): Promise<void> {
    const { metrics, limited, log } = this.o
    const prev = this.#chains.get(shareId) ?? Promise.resolve()
    const next = prev.then(async () => {
      if (opts.superseded?.()) {
        metrics.checkpointsSuperseded.inc()
        return
      }
      let m: Report
      try {
        m = typeof msg === 'function' ? await msg() : msg
      } catch (e) {
        metrics.checkpointFailures.inc({ cause: 'error' })
        limited.warn('checkpoint-state', { share: shareId, err: (e as Error).message }, 'checkpoint not sent: its state could not be stored')
        return
      }
      if (opts.superseded?.()) {
        metrics.checkpointsSuperseded.inc()
        return
      }
      await this.send(shareId, m, mustArrive, opts.durable)
    })
    this.#chains.set(shareId, next)
    // send() handles every failure itself; this only forgets the finished chain.
    next
      .finally(() => {
        if (this.#chains.get(shareId) === next) this.#chains.delete(shareId)
      })
      .catch((e: unknown) => log.error({ share: shareId, err: (e as Error).message }, 'report chain failed'))
    return next
  }

  /**
   * Sends one report. A checkpoint is tried once (the next one supersedes it; a failure is counted
   * and logged, rate-limited). A result or failure is sent again, with back-off, until a balancer
   * of the current term answers: an ack means durable, a nack is a refusal for good (stale epoch,
   * share gone) and drops the share. Anything else (no answer, no balancer, an error reply, an
   * answer from a deposed leader) is transient.
   */
  private async send(shareId: string, msg: Report, mustArrive: boolean, durable?: () => void): Promise<void> {
    const { metrics, limited } = this.o
    let wait = 100
    let replaced = false
    for (;;) {
      if (this.o.stopped()) return
      let trouble: { cause: 'timeout' | 'unavailable' | 'refused' | 'error'; message: string }
      try {
        const t0 = performance.now()
        const reply = await this.o.send(msg)
        if (reply.term < this.o.maxTerm()) {
          trouble = { cause: 'refused', message: `answer from balancer term ${reply.term}, which no longer leads (term ${this.o.maxTerm()} does)` }
        } else {
          this.o.observeTerm(reply.term)
          if (reply.t === 'nack') {
            if (msg.t === 'checkpoint') metrics.checkpointFailures.inc({ cause: 'refused' })
            this.o.onNack(shareId, msg, reply.error.message)
            return
          }
          if (msg.t === 'checkpoint') metrics.checkpointLatency.observe((performance.now() - t0) / 1000)
          durable?.()
          return
        }
      } catch (e) {
        const err = e as ShoalError
        if (mustArrive && !replaced && (err.code === 'E_MSG_TOO_LARGE' || err.code === 'E_MSG_INVALID') && msg.t !== 'checkpoint') {
          msg = this.undeliverable(msg, err)
          replaced = true
          continue
        }
        trouble = { cause: err.code === 'E_TIMEOUT' ? 'timeout' : err.code === 'E_UNAVAILABLE' ? 'unavailable' : 'error', message: err.message }
      }
      if (!mustArrive) {
        metrics.checkpointFailures.inc({ cause: trouble.cause })
        limited.warn('checkpoint', { share: shareId, cause: trouble.cause, err: trouble.message }, 'checkpoint not acknowledged (the next one will be tried)')
        return
      }
      metrics.reportRetries.inc({ type: msg.t })
      limited.warn(`report:${msg.t}`, { share: shareId, t: msg.t, cause: trouble.cause, err: trouble.message, retryInMs: wait }, `${msg.t} report not acknowledged yet: kept and sent again`)
      await new Promise((r) => setTimeout(r, wait))
      wait = Math.min(RETRY_MAX_MS, wait * 2)
    }
  }

  /** The failure report that replaces a report that can never be delivered. */
  private undeliverable(msg: Exclude<Report, { t: 'checkpoint' }>, err: ShoalError): Report {
    const what = msg.t === 'done' ? 'its result' : 'its failure report'
    this.o.log.error({ share: msg.shareId, t: msg.t, err: err.message }, `share ${msg.shareId}: ${what} cannot be delivered; reporting the share failed instead`)
    const error = { code: err.code, message: `share ${msg.shareId}: ${what} cannot be delivered: ${err.message}`.slice(0, 4_000), retryable: false }
    return { v: V, t: 'failed', hostId: this.o.hostId, shareId: msg.shareId, epoch: msg.epoch, error }
  }
}
