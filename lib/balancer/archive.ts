/**
 * Finished jobs that left the balancer's memory (`jobs.retainMs`) while their records stay in the
 * store (`jobs.recordRetainMs`): what it takes to find them again and to delete them in time. A job
 * here is read back from its records on request (records.ts); its id is taken until they are gone.
 *
 * Per job a number or two, not its shares: this is what lets memory stop growing with history
 * (issue 12) while `shoal job get` still answers for a day.
 *
 * Must never touch the store or the clock: plain data in and out.
 */

import { shareIdOf } from './ledger.ts'
import type { JobRecord } from './store.ts'

/** What is kept of a job out of memory. */
export interface ArchivedJob {
  finishedAt: number
  /** Its shares are `<jobId>-s0` .. `<jobId>-s<nextShare - 1>` (not every one has a record). */
  nextShare: number
}

/** `jobs.recordRetainMs` as it applies: unset means a day, or `retainMs` when that is longer. */
export function recordRetention(jobs: { retainMs: number; recordRetainMs?: number | undefined }): number {
  return jobs.recordRetainMs ?? Math.max(86_400_000, jobs.retainMs)
}

/** The ids of a job's share records, from its share counter. */
export function shareIdsOf(jobId: string, nextShare: number): string[] {
  return Array.from({ length: nextShare }, (_, i) => shareIdOf(jobId, i))
}

export class Archive {
  /**
   * By job id, in the order jobs finished: each batch comes in sorted, and a batch holds the jobs
   * that passed the memory retention since the last, so they finished after the ones before. So
   * the ones to delete are always at the front.
   */
  readonly #jobs = new Map<string, ArchivedJob>()

  get size(): number {
    return this.#jobs.size
  }

  has(jobId: string): boolean {
    return this.#jobs.has(jobId)
  }

  get(jobId: string): ArchivedJob | undefined {
    return this.#jobs.get(jobId)
  }

  /** Jobs that left memory, in any order. A job without a finish time is never archived. */
  add(jobs: ReadonlyArray<Pick<JobRecord, 'jobId' | 'finishedAt' | 'nextShare'>>): void {
    const timed = jobs.filter((j) => j.finishedAt !== undefined).sort((a, b) => a.finishedAt! - b.finishedAt!)
    for (const j of timed) this.#jobs.set(j.jobId, { finishedAt: j.finishedAt!, nextShare: j.nextShare })
  }

  /** The job's records are gone (or its id is taken by a new job): it is no longer here. */
  delete(jobId: string): void {
    this.#jobs.delete(jobId)
  }

  /**
   * Takes out the jobs that finished `keepMs` or more before `now`, oldest first. Stops at the
   * first one still kept: the order of `add` makes the rest younger.
   */
  takeExpired(now: number, keepMs: number): Array<{ jobId: string } & ArchivedJob> {
    const out: Array<{ jobId: string } & ArchivedJob> = []
    for (const [jobId, a] of this.#jobs) {
      if (now - a.finishedAt < keepMs) break
      out.push({ jobId, ...a })
    }
    for (const x of out) this.#jobs.delete(x.jobId)
    return out
  }
}
