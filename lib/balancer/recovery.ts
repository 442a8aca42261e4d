/**
 * A new term's start: the ledger rebuilt from JetStream (read in bulk), shares never assigned made
 * again from their job's admission range, checkpoints taken from the host journals where their
 * share records still say the share runs there under that epoch, hosts in maintenance remembered,
 * and a split interrupted by a crash trimmed.
 */

import type { CheckpointJournal } from './checkpoint-journal.ts'
import type { BalancerContext } from './context.ts'
import { splitRange } from './core/split-range.ts'
import { newPendingShare, shareIdOf } from './ledger.ts'
import type { Records } from './records.ts'
import { expiredJobs } from './retention.ts'

/**
 * Store formats this release's recovery reads, announced in every balancer's presence.
 * `initial-shares`: a job record's `initialShares` stands for the shares with no record of their
 * own (admission in one write). A leader uses a format only while every balancer it hears reads it.
 */
export const STORE_READS = ['initial-shares'] as const
export type StoreFormat = (typeof STORE_READS)[number]

/**
 * Whether every balancer heard since `horizon` (wall clock ms) reads `format`: one that says
 * nothing of what it reads is of a release from before formats were announced, and reads none.
 */
export function allRead(heard: Iterable<{ at: number; reads?: readonly string[] | undefined }>, horizon: number, format: StoreFormat): boolean {
  for (const p of heard) if (p.at >= horizon && !(p.reads ?? []).includes(format)) return false
  return true
}

export async function recover(ctx: BalancerContext, records: Records, journal: CheckpointJournal): Promise<void> {
  const { ledger, log, limited } = ctx
  const { jobs, shares, hosts, journal: entries } = await records.store.loadAll((e) => limited.warn('recover', { err: (e as Error).message }, 'cannot read the store yet; retrying'))
  // Finished jobs past jobs.retainMs stay out of memory: archived, read back from their records
  // on request, and their shares skipped (their records' revisions are not kept either).
  const retired = new Set(expiredJobs(jobs, Date.now(), ctx.config().jobs.retainMs))
  records.archive.add(jobs.filter((j) => retired.has(j.jobId)))
  const skipped: string[] = []
  // In submission order: status shows the newest jobs from the end of the ledger's list.
  for (const j of jobs.sort((a, b) => a.submittedAt - b.submittedAt)) if (!retired.has(j.jobId)) ledger.addJob(j)
  for (const s of shares) {
    if (retired.has(s.jobId)) {
      skipped.push(s.shareId)
      continue
    }
    s.attempts ??= 0
    s.failedOn ??= []
    // Shares go before their job when a finished job is forgotten; a share whose job is gone
    // is a leftover of that, or of a store edited by hand: nothing can complete it.
    if (!ledger.job(s.jobId)) {
      log.warn({ share: s.shareId, job: s.jobId }, 'share record without its job record: ignored')
      continue
    }
    ledger.addShare(s)
  }
  // Shares of open jobs never assigned have no record of their own (store.ts `initialShares`):
  // they are pending at their admission range, which no split can have changed (only a running
  // share is split). A finished job gets none made up: finishing writes every open share (a crash
  // midway leaves some unwritten, and those were never assigned: nothing is lost by their absence).
  for (const job of ledger.openJobs()) {
    if (job.initialShares === undefined) continue
    for (const [i, [from, to]] of splitRange(job.from, job.to, job.initialShares).entries()) {
      if (!ledger.share(shareIdOf(job.jobId, i))) ledger.addShare(newPendingShare(job.jobId, i, from, to, job.submittedAt))
    }
  }
  records.store.forgetRevisions([...retired], skipped)
  for (const h of hosts) if (h.draining) ctx.tracking.draining.add(h.hostId)
  // Later checkpoints of running shares, kept per host: each adopted only while its share's
  // record still says the share runs there under that epoch (checkpoint-journal.ts).
  for (const e of journal.recover(entries, (id) => ledger.share(id))) {
    const s = ledger.share(e.shareId)!
    if (e.position > s.to) continue
    s.position = e.position
    s.unitsDone = e.unitsDone
    s.state = e.stateRef ? undefined : e.state
    s.stateRef = e.stateRef
    s.stateBytes = e.stateBytes
  }
  // A crash between storing a split's tail and shrinking the original leaves them overlapping:
  // the tail is stored first, so the original is the one to shrink.
  const trims: Array<Promise<void>> = []
  for (const job of ledger.allJobs()) {
    const shares = ledger.sharesOf(job.jobId)
    // Only a share not done is ever trimmed: a job whose shares are all done (most of a large
    // history) needs no sort.
    if (ledger.doneCount(job.jobId) === shares.length) continue
    const sorted = [...shares].sort((a, b) => a.from - b.from)
    for (let i = 0; i + 1 < sorted.length; i++) {
      const a = sorted[i]!
      const b = sorted[i + 1]!
      if (a.to > b.from && a.status !== 'done') {
        a.to = b.from
        a.position = Math.min(a.position, a.to)
        trims.push(records.persistShare(a))
      }
    }
  }
  await Promise.all(trims)
}
