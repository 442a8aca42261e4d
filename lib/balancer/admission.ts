/**
 * Admitting a job, once: checked (range, processor known to the pool, input a host accepts and an
 * assignment can carry), split into shares, and stored before it counts as admitted. A second
 * submission of the same id is the same job when it says the same, and refused (E_JOB_EXISTS,
 * naming what differs) when it does not.
 */

import { ShoalError } from '../errors.ts'
import { PROTOCOL_VERSION as V, type JobSummary, type Submit } from '../protocol/messages.ts'
import { assignCommand } from './assign-command.ts'
import type { BalancerContext } from './context.ts'
import { splitRange } from './core/split-range.ts'
import { newPendingShare, shareIdOf } from './ledger.ts'
import type { Records } from './records.ts'
import type { JobRecord, ShareRecord } from './store.ts'
import { submissionDiffers } from './submission.ts'

export class Admission {
  /** Submissions being validated and stored: a second submit of the same id waits for them. */
  readonly #admitting = new Map<string, Promise<unknown>>()
  #materializing = false

  /**
   * `lazy`: whether shares may be left without records of their own (the job record's
   * `initialShares` stands for them): only while every balancer reads that (recovery.ts).
   */
  constructor(
    private readonly ctx: BalancerContext,
    private readonly records: Records,
    private readonly lazy: () => boolean,
  ) {}

  /** A job still being admitted (not to be forgotten meanwhile). */
  admitting(jobId: string): boolean {
    return this.#admitting.has(jobId)
  }

