/**
 * Durable records and what clients see of them: share, job and host records written through the
 * term's store, checkpoints through the per-host journal, state objects dropped once nothing refers
 * to them, job events published (with progress, at most when it changed), and finished jobs that
 * left memory read back from their records until those are deleted (archive.ts).
 */

import type { CheckpointMsg } from '../protocol/messages.ts'
import { PROTOCOL_VERSION as V } from '../protocol/messages.ts'
import { Archive, shareIdsOf } from './archive.ts'
import type { BlobProxy } from './blob-proxy.ts'
import type { CheckpointJournal, JournalEntry } from './checkpoint-journal.ts'
import type { BalancerContext } from './context.ts'
import { jobOwner } from './ownership.ts'
import type { JobRecord, ShareRecord, Store } from './store.ts'
import { jobSummary } from './summaries.ts'

export class Records {
  /** The units done last published per job, so unchanged progress is not published again. */
  readonly #lastProgress = new Map<string, number>()
  /** Finished jobs out of memory whose records are kept (jobs.recordRetainMs). */
  readonly archive = new Archive()
  /** Forgotten jobs whose records are still being deleted: their ids are not free yet. */
  readonly #forgetting = new Map<string, Promise<void>>()

  constructor(
    private readonly ctx: BalancerContext,
    readonly store: Store,
    private readonly journal: CheckpointJournal,
    private readonly blobs: BlobProxy,
  ) {}

  /**
   * Makes a running share's checkpoint durable: in its host's journal record when it fits there
   * (one write per host, however many of its shares checkpointed), else in the share record.
   */
  async persistCheckpoint(s: ShareRecord, now: number): Promise<void> {
    const entry: JournalEntry = { shareId: s.shareId, epoch: s.epoch, position: s.position, unitsDone: s.unitsDone, ...(s.stateRef ? { stateRef: s.stateRef } : { state: s.state }), stateBytes: s.stateBytes }
    const fit = s.host === null ? ({ ok: false } as const) : this.journal.fits(s.host, entry)
    if (fit.ok) return this.journal.record(s.host!, entry, fit.bytes)
    s.updatedAt = now
    await this.persistShare(s)
  }

  /** Writes a share record; once durable, a journal entry it makes stale is forgotten. */
  async persistShare(s: ShareRecord): Promise<void> {
    const run = { status: s.status, host: s.host, epoch: s.epoch, position: s.position }
    await this.store.putShare(s)
    this.journal.covered(s.shareId, run)?.catch((e: unknown) => this.ctx.failed('deleting a host\'s journal record', e))
  }

  async persistJob(j: JobRecord): Promise<void> {
    await this.store.putJob(j)
  }

  /** Deletes a state object once the record that referenced it is durably replaced (best effort). */
  dropState(name: string | undefined): void {
    if (!name) return
    this.blobs.forget(name)
    this.store.deleteState(name).catch(() => undefined) // best effort, never rejects
  }

  /** A job as clients see it, with its shares' live positions (`shares` for a job out of memory). */
  summary(job: JobRecord, now: number, withShares: boolean, shares: readonly ShareRecord[] = this.ctx.ledger.sharesOf(job.jobId)) {
    return jobSummary(job, shares, this.ctx.tracking.live, now, withShares)
  }

  publishJob(job: JobRecord): void {
    const summary = this.summary(job, Date.now(), false)
    this.#lastProgress.set(job.jobId, summary.unitsDone)
    try {
      this.ctx.bus.publish(this.ctx.subjects.jobEvents(jobOwner(job), job.jobId), { v: V, t: 'job', job: summary })
    } catch (e) {
      this.ctx.log.error({ job: job.jobId, err: (e as Error).message }, 'cannot publish job event')
    }
  }

  /** Publishes each running job whose progress changed since it was last published. */
  publishProgress(): void {
    for (const job of this.ctx.ledger.openJobs()) {
      if (job.state !== 'running') continue
      const done = this.summary(job, Date.now(), false).unitsDone
      if (this.#lastProgress.get(job.jobId) !== done) this.publishJob(job)
    }
  }

  /**
   * A finished job leaves memory (jobs.retainMs): its progress and its records' revisions are
   * dropped, and so are its state objects (nothing reads a finished share's state). Its records
   * stay in the store, and the job is read back from them on request, until `sweep` deletes them.
   */
  retire(job: JobRecord, shares: readonly ShareRecord[]): void {
    this.#lastProgress.delete(job.jobId)
    for (const s of shares) this.dropState(s.stateRef?.name)
    this.store.forgetRevisions([job.jobId], shares.map((s) => s.shareId))
    this.archive.add([job])
  }

  /**
   * Deletes the records of archived jobs past jobs.recordRetainMs (in the background). Until they
   * are gone the id is not free (`forgetting`): a job submitted again under it meanwhile would have
   * its new record deleted, or the old share records taken for its own.
   */
  sweep(now: number, keepMs: number): void {
    for (const { jobId, nextShare } of this.archive.takeExpired(now, keepMs)) {
      const removal = this.store.removeJob(jobId, shareIdsOf(jobId, nextShare)).catch((e: unknown) => this.ctx.failed('deleting the records of a finished job', e))
      this.#forgetting.set(jobId, removal)
      removal
        .finally(() => {
          if (this.#forgetting.get(jobId) === removal) this.#forgetting.delete(jobId)
        })
        .catch(() => undefined) // removal never rejects: failures are logged by `failed`
    }
  }

  /** The deletion of the records of a job forgotten under `jobId`, while it runs. */
  forgetting(jobId: string): Promise<void> | undefined {
    return this.#forgetting.get(jobId)
  }

  /**
   * A job out of memory, read back from its records, with its shares' records; undefined when it
   * is not archived (or its record is gone). Rejects with E_STORE when the store cannot answer.
   */
  async archived(jobId: string): Promise<{ job: JobRecord; shares: ShareRecord[] } | undefined> {
    const a = this.archive.get(jobId)
    if (!a) return undefined
    const job = await this.store.getJob(jobId)
    if (!job) return undefined
    return { job, shares: await this.store.getShares(shareIdsOf(jobId, a.nextShare)) }
  }
}

/**
 * Takes a checkpoint into the share record when it does not go backwards. Returns the name of a
 * state object that is no longer needed (the superseded one, or the ignored checkpoint's own).
 */
export function adopt(s: ShareRecord, cp: CheckpointMsg): string | undefined {
  if (cp.position < s.position || cp.position > s.to) return cp.stateRef?.name
  const old = s.stateRef?.name
  s.position = cp.position
  s.state = cp.stateRef ? undefined : cp.state
  s.stateRef = cp.stateRef
  s.stateBytes = cp.stateBytes
  s.unitsDone = cp.unitsDone
  return old !== undefined && old !== cp.stateRef?.name ? old : undefined
}
