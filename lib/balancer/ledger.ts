/**
 * The ledger: the balancer's jobs and shares in memory, with the indexes every message needs — a
 * job's shares, the shares running on a host, the jobs not finished yet, counts by state — kept
 * true by being the only place a share's status, host or epoch changes. Each change is a named
 * transition that checks the share is in a state it may leave that way, and throws E_INTERNAL
 * (a bug, never a host's or client's doing) when it is not.
 *
 *   pending ──assign──▶ running ──moveTo──▶ running (epoch + 1, another host)
 *      ▲                  │  │ └──finish──▶ done
 *      └────requeue───────┘  └──fail──────▶ failed
 *   pending | running ──cancel──▶ cancelled
 *
 * So a heartbeat costs the shares of its host, a report one lookup, status the hosts plus the
 * running shares, whatever the cluster ran before (issue 12). Finished jobs leave with `forget`.
 *
 * Must never do I/O or read the clock: callers persist the records it changes and pass the time.
 */

import { ShoalError } from '../errors.ts'
import type { JobState, ShareState } from '../protocol/messages.ts'
import type { JobRecord, ShareRecord } from './store.ts'

const FINAL_JOB: ReadonlySet<JobState> = new Set(['completed', 'failed', 'cancelled'])
const EMPTY: ReadonlySet<ShareRecord> = new Set()

export function isFinalJob(state: JobState): boolean {
  return FINAL_JOB.has(state)
}

/** The id of share number `index` of a job (`<jobId>-s<index>`): the one place this format is spelled. */
export function shareIdOf(jobId: string, index: number): string {
  return `${jobId}-s${index}`
}

/**
 * A new share of job `jobId` over [from, to), pending, never run: the one shape of a share at
 * birth, for admission and for a split's tail alike.
 */
export function newPendingShare(jobId: string, index: number, from: number, to: number, now: number): ShareRecord {
  return { shareId: shareIdOf(jobId, index), jobId, from, to, position: from, status: 'pending', epoch: 0, host: null, hosts: [], unitsDone: 0, attempts: 0, failedOn: [], updatedAt: now }
}

export class Ledger {
  readonly #jobs = new Map<string, JobRecord>()
  readonly #shares = new Map<string, ShareRecord>()
  readonly #byJob = new Map<string, ShareRecord[]>()
  readonly #runningOn = new Map<string, Set<ShareRecord>>()
  /** Jobs not finished yet (waiting or running): what passes, progress and completion look at. */
  readonly #open = new Map<string, JobRecord>()
  readonly #shareCounts: Record<ShareState, number> = { pending: 0, running: 0, done: 0, failed: 0, cancelled: 0 }
  readonly #jobCounts: Record<JobState, number> = { waiting: 0, running: 0, completed: 0, failed: 0, cancelled: 0 }
  /** Done shares per job: a done report asks whether its job is complete at O(1), not O(shares). */
  readonly #doneByJob = new Map<string, number>()
  /** Jobs in the order they came in (forgotten ones are skipped, and swept out now and then). */
  #order: JobRecord[] = []

  // ------------------------------------------------------------------ reads

  job(jobId: string): JobRecord | undefined {
    return this.#jobs.get(jobId)
  }

  share(shareId: string): ShareRecord | undefined {
    return this.#shares.get(shareId)
  }

  /** A job's shares, in the order they were created. */
  sharesOf(jobId: string): readonly ShareRecord[] {
    return this.#byJob.get(jobId) ?? []
  }

  /** The shares running on a host (live view: do not change statuses while iterating it). */
  runningOn(hostId: string): ReadonlySet<ShareRecord> {
    return this.#runningOn.get(hostId) ?? EMPTY
  }

  /** Hosts with at least one running share. */
  hostsRunning(): IterableIterator<string> {
    return this.#runningOn.keys()
  }

  /** Jobs waiting or running. */
  openJobs(): IterableIterator<JobRecord> {
    return this.#open.values()
  }