  /**
   * Admits a job, once: a second submission of the same id (a client's retry, perhaps while the
   * first is still being validated or stored) waits for the first and returns its job.
   * `mine` checks that `owner` may see an existing job of that id (api.ts).
   */
  async submit(m: Submit, owner: string, mine: (job: JobRecord) => JobRecord): Promise<JobSummary> {
    // Wait out an admission of the same id, and the deletion of a job of that id forgotten a
    // moment ago (its records must be gone before the id is reused). From the last check on,
    // nothing awaits until this admission is registered: two submissions never both admit.
    for (;;) {
      const inFlight = this.#admitting.get(m.jobId)
      if (inFlight) {
        await inFlight.catch(() => undefined)
        continue
      }
      const removal = this.records.forgetting(m.jobId)
      if (removal) {
        await removal
        continue
      }
      break
    }
    const existing = this.ctx.ledger.job(m.jobId)
    if (existing) return this.same(m, mine(existing))
    if (this.records.archive.has(m.jobId)) {
      // Finished and out of memory, its records kept: the same job, read back from them.
      const archived = await this.records.archived(m.jobId)
      if (archived) return this.same(m, mine(archived.job), archived.shares)
      // Its record is gone (deleted by hand): the id is free, and nothing of the old job may be
      // deleted later under it. A check again, as the read above awaited.
      this.records.archive.delete(m.jobId)
      return this.submit(m, owner, mine)
    }
    const admission = this.admit(m, owner)
    this.#admitting.set(m.jobId, admission)
    try {
      return await admission
    } finally {
      if (this.#admitting.get(m.jobId) === admission) this.#admitting.delete(m.jobId)
    }
  }

  /** A submission of an existing job's id: that job when it says the same, else E_JOB_EXISTS. */
  private same(m: Submit, job: JobRecord, shares?: readonly ShareRecord[]): JobSummary {
    const differs = submissionDiffers(job, m)
    if (differs.length) {
      throw new ShoalError('E_JOB_EXISTS', `job ${m.jobId} exists with another ${differs.join(', ')}: submit it again exactly as before to follow it, or choose another job id`, { details: { jobId: m.jobId, differs } })
    }
    return this.records.summary(job, Date.now(), false, shares)
  }

  private async admit(m: Submit, owner: string): Promise<JobSummary> {
    const { membership, ledger } = this.ctx
    const now = Date.now()
    if (!(m.to > m.from)) {
      throw new ShoalError('E_BAD_RANGE', `range [${m.from}, ${m.to}) is empty: 'to' must be greater than 'from'`)
    }
    const known = new Set(membership.all().filter((h) => h.state !== 'left').flatMap((h) => h.heartbeat.processors))
    const poolEmpty = membership.alive().length === 0
    if (!poolEmpty && !known.has(m.processor)) {
      throw new ShoalError(
        'E_UNKNOWN_PROCESSOR',
        `no host in the pool registers processor '${m.processor}' (registered: ${[...known].sort().join(', ') || 'none'})`,
        { details: { processor: m.processor } },
      )
    }
    const { maxPerJob, perJob, minUnitsPerShare } = this.ctx.config().shares
    if (m.shares !== undefined && m.shares > maxPerJob) {
      throw new ShoalError('E_BAD_JOB', `shares must be at most shares.maxPerJob (${maxPerJob}) (got ${m.shares})`)
    }
    this.assertAssignable(m)
    const candidates = membership.alive().filter((h) => h.heartbeat.processors.includes(m.processor))
    await this.validateInput(m, candidates.map((h) => h.hostId))

    const autoShares = Math.max(1, candidates.reduce((n, h) => n + h.heartbeat.capacity.slots, 0))
    const wanted = m.shares ?? (perJob === 'auto' ? autoShares : perJob)
    const ranges = splitRange(m.from, m.to, Math.min(wanted, maxPerJob), minUnitsPerShare)
    const job: JobRecord = {
      jobId: m.jobId,
      owner,
      processor: m.processor,
      input: m.input,
      from: m.from,
      to: m.to,
      requiredTags: m.tags,
      memoryBytesPerShare: m.memoryBytesPerShare,
      spread: m.spread,
      state: 'waiting',
      submittedAt: now,
      reason: poolEmpty ? 'no hosts in the pool yet' : undefined,
      nextShare: ranges.length,
    }
    const shares = ranges.map(([from, to], i) => newPendingShare(job.jobId, i, from, to, now))
    if (this.lazy()) {
      // One write: the shares are in the job record's range until each is first assigned, which
      // writes its own record before the host hears of it (store.ts `initialShares`).
      job.initialShares = ranges.length
      await this.records.persistJob(job)
    } else {
      // A balancer that does not read `initialShares` may take over: every share gets its record.
      await Promise.all([this.records.persistJob(job), ...shares.map((s) => this.records.persistShare(s))])
    }
    // Until its records are durable the job is not admitted, and no pass sees it.
    ledger.addJob(job)
    for (const s of shares) ledger.addShare(s)
    this.ctx.log.info({ job: job.jobId, processor: job.processor, from: m.from, to: m.to, shares: ranges.length }, 'job admitted')
    this.ctx.kick()
    return this.records.summary(job, now, false)
  }

  /**
   * Gives every share of the open jobs admitted in one write a record of its own, then drops the
   * job's `initialShares`: a balancer that does not read that format has appeared (a standby of an
   * older release) and may take over. Shares first, so that no moment leaves one unrecorded.
   */
  materialize(): void {
    if (this.#materializing) return
    const jobs = [...this.ctx.ledger.openJobs()].filter((j) => j.initialShares !== undefined)
    if (!jobs.length) return
    this.#materializing = true
    this.ctx.log.warn({ jobs: jobs.length }, 'a balancer that does not read initialShares is in the cluster: writing a record for every share of the jobs admitted in one write')
    const one = async (job: JobRecord) => {
      await Promise.all(this.ctx.ledger.sharesOf(job.jobId).filter((s) => s.status === 'pending').map((s) => this.records.persistShare(s)))
      job.initialShares = undefined
      await this.records.persistJob(job)
    }
    Promise.all(jobs.map(one))
      .catch((e: unknown) => this.ctx.failed('writing the records of shares admitted in one write', e))
      .finally(() => {
        this.#materializing = false
      })
  }

  /**
   * Refuses an input no assignment could carry: a share's assignment holds the input and a few
   * more fields than the submission did, so an input just under the limit would be admitted and
   * then never sent (issue 10 saw 576 tries in 8 s). Measured on the largest assignment the job
   * can produce, without its checkpoint state.
   */
  private assertAssignable(m: Submit): void {
    const codec = this.ctx.bus.codec
    const big = Number.MAX_SAFE_INTEGER
    const bytes = codec.sizeOf(assignCommand(m, { shareId: shareIdOf(m.jobId, big), from: m.to, to: m.to, position: m.to, unitsDone: m.to }, big, big))
    if (bytes <= codec.maxMessageBytes) return
    const inputBytes = codec.sizeOf(m.input)
    throw new ShoalError('E_MSG_TOO_LARGE', `input is ${inputBytes} bytes: a share's assignment would be ${bytes} bytes, over protocol.maxMessageBytes (${codec.maxMessageBytes}); keep the input under ${codec.maxMessageBytes - (bytes - inputBytes)} bytes, or pass large data by reference (a path or URL the hosts can read)`, {
      details: { inputBytes, assignmentBytes: bytes, limit: codec.maxMessageBytes },
    })
  }

  /** Asks one host that has the processor to check the input; an unreachable host does not block. */
  private async validateInput(m: Submit, hostIds: string[]): Promise<void> {
    const hostId = hostIds[0]
    if (!hostId) return
    try {
      await this.ctx.command(hostId, { v: V, t: 'validate', term: this.ctx.fence.term, processor: m.processor, input: m.input })
    } catch (e) {
      if (e instanceof ShoalError && (e.code === 'E_TIMEOUT' || e.code === 'E_UNAVAILABLE')) return
      throw new ShoalError('E_BAD_JOB', `input rejected by processor '${m.processor}': ${(e as Error).message}`, { cause: e })
    }
  }
}
