/**
 * What becomes of a share that stops running where it was: lost with its host (failover), failed
 * by its processor (retried elsewhere while attempts remain, else its job fails), or put back to
 * pending for any other reason. It goes back to pending at its last durable checkpoint and the
 * next placement gives it a new epoch on another host; no other share is touched.
 */

import { ShoalError, toWire, type WireError } from '../errors.ts'
import type { Failover, MoveReason } from '../protocol/messages.ts'
import type { Completion } from './completion.ts'
import type { BalancerContext } from './context.ts'
import type { History } from './history.ts'
import { isFinalJob as isFinal } from './ledger.ts'
import type { Records } from './records.ts'
import type { ShareRecord } from './store.ts'

/**
 * A failed share is retried on another host (up to shares.maxAttempts) when its error says it may
 * succeed there: the error's own `retryable` flag (a processor marks its errors, docs/PROCESSORS.md),
 * or a code that is about the host rather than the input (a processor module that did not load
 * there, a worker thread that died, a bug).
 */
const HOST_SHARE_ERRORS = new Set(['E_PROCESSOR_LOAD', 'E_INTERNAL'])
function shareErrorRetryable(error: WireError): boolean {
  return error.retryable === true || HOST_SHARE_ERRORS.has(error.code)
}

export class ShareFate {
  constructor(
    private readonly ctx: BalancerContext,
    private readonly records: Records,
    private readonly history: History,
    private readonly completion: Pick<Completion, 'finishJob'>,
  ) {}

  /** Failover: every share running on a lost host goes back to pending at its last checkpoint. */
  reclaim(hostId: string, reason: string): void {
    const lost = [...this.ctx.ledger.runningOn(hostId)]
    if (!lost.length) return
    this.ctx.log.warn({ host: hostId, reason, shares: lost.map((s) => s.shareId) }, `re-dispatching ${lost.length} share(s) from their last checkpoint`)
    for (const s of lost) this.requeue(s, 'host-lost')
  }

  /** Puts a running share back to pending at its last durable checkpoint, and places it again. */
  requeue(s: ShareRecord, reason: MoveReason): void {
    if (s.status !== 'running') return
    const { tracking, metrics } = this.ctx
    if (reason === 'host-lost' && s.host) {
      const live = tracking.live.get(s.shareId)
      const lastKnown = live && live.epoch === s.epoch ? Math.max(live.position, s.position) : s.position
      const f: Failover = { shareId: s.shareId, jobId: s.jobId, hostId: s.host, at: Date.now(), checkpointPosition: s.position, lastKnownPosition: lastKnown, unitsRedone: lastKnown - s.position }
      this.history.addFailover(f)
      metrics.failovers.inc()
      metrics.unitsRedone.inc(Math.max(0, f.unitsRedone))
      tracking.openFailover.set(s.shareId, f)
    }
    this.ctx.ledger.requeue(s, Date.now())
    tracking.live.delete(s.shareId)
    tracking.assignedAt.delete(s.shareId)
    tracking.pendingReason.set(s.shareId, reason)
    this.records.persistShare(s).then(
      () => this.ctx.kick(),
      (e: unknown) => this.ctx.failed('storing a share put back to pending', e),
    )
  }

  /**
   * A share's processor failed on a host: retry from the last checkpoint on another host while
   * attempts remain (shares.maxAttempts), else fail the job with the error's code and message.
   */
  async failed(s: ShareRecord, hostId: string, error: WireError): Promise<void> {
    const { ledger, log } = this.ctx
    s.attempts += 1
    if (!s.failedOn.includes(hostId)) s.failedOn.push(hostId)
    s.error = error
    s.updatedAt = Date.now()
    const job = ledger.job(s.jobId)
    const max = this.ctx.config().shares.maxAttempts
    if (job && !isFinal(job.state) && shareErrorRetryable(error) && s.attempts < max) {
      log.warn({ share: s.shareId, host: hostId, attempt: s.attempts, of: max, error: error.message }, 'share failed: retrying from its last checkpoint on another host')
      this.requeue(s, 'retry')
      return
    }
    if (s.status === 'running' || s.status === 'pending') ledger.fail(s, Date.now())
    this.ctx.tracking.assignedAt.delete(s.shareId)
    await this.records.persistShare(s)
    if (job && !isFinal(job.state)) {
      log.warn({ share: s.shareId, host: hostId, error }, 'share failed for good')
      const attempts = s.attempts > 1 ? ` (after ${s.attempts} attempts)` : ''
      await this.completion.finishJob(job, 'failed', {
        error: toWire(
          new ShoalError('E_JOB_FAILED', `job ${job.jobId} failed: share ${s.shareId} on host ${hostId}${attempts}: ${error.code}: ${error.message}`, {
            cause: error,
            details: { shareId: s.shareId, hostId, code: error.code, attempts: s.attempts },
          }),
        ),
      })
    }
  }
}
