/**
 * Which finished jobs the balancer forgets: those that finished more than `jobs.retainMs` ago.
 * A job still running, or finished without a time (a record from before finishedAt was kept), is
 * never forgotten here.
 *
 * Must never touch the store or the clock: plain data in, job ids out.
 */

import type { JobRecord } from './store.ts'

const FINAL = new Set<JobRecord['state']>(['completed', 'failed', 'cancelled'])

export function expiredJobs(jobs: Iterable<Pick<JobRecord, 'jobId' | 'state' | 'finishedAt'>>, now: number, retainMs: number): string[] {
  const out: string[] = []
  for (const j of jobs) {
    if (FINAL.has(j.state) && j.finishedAt !== undefined && now - j.finishedAt >= retainMs) out.push(j.jobId)
  }
  return out
}
