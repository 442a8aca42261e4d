/**
 * How jobs end: a job whose shares are all done is completed with their results merged (by a host
 * that has the processor: the balancer never loads processor code); a failed or cancelled job has
 * its open shares cancelled and dropped; a finished job past `jobs.retainMs` leaves memory.
 */

import { ShoalError, toWire } from '../errors.ts'
import { PROTOCOL_VERSION as V } from '../protocol/messages.ts'
import type { BalancerContext } from './context.ts'
import { isFinalJob as isFinal } from './ledger.ts'
import type { Records } from './records.ts'
import { expiredJobs } from './retention.ts'
import type { JobRecord } from './store.ts'

const MERGE_TIMEOUT_MS = 30_000
/** Partial results per merge command: a batch must fit in a message. */
const MERGE_BATCH = 256

export class Completion {
  /** Jobs whose results are being merged: not completed twice, not forgotten meanwhile. */
  readonly #merging = new Set<string>()

  constructor(
    private readonly ctx: BalancerContext,
    private readonly records: Records,
  ) {}

  /** Completes a job whose shares are all done (in the background; errors are logged). */
  complete(jobId: string): void {
    this.maybeComplete(jobId).catch((e: unknown) => this.ctx.failed('completing a job', e))
  }

  busy(jobId: string): boolean {
    return this.#merging.has(jobId)
  }

  private async maybeComplete(jobId: string): Promise<void> {
    const { ledger } = this.ctx
    const job = ledger.job(jobId)
    const shares = ledger.sharesOf(jobId)
    if (!job || isFinal(job.state) || this.#merging.has(jobId)) return
    if (!shares.length || ledger.doneCount(jobId) !== shares.length) return
    this.#merging.add(jobId)
    try {
      // By end too: a share cut to nothing ([a, a), its tail took it all) goes before its tail.
      const sorted = [...shares].sort((a, b) => a.from - b.from || a.to - b.to)
      // Never a result from part of the range: a share record missing (a store edited by hand, a
      // release that misread the store) must fail the job, not shrink it.
      const gap = rangeGap(job, sorted)
      if (gap) {
        await this.finishJob(job, 'failed', { error: toWire(new ShoalError('E_INTERNAL', `job ${jobId} cannot complete: its shares do not cover its range (${gap}); no result is given rather than a wrong one`)) })
        return
      }
      const results = sorted.map((s) => s.result)
      const result = results.length === 1 ? results[0] : await this.merge(job, results)
      await this.finishJob(job, 'completed', { result })
      this.ctx.log.info({ job: jobId, ms: (job.finishedAt ?? 0) - job.submittedAt }, 'job completed')
    } catch (e) {
      const err = e as ShoalError
      if (err.code === 'E_PROCESSOR_THREW') {
        await this.finishJob(job, 'failed', { error: toWire(new ShoalError('E_JOB_FAILED', `job ${jobId} failed: merge threw: ${err.message}`, { cause: err })) })
      } else {
        this.ctx.log.warn({ job: jobId, err: err.message }, 'merge not possible yet; will retry next cycle')
      }
    } finally {
      this.#merging.delete(jobId)
    }
  }

  /** Merges on a host that has the processor, in batches that fit in a message. */
  private async merge(job: JobRecord, results: unknown[]): Promise<unknown> {
    const host = this.ctx.membership.alive().find((h) => h.heartbeat.processors.includes(job.processor))
    if (!host) throw new ShoalError('E_UNAVAILABLE', `no live host with processor '${job.processor}' to merge results`)
    let acc: unknown[] = results
    while (acc.length > 1) {
      const next: unknown[] = []
      for (let i = 0; i < acc.length; i += MERGE_BATCH) {
        const part = acc.slice(i, i + MERGE_BATCH)
        if (part.length === 1) {
          next.push(part[0])
          continue
        }
        const reply = await this.ctx.command(host.hostId, { v: V, t: 'merge', term: this.ctx.fence.term, processor: job.processor, input: job.input, results: part }, MERGE_TIMEOUT_MS)
        if (reply.t !== 'merged') throw new ShoalError('E_INTERNAL', `unexpected merge reply '${reply.t}'`)
        next.push(reply.result)
      }
      acc = next
    }
    return acc[0]
  }

  async finishJob(job: JobRecord, state: 'completed' | 'failed' | 'cancelled', how: { result?: unknown; error?: JobRecord['error'] }): Promise<void> {
    const { ledger, tracking } = this.ctx
    ledger.endJob(job, state, Date.now())
    if ('result' in how) job.result = how.result
    if (how.error) job.error = how.error
    if (state === 'cancelled') job.error = toWire(new ShoalError('E_CANCELLED', `job ${job.jobId} was cancelled`))
    this.ctx.metrics.jobDuration.observe({ state }, Math.max(0, job.finishedAt! - job.submittedAt) / 1000)
    // The job's shares are settled: what was tracked of them (assigned at, live, refusals, ...) goes.
    for (const s of ledger.sharesOf(job.jobId)) tracking.forgetShare(s.shareId)
    await this.records.persistJob(job)
    if (state !== 'completed') {
      // Every open share cancelled at once in memory, then written together: a waiting job of
      // 10,000 shares is one round of writes, not 10,000 one after another.
      const open = ledger.sharesOf(job.jobId).filter((s) => s.status === 'running' || s.status === 'pending')
      await Promise.all(
        open.map(async (s) => {
          const { host, epoch } = s
          const garbage = s.stateRef?.name
          ledger.cancel(s, Date.now())
          await this.records.persistShare(s)
          this.records.dropState(garbage)
          // Best effort: a host that misses it learns from its next heartbeat's answer.
          if (host) this.ctx.command(host, { v: V, t: 'drop', term: this.ctx.fence.term, shareId: s.shareId, epoch }).catch(() => undefined)
        }),
      )
    }
    this.records.publishJob(job)
  }

  /**
   * Finished jobs older than jobs.retainMs leave memory; their records stay for
   * jobs.recordRetainMs (records.ts `retire`). `admitting` says a job is still being admitted.
   */
  forgetExpired(now: number, admitting: (jobId: string) => boolean): void {
    if (!this.ctx.acting()) return
    for (const jobId of expiredJobs(this.ctx.ledger.allJobs(), now, this.ctx.config().jobs.retainMs)) {
      if (this.#merging.has(jobId) || admitting(jobId)) continue
      const job = this.ctx.ledger.job(jobId)!
      const shares = this.ctx.ledger.forget(jobId)
      for (const s of shares) this.ctx.tracking.forgetShare(s.shareId)
      this.records.retire(job, shares)
    }
  }
}

/** Where shares sorted by `from` fail to tile [job.from, job.to) exactly, or undefined. */
export function rangeGap(job: Pick<JobRecord, 'from' | 'to'>, sorted: ReadonlyArray<{ from: number; to: number }>): string | undefined {
  let at = job.from
  for (const s of sorted) {
    if (s.from !== at) return s.from > at ? `[${at}, ${s.from}) has no share` : `[${s.from}, ${at}) is in two shares`
    at = s.to
  }
  return at === job.to ? undefined : `[${Math.min(at, job.to)}, ${Math.max(at, job.to)}) ${at < job.to ? 'has no share' : 'is past the range'}`
}