  /** Every job in memory (open and retained finished ones), oldest first. */
  allJobs(): IterableIterator<JobRecord> {
    return this.#jobs.values()
  }

  get jobCount(): number {
    return this.#jobs.size
  }

  get shareCount(): number {
    return this.#shares.size
  }

  /** How many of a job's shares are done. */
  doneCount(jobId: string): number {
    return this.#doneByJob.get(jobId) ?? 0
  }

  /** Jobs by state, kept as they change. */
  jobCounts(): Readonly<Record<JobState, number>> {
    return this.#jobCounts
  }

  /**
   * The `n` newest jobs that pass `keep`, newest first: what status shows, at the cost of those
   * jobs (and the ones it skips), not of every job retained. Jobs come in newest last (recovery
   * adds them in submission order).
   */
  newestJobs(n: number, keep: (j: JobRecord) => boolean = () => true): JobRecord[] {
    const out: JobRecord[] = []
    for (let i = this.#order.length - 1; i >= 0 && out.length < n; i--) {
      const j = this.#order[i]!
      // A forgotten job (its id may be in use again by a newer one) is not this list's any more.
      if (this.#jobs.get(j.jobId) === j && keep(j)) out.push(j)
    }
    return out
  }

  /** Shares by status, kept as they change (no pass over the records). */
  shareCounts(): Readonly<Record<ShareState, number>> {
    return this.#shareCounts
  }

  // ------------------------------------------------------------------ records coming in

  /** A new job, or one read back at recovery. */
  addJob(job: JobRecord): void {
    if (this.#jobs.has(job.jobId)) throw bug(`job ${job.jobId} is in the ledger already`)
    this.#jobs.set(job.jobId, job)
    this.#order.push(job)
    this.#jobCounts[job.state]++
    if (!isFinalJob(job.state)) this.#open.set(job.jobId, job)
  }

  /** A new share (pending), or one read back at recovery in whatever state it was stored. */
  addShare(s: ShareRecord): void {
    if (this.#shares.has(s.shareId)) throw bug(`share ${s.shareId} is in the ledger already`)
    if (!this.#jobs.has(s.jobId)) throw bug(`share ${s.shareId} names job ${s.jobId}, which the ledger does not hold`)
    if (s.status === 'running' && !s.host) throw bug(`share ${s.shareId} is running on no host`)
    this.#shares.set(s.shareId, s)
    const list = this.#byJob.get(s.jobId)
    if (list) list.push(s)
    else this.#byJob.set(s.jobId, [s])
    this.#shareCounts[s.status]++
    if (s.status === 'running') this.#hostSet(s.host!).add(s)
    if (s.status === 'done') this.#doneByJob.set(s.jobId, this.doneCount(s.jobId) + 1)
  }

  // ------------------------------------------------------------------ share transitions

  /** pending → running on `hostId` under a new epoch. */
  assign(s: ShareRecord, hostId: string, now: number): void {
    this.#expect(s, 'assign', 'pending')
    this.#setStatus(s, 'running')
    s.epoch += 1
    s.host = hostId
    s.hosts = [...s.hosts, hostId]
    s.updatedAt = now
    this.#hostSet(hostId).add(s)
  }

  /** running → running on another host under a new epoch (a live migration's handover). */
  moveTo(s: ShareRecord, hostId: string, now: number): void {
    this.#expect(s, 'move', 'running')
    this.#leaveHost(s)
    s.epoch += 1
    s.host = hostId
    s.hosts = [...s.hosts, hostId]
    s.updatedAt = now
    this.#hostSet(hostId).add(s)
  }

  /** running → pending at its last durable checkpoint (host lost, retry, assignment failed). */
  requeue(s: ShareRecord, now: number): void {
    this.#expect(s, 'requeue', 'running')
    this.#leaveHost(s)
    this.#setStatus(s, 'pending')
    s.host = null
    s.updatedAt = now
  }

  /** running → done with its result (it keeps the host it finished on). */
  finish(s: ShareRecord, result: unknown, unitsDone: number, now: number): void {
    this.#expect(s, 'finish', 'running')
    this.#leaveHost(s)
    this.#setStatus(s, 'done')
    this.#doneByJob.set(s.jobId, this.doneCount(s.jobId) + 1)
    s.position = s.to
    s.result = result
    s.state = undefined
    s.stateRef = undefined
    s.unitsDone = unitsDone
    s.updatedAt = now
  }

  /** running or pending → failed for good. */
  fail(s: ShareRecord, now: number): void {
    this.#expect(s, 'fail', 'running', 'pending')
    this.#leaveHost(s)
    this.#setStatus(s, 'failed')
    s.host = null
    s.updatedAt = now
  }

  /** running or pending → cancelled (its job ended otherwise). */
  cancel(s: ShareRecord, now: number): void {
    this.#expect(s, 'cancel', 'running', 'pending')
    this.#leaveHost(s)
    this.#setStatus(s, 'cancelled')
    s.host = null
    s.stateRef = undefined
    s.updatedAt = now
  }

  // ------------------------------------------------------------------ job transitions

  /** waiting → running (with its first placed share). */
  startJob(job: JobRecord): void {
    if (job.state !== 'waiting') throw bug(`cannot start job ${job.jobId}: it is ${job.state}`)
    this.#jobCounts.waiting--
    this.#jobCounts.running++
    job.state = 'running'
    job.reason = undefined
  }

  /** waiting | running → completed, failed or cancelled. */
  endJob(job: JobRecord, state: 'completed' | 'failed' | 'cancelled', now: number): void {
    if (isFinalJob(job.state)) throw bug(`cannot end job ${job.jobId} as ${state}: it is ${job.state} already`)
    this.#jobCounts[job.state]--
    this.#jobCounts[state]++
    job.state = state
    job.finishedAt = now
    job.reason = undefined
    this.#open.delete(job.jobId)
  }

  /** A finished job and its shares leave memory (jobs.retainMs). Returns the shares it held. */
  forget(jobId: string): readonly ShareRecord[] {
    const job = this.#jobs.get(jobId)
    if (!job) return []
    if (!isFinalJob(job.state)) throw bug(`cannot forget job ${jobId}: it is ${job.state}`)
    const shares = this.#byJob.get(jobId) ?? []
    for (const s of shares) {
      this.#leaveHost(s)
      this.#shareCounts[s.status]--
      this.#shares.delete(s.shareId)
    }
    this.#byJob.delete(jobId)
    this.#doneByJob.delete(jobId)
    this.#jobs.delete(jobId)
    this.#jobCounts[job.state]--
    // Sweep forgotten ids out once they are most of the list (amortised O(1) per job).
    if (this.#order.length > 64 && this.#order.length > 2 * this.#jobs.size) this.#order = this.#order.filter((j) => this.#jobs.get(j.jobId) === j)
    return shares
  }

  // ------------------------------------------------------------------ internals

  #expect(s: ShareRecord, what: string, ...from: ShareState[]): void {
    if (this.#shares.get(s.shareId) !== s) throw bug(`cannot ${what} share ${s.shareId}: the ledger does not hold this record`)
    if (!from.includes(s.status)) throw bug(`cannot ${what} share ${s.shareId}: it is ${s.status}, not ${from.join(' or ')}`)
  }

  #setStatus(s: ShareRecord, to: ShareState): void {
    this.#shareCounts[s.status]--
    this.#shareCounts[to]++
    s.status = to
  }

  #hostSet(hostId: string): Set<ShareRecord> {
    let set = this.#runningOn.get(hostId)
    if (!set) this.#runningOn.set(hostId, (set = new Set()))
    return set
  }

  #leaveHost(s: ShareRecord): void {
    if (s.status !== 'running' || !s.host) return
    const set = this.#runningOn.get(s.host)
    set?.delete(s)
    if (set?.size === 0) this.#runningOn.delete(s.host)
  }
}

function bug(message: string): ShoalError {
  return new ShoalError('E_INTERNAL', `ledger: ${message}`)
}
