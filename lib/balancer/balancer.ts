/**
 * The leading balancer, for one leadership term: admits jobs, splits them into shares, places
 * shares on hosts, records checkpoints durably before acknowledging them, fences stale epochs,
 * re-dispatches a lost host's shares from their last checkpoint, and completes a job by asking a
 * host to merge the partial results (the balancer never loads processor code).
 *
 * A `BalancerNode` (node.ts) runs one of these while its lease says it leads, and stops it when it
 * is deposed; a standby taking over starts a fresh one, which recovers from JetStream exactly as a
 * restarted balancer does. Everything it writes or commands goes through its `fence`: nothing
 * leaves while the lease is unconfirmed, and records and commands carry its term.
 *
 * This file is the I/O shell: NATS, KV and timers live here; decisions come from the pure
 * functions in ./core and ../pool.
 *
 * Must never import processor code or block the event loop, and never act (write, command, ack)
 * without asking the fence.
 */

import type { NatsConnection } from '@nats-io/transport-node'
import type { Subscription } from '@nats-io/transport-node'
import { ShoalError, toWire, type WireError as WireErrorT } from '../errors.ts'
import { assertKnownKey, setConfigValue, type Config } from '../config/mod.ts'
import { LogLimiter, type Logger } from '../log.ts'
import { Bus, NO_REPLY } from '../protocol/bus.ts'
import { Codec } from '../protocol/codec.ts'
import type { WorkQueue } from '../protocol/work-queue.ts'
import {
  PROTOCOL_VERSION as V,
  apiRequestSchema,
  heartbeatSchema,
  hostReplySchema,
  leaveSchema,
  reportSchema,
  reportBatchSchema,
  blobRequestSchema,
  type ApiReply,
  type ApiRequest,
  type BlobReply,
  type BlobRequest,
  type Heartbeat,
  type HostCommand,
  type CheckpointMsg,
  type Failover,
  type Migration,
  type MoveReason,
  type BalanceSummary,
  type Report,
  type ReportAnswer,
  type ReportBatch,
  type ReportBatchReply,
  type ReportReply,
  type Submit,
} from '../protocol/messages.ts'
import { BALANCER_IDENTITY, SUBMITTER_OPS, Subjects, hostIdentity, isOperator, type ApiOp } from '../protocol/subjects.ts'
import { BlobProxy } from './blob-proxy.ts'
import { fitStatus } from './status-fit.ts'
import { expiredJobs } from './retention.ts'
import { isFinalJob as isFinal, Ledger } from './ledger.ts'
import { submissionDiffers } from './submission.ts'
import { AssignRefusals, MAX_ASSIGN_REFUSALS } from './assign-refusals.ts'
import { CheckpointJournal, type JournalEntry } from './checkpoint-journal.ts'
import { Membership, type HostState, type MembershipEvent } from '../pool/membership.ts'
import { heartbeatPeriod, silenceFactor } from '../pool/heartbeat-period.ts'
import { planPlacement, type PendingShare, type PlacementHost } from './core/placement.ts'
import { qualifies, spreadCap } from './core/eligibility.ts'
import { actionsFor, recordsCoreSpeeds } from './core/pass-rules.ts'
import { decide, type Action, type Knobs, type Plan } from './core/policy.ts'
import { LoadHistory } from './core/load-history.ts'
import { buildClusterView, type LiveShare } from './core/snapshot.ts'
import { splitRange } from './core/split-range.ts'
import { learnStunCost } from './core/stun-model.ts'
import type { BalancerMetrics, BalancerState } from '../metrics/balancer-metrics.ts'
import { diffConfig, isLiveKey, LIVE_KEYS, liveSettings, type SettingChange } from './live-settings.ts'
import type { Buckets } from './buckets.ts'
import type { Fence } from './fence.ts'
import { Store, type JobRecord, type ShareRecord } from './store.ts'
import { hostSummary, jobSummary } from './summaries.ts'

/** Who leads and who stands by, as `shoal status` shows it. */
export interface LeadershipView {
  leader: { id: string; pid: number; term: number; since: number }
  standbys: Array<{ id: string; pid: number }>
}

export interface BalancerOptions {
  config: Config
  logger: Logger
  nc: NatsConnection
  buckets: Buckets
  /** This term's fence: the lease's verdict on whether this balancer may act. */
  fence: Fence
  metrics: BalancerMetrics
  /**
   * Whether this process hears NATS right now (its own presence comes back to it). While it does
   * not, silence proves nothing about the hosts, and no host is declared dead.
   */
  hearing: () => boolean
  /** When this process last provably heard NATS (wall clock ms). */
  lastHeard: () => number
  /** The leader and standbys as the node knows them (for `status`). */
  leadership: () => LeadershipView
  /** The node's queue for received messages (lib/protocol/work-queue.ts); absent: handled at once. */
  work?: WorkQueue | undefined
}

const COMMAND_TIMEOUT_MS = 5_000
/** A pause answers within one step (milliseconds); longer means the source is in trouble. */
const PAUSE_TIMEOUT_MS = 2_000
const MIGRATIONS_KEPT = 200
/**
 * A failed share is retried on another host (up to shares.maxAttempts) when its error says it may
 * succeed there: the error's own `retryable` flag (a processor marks its errors, docs/PROCESSORS.md),
 * or a code that is about the host rather than the input (a processor module that did not load
 * there, a worker thread that died, a bug).
 */
const HOST_SHARE_ERRORS = new Set(['E_PROCESSOR_LOAD', 'E_INTERNAL'])
function shareErrorRetryable(error: WireErrorT): boolean {
  return error.retryable === true || HOST_SHARE_ERRORS.has(error.code)
}
const MERGE_TIMEOUT_MS = 30_000
const PROGRESS_EVERY_MS = 250
/** API requests a balancer answers from memory even while its lease is unconfirmed. */
const READ_ONLY_OPS = new Set(['status', 'job'])

export class Balancer {
  private readonly log: Logger
  private readonly limited: LogLimiter
  private readonly subjects: Subjects
  private readonly bus: Bus
  private readonly membership: Membership
  private readonly store: Store
  private readonly fence: Fence
  private readonly hearing: () => boolean
  private readonly lastHeard: () => number
  private readonly leadership: () => LeadershipView
  /** Jobs and shares: the only place a share's status, host or epoch changes (ledger.ts). */
  private readonly ledger = new Ledger()
  private readonly live = new Map<string, LiveShare>()
  private readonly lastProgress = new Map<string, number>()
  private readonly dropsSent = new Set<string>()
  private readonly merging = new Set<string>()
  /** Submissions being validated and stored: a second submit of the same id waits for them. */
  private readonly admitting = new Map<string, Promise<unknown>>()
  /** Hosts in maintenance mode (persisted in the hosts bucket). */
  private readonly draining = new Set<string>()
  private readonly refusals = new AssignRefusals()
  private readonly blobs: BlobProxy
  /** Checkpoints, one store record per host rather than one write per share (checkpoint-journal.ts). */
  private readonly journal: CheckpointJournal
  /** Shares a migration is moving right now: nothing else touches them meanwhile. */
  private readonly moving = new Set<string>()
  /** Slots promised to migrations in flight, by target host. */
  private readonly incoming = new Map<string, number>()
  /**
   * When each share was last live-migrated: `balancer.minResidencyMs` counts from there. A share
   * that was only placed has no entry, so a bad placement can be corrected as soon as it shows.
   */
  private readonly migratedAt = new Map<string, number>()
  /** When each running share was last assigned (for the missing-from-heartbeat check). */
  private readonly assignedAt = new Map<string, number>()
  private readonly migrations: Migration[] = []
  private readonly failovers: Failover[] = []
  /** The open failover record of a share waiting to be placed again. */
  private readonly openFailover = new Map<string, Failover>()
  /** The period hosts are asked to beat at (announced in the leader's presence), grown with the pool. */
  private heartbeatPeriodMs: number
  private periodCheckedAt = 0
  /**
   * When the check for shares on hosts that never came back after recovery is due, for hosts
   * beating at pool.heartbeatMs; hosts that say they beat slower get that much longer.
   */
  private orphanCheckAt = 0
  private orphanCheckDone = false
  /** Since when this balancer could not act or hear (blind, lease unconfirmed); undefined when it can. */
  private deafSince: number | undefined
  private lastTickAt = 0
  private splits = 0
  /** Per-core speeds the policy measured, remembered for hosts that go idle (`HostView.coreSpeed`). */
  private readonly coreSpeeds = new Map<string, number>()
  /** Smoothed external loads and share demands, with their noise, fed by heartbeats. */
  private readonly loads: LoadHistory
  /** The last interval pass: what `shoal status` shows of the balance. */
  private lastBalance: Omit<BalanceSummary, 'splitsTotal'> | undefined
  private readonly subs: Subscription[] = []
  /** Why a share is pending again (host-lost, retry, ...), carried into the placement log. */
  private readonly pendingReason = new Map<string, MoveReason>()
  private readonly timers: NodeJS.Timeout[] = []
  /** The balancing-pass timer, restarted when `balancer.intervalMs` changes. */
  private cycleTimer: NodeJS.Timeout | undefined
  /** A policy pass is running; `passWanted` says whether another (and which) must follow it. */
  private passing = false
  private passWanted: 'kick' | 'interval' | null = null
  private stopped = false
  /** Prometheus metrics: the node's registry, which outlives a term. */
  readonly metrics: BalancerMetrics
  private config: Config

  private constructor(opts: BalancerOptions) {
    this.config = opts.config
    this.log = opts.logger.child({ term: opts.fence.term })
    this.limited = new LogLimiter(this.log)
    this.subjects = new Subjects(opts.config.cluster)
    this.bus = new Bus(opts.nc, new Codec(opts.config.protocol.maxMessageBytes), { inbox: this.subjects.inbox(BALANCER_IDENTITY), ...(opts.work ? { work: opts.work } : {}) })
    this.membership = new Membership({ suspectAfterMs: opts.config.pool.suspectAfterMs, hostDeadMs: opts.config.pool.hostDeadMs, heartbeatMs: opts.config.pool.heartbeatMs })
    this.heartbeatPeriodMs = opts.config.pool.heartbeatMs
    this.fence = opts.fence
    this.loads = new LoadHistory(opts.config.balancer.loadWindowMs)
    this.hearing = opts.hearing
    this.lastHeard = opts.lastHeard
    this.leadership = opts.leadership
    this.metrics = opts.metrics
    this.store = new Store(opts.buckets, opts.fence, {
      events: {
        retry: (bucket, key, err, attempt, delayMs) => {
          this.metrics.storeRetries.inc({ bucket })
          this.limited.warn(`store-retry:${bucket}`, { bucket, key, attempt, delayMs, err: (err as Error).message }, 'store write failed; retrying')
        },
        fencedWrite: (bucket, key, theirTerm) => {
          this.metrics.fencedWrites.inc()
          this.log.warn({ bucket, key, theirTerm }, 'found a record written by an older term after this one took over (a deposed leader\'s late write): overwritten')
        },
      },
    })
    this.store.onBulkFailed = (bucket, err) => this.log.warn({ bucket, err: (err as Error).message }, 'cannot read the bucket in bulk; reading it key by key')
    this.blobs = new BlobProxy(this.store.blobStore(), { maxBytes: opts.config.shares.maxCheckpointBytes + 1024 })
    const maxBytes = this.bus.codec.maxMessageBytes
    // Half a message per host's record; an entry at most 1/64 of one, so a host's shares fit many
    // to a record. A larger state goes to its share record as before.
    this.journal = new CheckpointJournal(this.store.journal, (x) => this.bus.codec.sizeOf(x), { maxRecordBytes: Math.floor(maxBytes / 2), maxEntryBytes: Math.max(512, Math.floor(maxBytes / 64)) })
    this.bus.rejects.onReject = (subject, cause) => this.metrics.rejected.inc({ subject, cause })
    // Every bucket's series exists from the start, so rate() and the dashboards see zeros, not gaps.
    for (const b of [opts.buckets.jobs, opts.buckets.shares, opts.buckets.hosts]) this.metrics.storeRetries.inc({ bucket: b.name }, 0)
  }

  /**
   * Recovers this term's view from JetStream and starts serving. Rejects with E_NOT_LEADER when
   * the term ends during recovery.
   */
  static async start(opts: BalancerOptions): Promise<Balancer> {
    const b = new Balancer(opts)
    try {
      await b.recover()
    } catch (e) {
      await b.stop()
      throw e
    }
    b.listen()
    b.log.info({ cluster: opts.config.cluster, jobs: b.ledger.jobCount, shares: b.ledger.shareCount }, 'leading: state recovered, serving')
    return b
  }

  /** Messages dropped, by `subject cause`. */
  rejected(): Record<string, number> {
    return this.bus.rejects.snapshot()
  }

  /** Stops serving; writes in flight end with E_NOT_LEADER once the fence is revoked. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const t of this.timers) clearInterval(t)
    if (this.cycleTimer) clearInterval(this.cycleTimer)
    for (const s of this.subs) s.unsubscribe()
    await Promise.resolve()
  }

  /** May this balancer act now: not stopped, and its lease confirmed. */
  private acting(): boolean {
    return !this.stopped && this.fence.state() === 'valid'
  }

  /**
   * May this balancer act, now or within a lease. A lease that lapsed because this process ran
   * late (a pause, a busy event loop) is usually confirmed again by its next renewal, and a report
   * read meanwhile is worth that wait: dropping it made one 1 s stall at 2,000 hosts cost every
   * report read behind it (issue 12). Nothing acts early: writes wait for a valid lease anyway.
   */
  private async actingSoon(): Promise<boolean> {
    if (this.acting()) return true
    if (this.stopped || this.fence.state() === 'revoked') return false
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.fence.whenValid().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, this.config.balancer.leaseMs)))])
    clearTimeout(timer)
    return this.acting()
  }

  /**
   * A write or command that failed because this term ended (E_NOT_LEADER) is expected while a
   * balancer steps down; anything else is logged, rate-limited, and counted.
   */
  private failed(what: string, e: unknown): void {
    const err = e as ShoalError
    if (err?.code === 'E_NOT_LEADER' || this.stopped) {
      this.log.debug({ what, err: err?.message }, 'not done: this balancer no longer leads')
      return
    }
    this.metrics.internalErrors.inc({ where: 'background-task' })
    this.limited.error(`failed:${what}`, { what, err: err?.message ?? String(e) }, `${what} failed`)
  }

  // ------------------------------------------------------------------ start-up

  /** Rebuilds the in-memory view from JetStream KV. */
  private async recover(): Promise<void> {
    const { jobs, shares, hosts, journal } = await this.store.loadAll((e) => this.limited.warn('recover', { err: (e as Error).message }, 'cannot read the store yet; retrying'))
    // In submission order: status shows the newest jobs from the end of the ledger's list.
    for (const j of jobs.sort((a, b) => a.submittedAt - b.submittedAt)) this.ledger.addJob(j)
    for (const s of shares) {
      s.attempts ??= 0
      s.failedOn ??= []
      // Shares go before their job when a finished job is forgotten; a share whose job is gone
      // is a leftover of that, or of a store edited by hand: nothing can complete it.
      if (!this.ledger.job(s.jobId)) {
        this.log.warn({ share: s.shareId, job: s.jobId }, 'share record without its job record: ignored')
        continue
      }
      this.ledger.addShare(s)
    }
    for (const h of hosts) if (h.draining) this.draining.add(h.hostId)
    // Later checkpoints of running shares, kept per host: each adopted only while its share's
    // record still says the share runs there under that epoch (checkpoint-journal.ts).
    for (const e of this.journal.recover(journal, (id) => this.ledger.share(id))) {
      const s = this.ledger.share(e.shareId)!
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
    for (const job of this.ledger.allJobs()) {
      const sorted = [...this.ledger.sharesOf(job.jobId)].sort((a, b) => a.from - b.from)
      for (let i = 0; i + 1 < sorted.length; i++) {
        const a = sorted[i]!
        const b = sorted[i + 1]!
        if (a.to > b.from && a.status !== 'done') {
          a.to = b.from
          a.position = Math.min(a.position, a.to)
          trims.push(this.persistShare(a))
        }
      }
    }
    await Promise.all(trims)
    const now = Date.now()
    // Running shares keep running on their hosts while no balancer led; give every share the full
    // grace period to show up in its host's heartbeats again, and every host hostDeadMs (plus a
    // beat) to be heard from before its shares count as lost.
    this.orphanCheckAt = now + this.config.pool.hostDeadMs + this.config.pool.heartbeatMs
    for (const h of this.ledger.hostsRunning()) for (const s of this.ledger.runningOn(h)) this.assignedAt.set(s.shareId, now)
  }

  private listen(): void {
    const s = this.subjects
    this.subs.push(
      this.bus.subscribe(s.poolAll(), heartbeatSchema.or(leaveSchema), (msg, subject) => this.onPool(msg, subject)),
      // Answers go only to the inbox of the identity the subject names (lib/protocol/bus.ts).
      // A batch of a host's reports, or one report alone (hosts before batching sent those).
      this.bus.serve(s.reportAll(), reportBatchSchema.or(reportSchema), (r, raw) => (r.t === 'reports' ? this.onBatchFrom(r, raw.subject) : this.onReportFrom(r, raw.subject)), { replyInbox: (subj) => inboxOfHost(s, s.parseReport(subj)) }),
      this.bus.serve(s.blobAll(), blobRequestSchema, (r, raw) => this.onBlob(r, raw.subject), { replyInbox: (subj) => inboxOfHost(s, s.parseBlob(subj)) }),
      this.bus.serve(s.apiAll(), apiRequestSchema, (r, raw) => this.onApiFrom(r, raw.subject), { replyInbox: (subj) => {
        const who = s.parseApi(subj)?.identity
        return who === undefined ? undefined : s.inbox(who)
        // A client's request goes before the hosts' backlog: `status` answers in milliseconds,
        // not after every message a busy balancer has yet to read (issue 12).
      }, urgent: true }),
    )
    const tickMs = this.tickMs()
    this.lastTickAt = Date.now()
    this.timers.push(
      setInterval(() => this.tick(), tickMs),
      setInterval(() => this.publishProgress(), PROGRESS_EVERY_MS),
      // Finished jobs past jobs.retainMs: a tenth of the retention late at most, never more than a minute.
      setInterval(() => this.forgetExpired(Date.now()), Math.min(60_000, Math.max(100, Math.floor(this.config.jobs.retainMs / 10)))),
    )
    this.cycleTimer = setInterval(() => this.cycle(), this.config.balancer.intervalMs)
    this.kick()
  }

  private tickMs(): number {
    return Math.max(10, Math.min(50, Math.floor(this.config.pool.heartbeatMs / 2)))
  }

  /**
   * Takes the balancing settings of `next` (validated already); logs each change with its old and
   * new value. Keys that need a restart are named and left as they are. Returns the live changes.
   */
  applySettings(next: Config, source: string): SettingChange[] {
    const { live, restartOnly } = diffConfig(this.config, next)
    if (restartOnly.length) this.log.warn({ source, keys: restartOnly }, `changed, but take effect only after a restart: ${restartOnly.join(', ')}`)
    if (!live.length) return []
    const intervalBefore = this.config.balancer.intervalMs
    this.config = { ...this.config, balancer: { ...next.balancer, metricsPort: this.config.balancer.metricsPort } }
    for (const c of live) this.log.info({ key: c.key, from: c.from, to: c.to, source }, `setting ${c.key} changed from ${c.from} to ${c.to}`)
    this.loads.setWindow(this.config.balancer.loadWindowMs)
    if (this.config.balancer.intervalMs !== intervalBefore && this.cycleTimer && !this.stopped) {
      clearInterval(this.cycleTimer)
      this.cycleTimer = setInterval(() => this.cycle(), this.config.balancer.intervalMs)
    }
    return live
  }

  // ------------------------------------------------------------------ pool

  private tick(): void {
    const now = Date.now()
    const tickMs = this.tickMs()
    // A tick far later than its period means this process did not run (frozen, a long pause):
    // heartbeats it could not read meanwhile are no host's fault.
    if (now - this.lastTickAt > tickMs + this.config.pool.heartbeatMs) this.excuse(this.lastTickAt + tickMs, now)
    this.lastTickAt = now
    const hearing = this.hearing()
    if (!hearing || !this.acting()) {
      // Blind since the last thing heard; merely unconfirmed (still hearing) since now.
      this.deafSince ??= hearing ? now : Math.min(now, this.lastHeard())
      return
    }
    if (this.deafSince !== undefined) {
      // Hearing and leading again: the time in between was not the hosts' silence.
      this.excuse(this.deafSince, now)
      this.deafSince = undefined
      this.log.info('hearing NATS and leading again: hosts get a full hostDeadMs from now before any is declared dead')
      this.kick()
    }
    this.onMembership(this.membership.tick(now))
    if (now - this.periodCheckedAt >= 1000) this.updateHeartbeatPeriod(now)
    // After recovery: a share recorded as running on a host that never came back within
    // hostDeadMs (plus a beat, both at the slowest period heard) is lost with that host.
    if (!this.orphanCheckDone && now >= this.orphanCheckAt && now >= this.orphanCheckAt + this.slowerHostsGrace()) {
      this.orphanCheckDone = true
      for (const h of [...this.ledger.hostsRunning()]) {
        const m = this.membership.get(h)
        if (!m || m.state === 'dead' || m.state === 'left') this.reclaimShares(h, 'host-lost')
      }
    }
  }

  /**
   * The heartbeat period for the pool's size now (pool.maxHeartbeatsPerSec): hosts hear it in the
   * leader's presence and each says in its heartbeats which period it keeps (heartbeat-period.ts).
   */
  private updateHeartbeatPeriod(now: number): void {
    this.periodCheckedAt = now
    let hosts = 0
    for (const h of this.membership.all()) if (h.state === 'alive' || h.state === 'suspect') hosts++
    const { heartbeatMs, maxHeartbeatsPerSec } = this.config.pool
    const next = heartbeatPeriod(hosts, this.heartbeatPeriodMs, heartbeatMs, maxHeartbeatsPerSec)
    if (next === this.heartbeatPeriodMs) return
    this.log.info({ hosts, from: this.heartbeatPeriodMs, to: next, maxHeartbeatsPerSec }, `hosts now beat every ${next} ms (${hosts} hosts, at most ${maxHeartbeatsPerSec} heartbeats/s)`)
    this.heartbeatPeriodMs = next
  }

  /**
   * How much longer than at pool.heartbeatMs the orphan check waits: the slowest period a host of
   * the pool says it beats at (read from membership, only while the check is due).
   */
  private slowerHostsGrace(): number {
    const { hostDeadMs, heartbeatMs } = this.config.pool
    let factor = 1
    for (const h of this.membership.all()) factor = Math.max(factor, silenceFactor(h.heartbeat.periodMs, heartbeatMs))
    return (factor - 1) * (hostDeadMs + heartbeatMs)
  }

  /** The period (ms) hosts are asked to beat at, for the leader's presence. */
  heartbeatPeriod(): number {
    return this.heartbeatPeriodMs
  }

  /** The balancer could not hear or act from `from` to `to`: that time is nobody's silence. */
  private excuse(from: number, to: number): void {
    this.membership.excuse(from, to)
    if (!this.orphanCheckDone && this.orphanCheckAt > from) this.orphanCheckAt += to - from
    for (const [id, at] of this.assignedAt) if (at < to) this.assignedAt.set(id, at + (to - Math.max(from, at)))
  }

  private onPool(msg: Heartbeat | { t: 'leave'; hostId: string }, subject: string): void {
    const parsed = this.subjects.parsePool(subject)
    if (!parsed) {
      this.bus.rejects.count(subject, 'invalid')
      return
    }
    if (parsed.hostId !== msg.hostId) {
      // A body that speaks for another host than its subject: a forgery, or a host misconfigured.
      this.bus.rejects.count(subject, 'identity')
      this.log.warn({ subject, claimed: msg.hostId }, `refused a ${msg.t === 'leave' ? 'leave' : 'heartbeat'} that names another host than its subject`)
      return
    }
    const now = Date.now()
    if (msg.t === 'leave') {
      this.onMembership(this.membership.leave(msg.hostId, now))
      return
    }
    const before = this.membership.get(msg.hostId)
    const restarted = before !== undefined && before.heartbeat.startedAt !== msg.startedAt
    if (restarted) this.loads.forgetHost(msg.hostId)
    // Monotonic time: a wall clock set back would stall the smoothing until it caught up.
    this.loads.observe(performance.now(), msg.hostId, msg.capacity.cores, msg.load, msg.shares)
    this.onMembership(this.membership.observe(msg, now))
    if (restarted) this.reclaimShares(msg.hostId, 'host-restarted')
    this.reconcileHeartbeat(msg)
  }

  /** Learns live positions, and tells a host to drop shares it runs under a stale epoch. */
  private reconcileHeartbeat(hb: Heartbeat): void {
    const now = Date.now()
    const listed = new Set(hb.shares.map((s) => `${s.shareId}/${s.epoch}`))
    // A share we think the host runs that is missing from its heartbeats for longer than the grace
    // period was lost (an assignment that never arrived, a worker that vanished): re-dispatch it.
    // Reports that are still in flight carry the old epoch and are then rejected, so nothing counts twice.
    const grace = Math.max(3000, 4 * (hb.periodMs ?? this.config.pool.heartbeatMs))
    const acting = this.acting()
    // Only this host's running shares: a heartbeat costs what the host runs, not the cluster's history.
    for (const s of acting ? [...this.ledger.runningOn(hb.hostId)] : []) {
      if (this.moving.has(s.shareId) || listed.has(`${s.shareId}/${s.epoch}`)) continue
      if (now - (this.assignedAt.get(s.shareId) ?? now) < grace) continue
      this.log.warn({ host: hb.hostId, share: s.shareId, epoch: s.epoch, seq: hb.seq, assignedAgoMs: now - (this.assignedAt.get(s.shareId) ?? now) }, 'share missing from its host\'s heartbeats: re-dispatching it')
      this.requeue(s, 'host-lost')
    }
    for (const s of hb.shares) {
      const rec = this.ledger.share(s.shareId)
      if (rec && rec.status === 'running' && rec.host === hb.hostId && rec.epoch === s.epoch) {
        this.live.set(s.shareId, { epoch: s.epoch, position: s.position, unitsPerSec: s.unitsPerSec, cpuDemand: s.busy })
        continue
      }
      // Done here under this epoch: the host's heartbeat was sent before it forgot the share.
      if (rec && rec.status === 'done' && rec.epoch === s.epoch && rec.hosts.at(-1) === hb.hostId) continue
      const key = `${hb.hostId}/${s.shareId}/${s.epoch}`
      if (!acting || this.dropsSent.has(key)) continue
      this.dropsSent.add(key)
      this.bus.rejects.count(this.subjects.heartbeat(hb.hostId), 'stale-epoch')
      this.log.warn({ host: hb.hostId, share: s.shareId, epoch: s.epoch, current: rec?.epoch }, 'host runs a share under a stale epoch: telling it to drop it')
      this.command(hb.hostId, { v: V, t: 'drop', term: this.fence.term, shareId: s.shareId, epoch: s.epoch }).catch(() => this.dropsSent.delete(key))
    }
  }

  private onMembership(events: MembershipEvent[]): void {
    for (const e of events) {
      this.log.info({ host: e.hostId, from: e.from, to: e.to }, `host ${e.to}`)
      this.metrics.hostTransitions.inc({ to: e.to })
      if (e.to === 'dead' || e.to === 'left') {
        this.loads.forgetHost(e.hostId)
        this.refusals.forgetHost(e.hostId)
        this.reclaimShares(e.hostId, e.to === 'dead' ? 'host-lost' : 'host-left')
      }
      if (e.to === 'alive') this.kick()
    }
  }

  /**
   * Failover: the host's running shares go back to pending with their last durable checkpoint; the
   * next placement gives them a new epoch on another host. No other share is touched.
   */
  private reclaimShares(hostId: string, reason: string): void {
    const lost = [...this.ledger.runningOn(hostId)]
    if (!lost.length) return
    this.log.warn({ host: hostId, reason, shares: lost.map((s) => s.shareId) }, `re-dispatching ${lost.length} share(s) from their last checkpoint`)
    for (const s of lost) this.requeue(s, 'host-lost')
  }

  /** Puts a running share back to pending at its last durable checkpoint, and places it again. */
  private requeue(s: ShareRecord, reason: MoveReason): void {
    if (s.status !== 'running') return
    if (reason === 'host-lost' && s.host) {
      const live = this.live.get(s.shareId)
      const lastKnown = live && live.epoch === s.epoch ? Math.max(live.position, s.position) : s.position
      const f: Failover = { shareId: s.shareId, jobId: s.jobId, hostId: s.host, at: Date.now(), checkpointPosition: s.position, lastKnownPosition: lastKnown, unitsRedone: lastKnown - s.position }
      this.failovers.push(f)
      if (this.failovers.length > MIGRATIONS_KEPT) this.failovers.shift()
      this.metrics.failovers.inc()
      this.metrics.unitsRedone.inc(Math.max(0, f.unitsRedone))
      this.openFailover.set(s.shareId, f)
    }
    this.ledger.requeue(s, Date.now())
    this.live.delete(s.shareId)
    this.assignedAt.delete(s.shareId)
    this.pendingReason.set(s.shareId, reason)
    this.persistShare(s).then(
      () => this.kick(),
      (e: unknown) => this.failed('storing a share put back to pending', e),
    )
  }

  // ------------------------------------------------------------------ reports from hosts

  /** A report must come from the host it names: its subject (which NATS permissions tie to that host) says so. */
  private async onReportFrom(r: Report, subject: string): Promise<ReportReply | typeof NO_REPLY> {
    const from = this.subjects.parseReport(subject)
    if (from !== r.hostId) {
      this.bus.rejects.count(subject, 'identity')
      this.log.warn({ subject, claimed: r.hostId, t: r.t }, 'refused a report that names another host than its subject')
      return this.nack('E_FORBIDDEN', `a report on ${subject} must name host ${from ?? '(none)'}, not ${r.hostId}`)
    }
    return this.onReport(r)
  }

  /**
   * A host's reports of one interval: each answered in order, as it would have been alone. Not
   * leading: no answer at all, as for a single report.
   */
  private async onBatchFrom(b: ReportBatch, subject: string): Promise<ReportBatchReply | typeof NO_REPLY> {
    const from = this.subjects.parseReport(subject)
    if (from !== b.hostId) {
      this.bus.rejects.count(subject, 'identity')
      this.log.warn({ subject, claimed: b.hostId }, 'refused a report batch that names another host than its subject')
      throw new ShoalError('E_FORBIDDEN', `reports on ${subject} must name host ${from ?? '(none)'}, not ${b.hostId}`)
    }
    if (!(await this.actingSoon())) {
      for (const r of b.reports) if (r.t === 'checkpoint') this.metrics.checkpointFailures.inc({ cause: 'not-leader' })
      return NO_REPLY
    }
    const answers = await Promise.all(
      b.reports.map(async (r): Promise<ReportAnswer> => {
        try {
          const a = await this.onReportFrom(r, subject)
          // The lease lapsed while this batch was handled: this one is for the host to send again.
          return a === NO_REPLY ? { v: V, t: 'err', error: toWire(new ShoalError('E_NOT_LEADER', 'this balancer no longer leads: send the report again')) } : a
        } catch (e) {
          return { v: V, t: 'err', error: toWire(e) }
        }
      }),
    )
    return { v: V, t: 'answers', term: this.fence.term, answers }
  }

  /**
   * A large state from or for a host, in chunks. A host may store states only of a share it runs
   * (under that epoch) and read only the state of a share assigned to it.
   */
  private async onBlob(r: BlobRequest, subject: string): Promise<BlobReply | typeof NO_REPLY> {
    if (!this.acting()) return NO_REPLY
    const from = this.subjects.parseBlob(subject)
    if (from !== r.hostId) {
      this.bus.rejects.count(subject, 'identity')
      throw new ShoalError('E_FORBIDDEN', `a blob request on ${subject} must name host ${from ?? '(none)'}, not ${r.hostId}`)
    }
    const [shareId, epoch, owner] = r.name.split('.')
    const s = this.ledger.share(shareId ?? '')
    if (r.t === 'blob-put') {
      if (!s || owner !== r.hostId || s.host !== r.hostId || s.status !== 'running' || s.epoch !== Number(epoch)) {
        this.bus.rejects.count(subject, 'forbidden')
        throw new ShoalError('E_STALE_EPOCH', `host ${r.hostId} does not run share ${shareId} at epoch ${epoch}: it may not store ${r.name}`)
      }
      await this.blobs.put(r.hostId, r.name, r.index, r.count, r.total, r.chunk, Date.now())
      return { v: V, t: 'ok' }
    }
    if (!s || s.host !== r.hostId || s.status !== 'running' || s.stateRef?.name !== r.name) {
      this.bus.rejects.count(subject, 'forbidden')
      throw new ShoalError('E_FORBIDDEN', `host ${r.hostId} may read only the state of a share assigned to it, not ${r.name}`)
    }
    const { chunk, total } = await this.blobs.get(r.name, r.offset, r.length)
    return { v: V, t: 'blob', total, chunk }
  }

  private async onReport(r: Report): Promise<ReportReply | typeof NO_REPLY> {
    // Not leading (deposed, stepping down, or the lease unconfirmed for a whole lease): stay
    // silent, so the host's request reaches the leader or times out and is sent again.
    if (!(await this.actingSoon())) {
      if (r.t === 'checkpoint') this.metrics.checkpointFailures.inc({ cause: 'not-leader' })
      return NO_REPLY
    }
    const shareId = r.t === 'checkpoint' ? r.checkpoint.shareId : r.shareId
    const epoch = r.t === 'checkpoint' ? r.checkpoint.epoch : r.epoch
    const s = this.ledger.share(shareId)
    // The same result again (our ack was lost, or went to a balancer that no longer leads): it is
    // stored already, so the answer is the ack it should have had.
    if (r.t === 'done' && s && s.status === 'done' && s.epoch === epoch && s.hosts.at(-1) === r.hostId) return this.ack()
    if (!s || s.status !== 'running' || s.host !== r.hostId || s.epoch !== epoch) {
      if (r.t === 'checkpoint') this.metrics.checkpointFailures.inc({ cause: 'stale' })
      this.bus.rejects.count(this.subjects.report(r.hostId), 'stale-epoch')
      this.log.warn({ host: r.hostId, share: shareId, epoch, current: s?.epoch, status: s?.status, t: r.t }, 'stale report rejected')
      return this.nack('E_STALE_EPOCH', `share ${shareId} epoch ${epoch} on ${r.hostId} is not current (current epoch ${s?.epoch ?? 'none'}, ${s?.status ?? 'unknown'} on ${s?.host ?? 'no host'}): drop it`)
    }
    const now = Date.now()
    if (r.t === 'checkpoint') {
      const cp = r.checkpoint
      if (cp.stateBytes > this.config.shares.maxCheckpointBytes) {
        const msg = `checkpoint of ${shareId} is ${cp.stateBytes} bytes, over shares.maxCheckpointBytes (${this.config.shares.maxCheckpointBytes})`
        this.dropState(cp.stateRef?.name)
        this.metrics.checkpointFailures.inc({ cause: 'too-large' })
        await this.shareFailed(s, r.hostId, toWire(new ShoalError('E_CHECKPOINT_TOO_LARGE', msg)))
        return this.nack('E_CHECKPOINT_TOO_LARGE', msg)
      }
      const garbage = this.adopt(s, cp)
      await this.persistCheckpoint(s, now)
      this.dropState(garbage)
      this.metrics.checkpoints.inc()
      this.metrics.checkpointSize.observe(cp.stateBytes)
      return this.ack()
    }
    if (r.t === 'done') {
      // The host finished short of the record's end: a split whose answer never reached us. The
      // units past r.to were never processed; they become a share of their own.
      if (r.to < s.to && r.to >= s.from) await this.addTail(s, r.to, s.to, 'split answer lost')
      // Still this epoch's after the tail's write? (A loss or a cancel may have won meanwhile.)
      if (s.status !== 'running' || s.epoch !== epoch || s.host !== r.hostId) return this.nack('E_STALE_EPOCH', `share ${shareId} epoch ${epoch} changed while its result was recorded: drop it`)
      const garbage = s.stateRef?.name
      this.ledger.finish(s, r.result, r.unitsDone, now)
      this.live.delete(shareId)
      this.migratedAt.delete(shareId)
      await this.persistShare(s)
      this.dropState(garbage)
      this.log.info({ share: shareId, host: r.hostId, ms: Math.round(r.elapsedMs) }, 'share done')
      this.complete(s.jobId)
      this.kick()
      return this.ack()
    }
    // failed: the processor threw, could not load, or its state outgrew the limit.
    const garbage = r.checkpoint ? this.adopt(s, r.checkpoint) : undefined
    await this.shareFailed(s, r.hostId, r.error)
    this.dropState(garbage)
    return this.ack()
  }

  private ack(): ReportReply {
    return { v: V, t: 'ack', term: this.fence.term }
  }

  private nack(code: 'E_STALE_EPOCH' | 'E_CHECKPOINT_TOO_LARGE' | 'E_FORBIDDEN', message: string): ReportReply {
    return { v: V, t: 'nack', term: this.fence.term, error: toWire(new ShoalError(code, message)) }
  }

  /**
   * A share's processor failed on a host: retry from the last checkpoint on another host while
   * attempts remain (shares.maxAttempts), else fail the job with the error's code and message.
   */
  private async shareFailed(s: ShareRecord, hostId: string, error: WireErrorT): Promise<void> {
    s.attempts += 1
    if (!s.failedOn.includes(hostId)) s.failedOn.push(hostId)
    s.error = error
    s.updatedAt = Date.now()
    const job = this.ledger.job(s.jobId)
    const max = this.config.shares.maxAttempts
    if (job && !isFinal(job.state) && shareErrorRetryable(error) && s.attempts < max) {
      this.log.warn({ share: s.shareId, host: hostId, attempt: s.attempts, of: max, error: error.message }, 'share failed: retrying from its last checkpoint on another host')
      this.requeue(s, 'retry')
      return
    }
    if (s.status === 'running' || s.status === 'pending') this.ledger.fail(s, Date.now())
    this.assignedAt.delete(s.shareId)
    await this.persistShare(s)
    if (job && !isFinal(job.state)) {
      this.log.warn({ share: s.shareId, host: hostId, error }, 'share failed for good')
      const attempts = s.attempts > 1 ? ` (after ${s.attempts} attempts)` : ''
      await this.finishJob(job, 'failed', {
        error: toWire(
          new ShoalError('E_JOB_FAILED', `job ${job.jobId} failed: share ${s.shareId} on host ${hostId}${attempts}: ${error.code}: ${error.message}`, {
            cause: error,
            details: { shareId: s.shareId, hostId, code: error.code, attempts: s.attempts },
          }),
        ),
      })
    }
  }

  // ------------------------------------------------------------------ API

  /**
   * The API as `identity` (from the subject, which a secured cluster's permissions tie to it):
   * operators may do anything; a submitter may submit, and read, follow and cancel its own jobs.
   */
  private async onApiFrom(r: ApiRequest, subject: string): Promise<ApiReply | typeof NO_REPLY> {
    const parsed = this.subjects.parseApi(subject)
    if (!parsed || parsed.op !== r.t) {
      this.bus.rejects.count(subject, 'invalid')
      throw new ShoalError('E_MSG_INVALID', `a '${r.t}' request must be sent on ${this.subjects.prefix}.api.${r.t}.<identity>, not ${subject}`)
    }
    const identity = parsed.identity
    if (!isOperator(identity) && !(SUBMITTER_OPS as readonly string[]).includes(r.t)) {
      this.bus.rejects.count(subject, 'forbidden')
      throw new ShoalError('E_FORBIDDEN', `${identity} may not ${r.t}: only operators act on hosts, shares and settings`)
    }
    return this.onApi(r, identity)
  }

  /** The job `jobId`, if `identity` may see and act on it. */
  private jobFor(jobId: string, identity: string, op: ApiOp): JobRecord {
    const job = this.ledger.job(jobId)
    if (!job) throw new ShoalError('E_NO_SUCH_JOB', `no job ${jobId}`)
    if (!mayActOn(job, identity)) {
      this.bus.rejects.count(this.subjects.api(op, identity), 'forbidden')
      throw new ShoalError('E_FORBIDDEN', `job ${jobId} belongs to another submitter: ${identity} may act only on its own jobs`)
    }
    return job
  }

  private async onApi(r: ApiRequest, identity: string): Promise<ApiReply | typeof NO_REPLY> {
    const now = Date.now()
    // While the lease is unconfirmed (a JetStream election, our own NATS link coming back) reads
    // are answered from memory, so progress stays visible; changes wait for a leader.
    if (this.stopped || (!this.acting() && !(READ_ONLY_OPS.has(r.t) || (r.t === 'config' && r.key === undefined)))) return NO_REPLY
    switch (r.t) {
      case 'submit':
        return { v: V, t: 'job', job: await this.submit(r, identity) }
      case 'cancel': {
        const job = this.jobFor(r.jobId, identity, 'cancel')
        if (!isFinal(job.state)) await this.finishJob(job, 'cancelled', {})
        return { v: V, t: 'job', job: this.summary(job, now, false) }
      }
      case 'job': {
        const job = this.jobFor(r.jobId, identity, 'job')
        return { v: V, t: 'job', job: this.summary(job, now, r.withShares ?? false) }
      }
      case 'status': {
        // By id, so that the pages of a pool too large for one reply (hostsAfter) neither overlap
        // nor skip while hosts change state; the SDK orders them for reading (alive first).
        const after = r.hostsAfter
        const all = this.membership.all().filter((h) => after === undefined || h.hostId > after).sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0))
        const hosts = all.map((h) => hostSummary(h, this.ledger.runningOn(h.hostId).size, this.draining.has(h.hostId), now))
        // A later page carries hosts only: the rest came with the first.
        const firstPage = after === undefined
        const jobs = firstPage ? this.ledger.newestJobs(50, (j) => mayActOn(j, identity)).map((j) => this.summary(j, now, !isFinal(j.state))) : []
        const balance = this.lastBalance ? { ...this.lastBalance, splitsTotal: this.splits } : undefined
        const { leader, standbys } = this.leadership()
        // A submitter sees the history of its own jobs only, and no reject counts (they name identities).
        const operator = isOperator(identity)
        const mine = (x: { jobId: string }) => {
          const job = this.ledger.job(x.jobId)
          return job ? mayActOn(job, identity) : operator
        }
        const history = <T extends { jobId: string }>(list: T[], n: number): T[] => (firstPage ? list.filter(mine).slice(-n) : [])
        const reply = { v: V, t: 'status' as const, hosts, hostsTotal: all.length, jobs, rejected: operator && firstPage ? this.rejected() : {}, migrations: history(this.migrations, 50), failovers: history(this.failovers, 100), ...(balance && firstPage ? { balance } : {}), leader, standbys }
        // Room to spare for the fields fitStatus does not cut.
        const max = this.bus.codec.maxMessageBytes
        return fitStatus(reply, (r) => this.bus.codec.sizeOf(r), Math.max(512, Math.min(max - 4096, Math.floor(max * 0.95))))
      }
      case 'migrate':
        return { v: V, t: 'migration', migration: await this.migrate(r.shareId, r.toHost, 'manual') }
      case 'drain':
        await this.setDraining(r.hostId, r.drain)
        return { v: V, t: 'ok' }
      case 'config': {
        if (r.key === undefined) return { v: V, t: 'config', settings: liveSettings(this.config) }
        assertKnownKey(r.key)
        if (!isLiveKey(r.key)) {
          throw new ShoalError('E_CONFIG', `${r.key} cannot change on a running balancer; restart it with the new value (these change live: ${LIVE_KEYS.join(', ')})`)
        }
        if (r.value === undefined) throw new ShoalError('E_CONFIG', `${r.key}: no value given`)
        // Validated exactly like start-up config: a bad value throws E_CONFIG naming the key, and nothing changes.
        const [changed] = this.applySettings(setConfigValue(this.config, r.key, r.value), 'shoal config set')
        return { v: V, t: 'config', settings: liveSettings(this.config), ...(changed ? { changed } : {}) }
      }
    }
  }

  /**
   * Admits a job, once: a second submission of the same id (a client's retry, perhaps while the
   * first is still being validated or stored) waits for the first and returns its job.
   */
  private async submit(m: Submit, owner: string): Promise<ReturnType<Balancer['summary']>> {
    const inFlight = this.admitting.get(m.jobId)
    if (inFlight) await inFlight.catch(() => undefined)
    const existing = this.ledger.job(m.jobId)
    if (existing) {
      const job = this.jobFor(m.jobId, owner, 'submit')
      const differs = submissionDiffers(job, m)
      if (differs.length) {
        throw new ShoalError('E_JOB_EXISTS', `job ${m.jobId} exists with another ${differs.join(', ')}: submit it again exactly as before to follow it, or choose another job id`, { details: { jobId: m.jobId, differs } })
      }
      return this.summary(job, Date.now(), false)
    }
    const admission = this.admit(m, owner)
    this.admitting.set(m.jobId, admission)
    try {
      return await admission
    } finally {
      if (this.admitting.get(m.jobId) === admission) this.admitting.delete(m.jobId)
    }
  }

  private async admit(m: Submit, owner: string): Promise<ReturnType<Balancer['summary']>> {
    const now = Date.now()
    if (!(m.to > m.from)) {
      throw new ShoalError('E_BAD_RANGE', `range [${m.from}, ${m.to}) is empty: 'to' must be greater than 'from'`)
    }
    const known = new Set(this.membership.all().filter((h) => h.state !== 'left').flatMap((h) => h.heartbeat.processors))
    const poolEmpty = this.membership.alive().length === 0
    if (!poolEmpty && !known.has(m.processor)) {
      throw new ShoalError(
        'E_UNKNOWN_PROCESSOR',
        `no host in the pool registers processor '${m.processor}' (registered: ${[...known].sort().join(', ') || 'none'})`,
        { details: { processor: m.processor } },
      )
    }
    const { maxPerJob, perJob, minUnitsPerShare } = this.config.shares
    if (m.shares !== undefined && m.shares > maxPerJob) {
      throw new ShoalError('E_BAD_JOB', `shares must be at most shares.maxPerJob (${maxPerJob}) (got ${m.shares})`)
    }
    this.assertAssignable(m)
    const candidates = this.membership.alive().filter((h) => h.heartbeat.processors.includes(m.processor))
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
    this.ledger.addJob(job)
    const writes = [this.persistJob(job)]
    for (const [i, [from, to]] of ranges.entries()) {
      const s: ShareRecord = { shareId: `${job.jobId}-s${i}`, jobId: job.jobId, from, to, position: from, status: 'pending', epoch: 0, host: null, hosts: [], unitsDone: 0, attempts: 0, failedOn: [], updatedAt: now }
      this.ledger.addShare(s)
      writes.push(this.persistShare(s))
    }
    // Until these are durable the job is not admitted: its shares wait in memory (a pass may
    // place them; each assignment awaits its own share's write first).
    await Promise.all(writes)
    this.log.info({ job: job.jobId, processor: job.processor, from: m.from, to: m.to, shares: ranges.length }, 'job admitted')
    this.kick()
    return this.summary(job, now, false)
  }

  /**
   * Refuses an input no assignment could carry: a share's assignment holds the input and a few
   * more fields than the submission did, so an input just under the limit would be admitted and
   * then never sent (issue 10 saw 576 tries in 8 s). Measured on the largest assignment the job
   * can produce, without its checkpoint state.
   */
  private assertAssignable(m: Submit): void {
    const codec = this.bus.codec
    const big = Number.MAX_SAFE_INTEGER
    const bytes = codec.sizeOf(assignCommand(m, { shareId: `${m.jobId}-s${big}`, from: m.to, to: m.to, position: m.to, unitsDone: m.to }, big, big))
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
      await this.command(hostId, { v: V, t: 'validate', term: this.fence.term, processor: m.processor, input: m.input })
    } catch (e) {
      if (e instanceof ShoalError && (e.code === 'E_TIMEOUT' || e.code === 'E_UNAVAILABLE')) return
      throw new ShoalError('E_BAD_JOB', `input rejected by processor '${m.processor}': ${(e as Error).message}`, { cause: e })
    }
  }

  // ------------------------------------------------------------------ placement

  /**
   * Schedules a policy pass soon. A kick (a share pending, a slot freed, a host joined) applies the
   * plan's placements, splits and mandatory moves; an interval pass also its balancing moves, at
   * the DRS cadence of `balancer.intervalMs`. Triggers during a pass coalesce into one more pass.
   */
  private kick(kind: 'kick' | 'interval' = 'kick'): void {
    if (this.stopped) return
    this.passWanted = this.passWanted === 'interval' || kind === 'interval' ? 'interval' : 'kick'
    if (this.passing) return
    this.passing = true
    // runPasses catches each pass's errors itself.
    setImmediate(() => {
      this.runPasses().catch((e: unknown) => this.failed('a balancing pass', e))
    })
  }

  private async runPasses(): Promise<void> {
    try {
      // A balancer that may not act keeps the wish; the tick kicks again once it can.
      while (this.passWanted !== null && this.acting()) {
        const kind = this.passWanted
        this.passWanted = null
        await this.pass(kind).catch((e: unknown) => this.failed('a balancing pass', e))
      }
    } finally {
      this.passing = false
    }
  }

  private cycle(): void {
    if (!this.acting()) return
    for (const job of this.ledger.openJobs()) if (job.state === 'running') this.complete(job.jobId)
    this.kick('interval')
  }

  /** Completes a job whose shares are all done (in the background; errors are logged). */
  private complete(jobId: string): void {
    this.maybeComplete(jobId).catch((e: unknown) => this.failed('completing a job', e))
  }

  /** The balancing knobs, read from the config on every pass. */
  private knobs(): Knobs {
    const b = this.config.balancer
    return {
      migrationThreshold: b.migrationThreshold as Knobs['migrationThreshold'],
      minResidencyMs: b.minResidencyMs,
      maxMovesPerCycle: b.maxMovesPerCycle,
      maxConcurrentMigrationsPerHost: b.maxConcurrentMigrationsPerHost,
      splitMinUnits: b.splitMinUnits,
    }
  }

  /** One pass: snapshot → pure `decide` → apply (the plan-then-apply split of DESIGN.md). */
  private async pass(kind: 'kick' | 'interval'): Promise<void> {
    const view = buildClusterView({
      hosts: this.membership.all(),
      draining: this.draining,
      benched: this.refusals.benched(Date.now()),
      incoming: this.incoming,
      coreSpeeds: this.coreSpeeds,
      jobs: [...this.ledger.openJobs()],
      sharesOf: (jobId) => this.ledger.sharesOf(jobId),
      live: this.live,
      movedAt: this.migratedAt,
      moving: this.moving,
      stun: learnStunCost(this.migrations),
      loads: this.loads,
    })
    const now = Date.now()
    const knobs = this.knobs()
    const t0 = performance.now()
    const plan = decide(view, knobs, now)
    const decideMs = performance.now() - t0
    this.metrics.decide.observe({ pass: kind }, decideMs / 1000)
    // What a pass of this kind applies and remembers: core/pass-rules.ts, shared with the simulator.
    if (recordsCoreSpeeds(kind)) for (const [hostId, speed] of Object.entries(plan.coreSpeeds)) this.coreSpeeds.set(hostId, speed)
    const actions = actionsFor(kind, plan.actions)
    if (kind === 'interval') {
      this.lastBalance = summarisePlan(plan, knobs.migrationThreshold, now, decideMs)
      const moves = plan.actions.filter((a) => a.kind !== 'place')
      if (moves.length) this.log.info({ imbalance: +plan.imbalance.toFixed(4), tolerated: +plan.toleratedImbalance.toFixed(4), decideMs: +decideMs.toFixed(2), reasons: plan.reasons }, `balancing pass: ${describeActions(moves)}`)
    }
    await this.noteWaiting(plan.waiting)
    await this.apply(actions)
  }

  /** Carries out a plan: placements are awaited; migrations and splits run on (their shares are busy meanwhile). */
  private async apply(actions: readonly Action[]): Promise<void> {
    const placements: Array<Promise<void>> = []
    for (const a of actions) {
      if (a.kind === 'place') placements.push(this.assign(a.shareId, a.hostId))
      else if (a.kind === 'migrate') {
        this.log.info({ share: a.shareId, from: a.fromHost, to: a.toHost, reason: a.reason, goodness: +a.goodness.toFixed(5), cost: +a.cost.toFixed(5) }, `migrating (${a.reason})`)
        this.migrate(a.shareId, a.toHost, a.reason).catch((e: Error) => this.log.warn({ share: a.shareId, to: a.toHost, reason: a.reason, err: e.message }, 'planned migration refused'))
      } else {
        // split() catches and logs its own refusals.
        this.split(a.shareId, a.toHost, a.fraction).catch((e: unknown) => this.failed('a dynamic split', e))
      }
    }
    await Promise.all(placements)
  }

  /** Tells the clients of waiting jobs why they wait (no host with the processor, no room, ...). */
  private async noteWaiting(waiting: Readonly<Record<string, string>>): Promise<void> {
    for (const [jobId, reason] of Object.entries(waiting)) {
      const job = this.ledger.job(jobId)
      if (job && job.state === 'waiting' && job.reason !== reason) {
        job.reason = reason
        await this.persistJob(job)
        this.publishJob(job)
      }
    }
  }

  /** One alive host as placement sees it, or undefined (the migration path checks its target with it). */
  private placementHost(hostId: string): PlacementHost | undefined {
    const h = this.membership.get(hostId)
    if (!h || h.state !== 'alive') return undefined
    const hb = h.heartbeat
    return {
      hostId: h.hostId,
      slots: hb.capacity.slots,
      freeSlots: hb.capacity.slots - this.ledger.runningOn(h.hostId).size - (this.incoming.get(h.hostId) ?? 0),
      cores: hb.capacity.cores,
      memFreeBytes: hb.load.memFreeBytes,
      externalLoad: this.loads.external(h.hostId)?.level ?? Math.max(0, hb.load.cpuMachine - hb.load.cpuShoal),
      tags: hb.tags,
      processors: new Set(hb.processors),
      draining: this.draining.has(h.hostId),
    }
  }

  /** Gives a pending share a new epoch on a host, durably, then tells the host. */
  private async assign(shareId: string, hostId: string): Promise<void> {
    const s = this.ledger.share(shareId)
    const job = s && this.ledger.job(s.jobId)
    if (!s || !job || s.status !== 'pending' || isFinal(job.state)) return
    // Measured before anything changes: no host could ever be sent an assignment over the limit
    // (an input admitted under an older limit, or with a large inline state), so the job fails
    // rather than being tried again and again.
    const bytes = this.bus.codec.sizeOf(assignCommand(job, s, s.epoch + 1, this.fence.term))
    if (bytes > this.bus.codec.maxMessageBytes) {
      await this.shareFailed(s, hostId, toWire(new ShoalError('E_UNPLACEABLE', `share ${shareId} cannot be sent to any host: its assignment is ${bytes} bytes, over protocol.maxMessageBytes (${this.bus.codec.maxMessageBytes}). The job's input and the share's inline checkpoint state must fit in it together`)))
      return
    }
    this.ledger.assign(s, hostId, Date.now())
    const reason = this.pendingReason.get(shareId)
    this.pendingReason.delete(shareId)
    const failover = this.openFailover.get(shareId)
    if (failover) {
      failover.toHost = hostId
      failover.redispatchedAt = s.updatedAt
      this.openFailover.delete(shareId)
    }
    // The job turns running together with its first share, before any await: a client must
    // never read a running share in a job that still says it waits.
    const started = job.state === 'waiting'
    if (started) this.ledger.startJob(job)
    const epoch = s.epoch
    await this.persistShare(s)
    if (started) {
      await this.persistJob(job)
      this.publishJob(job)
    }
    // While the write waited (a store outage), the share may have been put back or moved on.
    // (Read through a wider type: the ledger changed the status TypeScript narrowed above.)
    const cur: ShareRecord = s
    if (cur.status !== 'running' || s.epoch !== epoch || s.host !== hostId) return
    // The missing-from-heartbeat grace counts from here, when the host is told, not from the
    // decision: a write that waited out a JetStream election (4-6 s) is not the host's silence
    // (a 3-node chaos test saw three shares re-dispatched as lost for it).
    this.assignedAt.set(shareId, Date.now())
    try {
      await this.command(hostId, assignCommand(job, s, epoch, this.fence.term))
      this.log.info({ share: shareId, host: hostId, epoch, position: s.position, reason: reason ?? 'place' }, reason ? `share re-dispatched (${reason})` : 'share placed')
      this.refusals.hostAccepted(hostId)
      this.refusals.shareSettled(shareId)
    } catch (e) {
      if (await this.assignRefused(s, epoch, hostId, e)) return
      // The host did not take it: back to pending. If it did take it after all (a timeout), its
      // reports carry this epoch, which the next assignment makes stale, so nothing counts twice.
      this.log.warn({ share: shareId, host: hostId, err: (e as Error).message }, 'assignment failed; share back to pending')
      if (cur.status === 'running' && s.epoch === epoch && !this.stopped) {
        this.ledger.requeue(s, Date.now())
        this.assignedAt.delete(shareId)
        await this.persistShare(s)
        setTimeout(() => this.kick(), 250)
      }
    }
  }

  /**
   * Bookkeeping of a failed assignment: a host that keeps failing them is benched for a while; a
   * share refused MAX_ASSIGN_REFUSALS times fails its job. True when the share was failed here.
   */
  private async assignRefused(s: ShareRecord, epoch: number, hostId: string, e: unknown): Promise<boolean> {
    const err = e instanceof ShoalError ? e : new ShoalError('E_INTERNAL', String(e))
    if (s.status !== 'running' || s.epoch !== epoch || this.stopped) return false
    // Not the host's doing: this balancer was deposed, or the checkpoint store is out for a while.
    if (err.code === 'E_NOT_LEADER' || err.code === 'E_STALE_TERM' || err.code === 'E_STORE') return false
    const benchMs = this.refusals.hostRefused(hostId, Date.now())
    if (benchMs !== undefined) this.log.warn({ host: hostId, benchMs, err: err.message }, `host ${hostId} failed assignments again and again: nothing new goes there for ${benchMs} ms`)
    // A host that answered no (not one that could not be reached) counts against the share.
    if (err.code === 'E_TIMEOUT' || err.code === 'E_UNAVAILABLE') return false
    const current = () => s.status === 'running' && s.epoch === epoch
    const tries = this.refusals.shareRefused(s.shareId)
    if (tries < MAX_ASSIGN_REFUSALS || !current()) return false
    this.refusals.shareSettled(s.shareId)
    await this.shareFailed(s, hostId, toWire(new ShoalError('E_UNPLACEABLE', `share ${s.shareId} was refused by hosts ${tries} times; the last refusal, by ${hostId}: ${err.code}: ${err.message}`, { cause: err })))
    return true
  }

  // ------------------------------------------------------------------ migration and drain

  /**
   * Live migration: pause the share on its host at the next safe point and take its final
   * checkpoint, store it durably with epoch + 1 and the target as host, then resume it on the
   * target. Stun = pause request sent → target confirmed (an upper bound: the source stops at the
   * first safe point after the request). Throws E_MIGRATION_REFUSED when it cannot start, and the
   * share keeps running where it was.
   */
  async migrate(shareId: string, toHost: string, reason: MoveReason): Promise<Migration> {
    const s = this.ledger.share(shareId)
    if (!s) throw new ShoalError('E_NO_SUCH_SHARE', `no share ${shareId}`)
    const job = this.ledger.job(s.jobId)
    const refuse = (why: string) => new ShoalError('E_MIGRATION_REFUSED', `cannot migrate ${shareId} to ${toHost}: ${why}`)
    if (s.status !== 'running' || !s.host || !job) throw refuse(`the share is ${s.status}, not running`)
    if (this.moving.has(shareId)) throw refuse('it is already being moved')
    if (s.host === toHost) throw refuse('it already runs there')
    // Only the target is built: the whole pool would cost a pass over every share per host.
    const target = this.placementHost(toHost)
    if (!target) throw refuse(`host ${toHost} is not alive in the pool`)
    const probe: PendingShare = { shareId, jobId: job.jobId, processor: job.processor, requiredTags: job.requiredTags, memoryBytes: job.memoryBytesPerShare }
    const fit = planPlacement([target], [probe])
    if (!fit.placements.length) throw refuse(fit.unplaced[0]?.reason ?? 'the host cannot take it')
    // The spread limit the policy keeps (core/eligibility.ts): a move past it would be undone by
    // the next balancing pass.
    if (job.spread) {
      const open = this.ledger.sharesOf(job.jobId).filter((x) => x.status === 'running' || x.status === 'pending')
      const qualifying = this.membership.alive().filter((h) => !this.draining.has(h.hostId) && qualifies({ processors: new Set(h.heartbeat.processors), tags: h.heartbeat.tags }, job)).length
      const cap = spreadCap(open.length, qualifying)
      const there = open.filter((x) => x.status === 'running' && x.host === toHost).length
      if (there >= cap) throw refuse(`job ${job.jobId} spreads its shares: ${toHost} runs ${there} of them already, the most one host may (${open.length} shares over ${qualifying} hosts)`)
    }

    const fromHost = s.host
    const epoch = s.epoch
    this.moving.add(shareId)
    this.incoming.set(toHost, (this.incoming.get(toHost) ?? 0) + 1)
    const t0 = performance.now()
    const record = (ok: boolean, pauseMs: number, bytes: number, error?: unknown): Migration => {
      const m: Migration = { shareId, jobId: job.jobId, fromHost, toHost, reason, epoch: s.epoch, at: Date.now(), ok, stunMs: performance.now() - t0, pauseMs, checkpointBytes: bytes }
      if (error !== undefined) m.error = toWire(error)
      this.metrics.migrations.inc({ reason, result: ok ? 'ok' : 'failed' })
      if (ok) this.metrics.stun.observe({ reason }, m.stunMs / 1000)
      this.migrations.push(m)
      if (this.migrations.length > MIGRATIONS_KEPT) this.migrations.shift()
      this.log.info({ share: shareId, from: fromHost, to: toHost, reason, ok, stunMs: +m.stunMs.toFixed(2), pauseMs: +pauseMs.toFixed(2), bytes }, ok ? 'share migrated' : 'migration failed')
      return m
    }
    try {
      let reply
      try {
        reply = await this.command(fromHost, { v: V, t: 'pause', term: this.fence.term, shareId, epoch }, PAUSE_TIMEOUT_MS)
      } catch (e) {
        // Nothing changed yet: the share still runs on the source (or finished there).
        record(false, performance.now() - t0, 0, e)
        throw refuse(`the source did not hand it over: ${(e as Error).message}`)
      }
      const pauseMs = performance.now() - t0
      if (reply.t !== 'paused') throw new ShoalError('E_INTERNAL', `unexpected pause reply '${reply.t}'`)
      if (s.status !== 'running' || s.epoch !== epoch || s.host !== fromHost) {
        // The source was declared dead meanwhile and the share re-dispatched: that path owns it now.
        this.dropState(reply.checkpoint.stateRef?.name)
        return record(false, pauseMs, reply.checkpoint.stateBytes, refuse('the share was re-dispatched during the migration'))
      }
      const cp = reply.checkpoint
      const garbage = this.adopt(s, cp)
      this.ledger.moveTo(s, toHost, Date.now())
      this.assignedAt.set(shareId, s.updatedAt)
      this.migratedAt.set(shareId, s.updatedAt)
      this.live.delete(shareId)
      const newEpoch = s.epoch
      await this.persistShare(s)
      this.dropState(garbage)
      // Declared lost or cancelled while the write waited: that path owns the share now.
      if (s.status !== 'running' || s.epoch !== newEpoch || s.host !== toHost) return record(false, pauseMs, cp.stateBytes, refuse('the share changed while its checkpoint was being stored'))
      try {
        await this.command(toHost, {
          v: V,
          t: 'assign',
          term: this.fence.term,
          share: { shareId, jobId: job.jobId, epoch: s.epoch, processor: job.processor, input: job.input, from: s.from, to: s.to, position: s.position, state: s.state, ...(s.stateRef ? { stateRef: s.stateRef } : {}), unitsDone: s.unitsDone },
        })
      } catch (e) {
        // Paused and durable, but the target did not take it: place it anew from that checkpoint.
        this.requeue(s, reason)
        return record(false, pauseMs, cp.stateBytes, e)
      }
      return record(true, pauseMs, cp.stateBytes)
    } finally {
      this.moving.delete(shareId)
      this.incoming.set(toHost, (this.incoming.get(toHost) ?? 1) - 1)
    }
  }

  /**
   * Dynamic split: the share's host keeps [position, mid) and the tail [mid, to) becomes a new
   * share, placed on `toHost`. The tail record is stored before the original shrinks, so a crash
   * in between leaves an overlap that recovery trims, never a gap.
   */
  async split(shareId: string, toHost: string, fraction: number): Promise<{ tailShareId: string; keptTo: number; tail: [number, number] } | null> {
    const s = this.ledger.share(shareId)
    if (!s || s.status !== 'running' || !s.host || this.moving.has(shareId)) return null
    const epoch = s.epoch
    this.moving.add(shareId)
    // Hold a slot on the target until the tail is assigned there, so placement does not fill it.
    this.incoming.set(toHost, (this.incoming.get(toHost) ?? 0) + 1)
    let reserved = true
    const release = () => {
      if (reserved) this.incoming.set(toHost, (this.incoming.get(toHost) ?? 1) - 1)
      reserved = false
    }
    try {
      const reply = await this.command(s.host, { v: V, t: 'split', term: this.fence.term, shareId, epoch, fraction }, PAUSE_TIMEOUT_MS)
      if (reply.t !== 'split' || !reply.tail) return null
      if (s.epoch !== epoch || s.status !== 'running') return null // lost meanwhile: the tail is in its checkpoint range
      const [mid, end] = reply.tail
      // A `done` that overtook this answer has cut the tail already ('split answer lost').
      if (s.to <= mid) return null
      const tail = await this.addTail(s, mid, end, `split for ${toHost}`)
      this.splits++
      this.metrics.splits.inc()
      release()
      await this.assign(tail.shareId, toHost)
      return { tailShareId: tail.shareId, keptTo: mid, tail: [mid, end] }
    } catch (e) {
      this.log.warn({ share: shareId, err: (e as Error).message }, 'split refused')
      return null
    } finally {
      this.moving.delete(shareId)
      release()
    }
  }

  /**
   * Cuts [mid, end) off share `s` into a new pending share. In memory both change at once, before
   * any await, so a report or split answer handled meanwhile sees the share already cut and cannot
   * cut the same tail twice (a unit counted twice). In KV the tail is stored before the original
   * shrinks, so a crash in between leaves an overlap that recovery trims, never a gap; until the
   * tail is stored it counts as moving, so no pass places it before its record exists.
   */
  private async addTail(s: ShareRecord, mid: number, end: number, why: string): Promise<ShareRecord> {
    const job = this.ledger.job(s.jobId)!
    const now = Date.now()
    const tail: ShareRecord = { shareId: `${job.jobId}-s${job.nextShare++}`, jobId: job.jobId, from: mid, to: end, position: mid, status: 'pending', epoch: 0, host: null, hosts: [], unitsDone: 0, attempts: 0, failedOn: [], updatedAt: now }
    this.ledger.addShare(tail)
    this.moving.add(tail.shareId)
    s.to = mid
    s.position = Math.min(s.position, mid)
    s.updatedAt = now
    this.pendingReason.set(tail.shareId, 'split')
    try {
      // The tail before the original shrinks (see above); the job's share counter with the tail.
      await Promise.all([this.persistJob(job), this.persistShare(tail)])
      await this.persistShare(s)
    } finally {
      this.moving.delete(tail.shareId)
    }
    this.log.info({ share: s.shareId, tail: tail.shareId, at: mid, to: end, why }, 'share split')
    return tail
  }

  private async setDraining(hostId: string, drain: boolean): Promise<void> {
    if (drain && !this.membership.get(hostId)) throw new ShoalError('E_NO_SUCH_HOST', `no host ${hostId} in the pool`)
    if (drain === this.draining.has(hostId)) return
    if (drain) this.draining.add(hostId)
    else this.draining.delete(hostId)
    await this.store.putHost({ hostId, draining: drain })
    this.log.info({ host: hostId }, drain ? 'host draining: migrating its shares away' : 'host back in service')
    this.kick()
  }

  // ------------------------------------------------------------------ completion

  private async maybeComplete(jobId: string): Promise<void> {
    const job = this.ledger.job(jobId)
    const shares = this.ledger.sharesOf(jobId)
    if (!job || isFinal(job.state) || this.merging.has(jobId)) return
    if (!shares.length || this.ledger.doneCount(jobId) !== shares.length) return
    this.merging.add(jobId)
    try {
      const results = [...shares].sort((a, b) => a.from - b.from).map((s) => s.result)
      const result = results.length === 1 ? results[0] : await this.merge(job, results)
      await this.finishJob(job, 'completed', { result })
      this.log.info({ job: jobId, ms: (job.finishedAt ?? 0) - job.submittedAt }, 'job completed')
    } catch (e) {
      const err = e as ShoalError
      if (err.code === 'E_PROCESSOR_THREW') {
        await this.finishJob(job, 'failed', { error: toWire(new ShoalError('E_JOB_FAILED', `job ${jobId} failed: merge threw: ${err.message}`, { cause: err })) })
      } else {
        this.log.warn({ job: jobId, err: err.message }, 'merge not possible yet; will retry next cycle')
      }
    } finally {
      this.merging.delete(jobId)
    }
  }

  /** Merges on a host that has the processor, in batches that fit in a message. */
  private async merge(job: JobRecord, results: unknown[]): Promise<unknown> {
    const host = this.membership.alive().find((h) => h.heartbeat.processors.includes(job.processor))
    if (!host) throw new ShoalError('E_UNAVAILABLE', `no live host with processor '${job.processor}' to merge results`)
    const batch = 256
    let acc: unknown[] = results
    while (acc.length > 1) {
      const next: unknown[] = []
      for (let i = 0; i < acc.length; i += batch) {
        const part = acc.slice(i, i + batch)
        if (part.length === 1) {
          next.push(part[0])
          continue
        }
        const reply = await this.command(host.hostId, { v: V, t: 'merge', term: this.fence.term, processor: job.processor, input: job.input, results: part }, MERGE_TIMEOUT_MS)
        if (reply.t !== 'merged') throw new ShoalError('E_INTERNAL', `unexpected merge reply '${reply.t}'`)
        next.push(reply.result)
      }
      acc = next
    }
    return acc[0]
  }

  private async finishJob(job: JobRecord, state: 'completed' | 'failed' | 'cancelled', how: { result?: unknown; error?: JobRecord['error'] }): Promise<void> {
    this.ledger.endJob(job, state, Date.now())
    if ('result' in how) job.result = how.result
    if (how.error) job.error = how.error
    if (state === 'cancelled') job.error = toWire(new ShoalError('E_CANCELLED', `job ${job.jobId} was cancelled`))
    this.metrics.jobDuration.observe({ state }, Math.max(0, job.finishedAt! - job.submittedAt) / 1000)
    for (const s of this.ledger.sharesOf(job.jobId)) this.refusals.shareSettled(s.shareId)
    await this.persistJob(job)
    if (state !== 'completed') {
      for (const s of this.ledger.sharesOf(job.jobId)) {
        if (s.status !== 'running' && s.status !== 'pending') continue
        const { host, epoch } = s
        const garbage = s.stateRef?.name
        this.ledger.cancel(s, Date.now())
        await this.persistShare(s)
        this.dropState(garbage)
        // Best effort: a host that misses it learns from its next heartbeat's answer.
        if (host) this.command(host, { v: V, t: 'drop', term: this.fence.term, shareId: s.shareId, epoch }).catch(() => undefined)
      }
    }
    this.publishJob(job)
  }

  /**
   * Forgets finished jobs older than jobs.retainMs: out of memory, and their job and share records
   * out of the store (deleted by compare-and-set, so a record another term rewrote stays). The id
   * is free again once the job record is deleted.
   */
  private forgetExpired(now: number): void {
    if (!this.acting()) return
    for (const jobId of expiredJobs(this.ledger.allJobs(), now, this.config.jobs.retainMs)) {
      if (this.merging.has(jobId) || this.admitting.has(jobId)) continue
      const shares = this.ledger.forget(jobId)
      this.lastProgress.delete(jobId)
      for (const s of shares) {
        for (const m of [this.live, this.assignedAt, this.migratedAt, this.pendingReason, this.openFailover]) m.delete(s.shareId)
        this.refusals.shareSettled(s.shareId)
        this.dropState(s.stateRef?.name)
      }
      this.store.removeJob(jobId, shares.map((s) => s.shareId)).catch((e: unknown) => this.failed('forgetting a finished job', e))
    }
  }

  /** What the metrics' state gauges show, read at scrape time (one pass over the records). */
  metricsState(): BalancerState {
    const sharesByState: Record<string, number> = { ...this.ledger.shareCounts() }
    const hostsByState: Record<string, number> = {}
    const hosts: BalancerState['hosts'] = []
    for (const h of this.membership.all()) {
      hostsByState[h.state] = (hostsByState[h.state] ?? 0) + 1
      if (h.state !== 'alive' && h.state !== 'suspect') continue
      const slots = h.heartbeat.capacity.slots
      hosts.push({ hostId: h.hostId, slots, freeSlots: Math.max(0, slots - this.ledger.runningOn(h.hostId).size - (this.incoming.get(h.hostId) ?? 0)), cores: h.heartbeat.capacity.cores, draining: this.draining.has(h.hostId) })
    }
    const jobsByState: Record<string, number> = { ...this.ledger.jobCounts() }
    const jobProgress: BalancerState['jobProgress'] = []
    const now = Date.now()
    for (const j of this.ledger.openJobs()) {
      const sum = this.summary(j, now, false)
      jobProgress.push({ jobId: j.jobId, unitsDone: sum.unitsDone, unitsTotal: sum.unitsTotal })
    }
    const b = this.config.balancer
    const settings = {
      'balancer.migrationThreshold': b.migrationThreshold,
      'balancer.intervalMs': b.intervalMs,
      'balancer.minResidencyMs': b.minResidencyMs,
      'balancer.maxMovesPerCycle': b.maxMovesPerCycle,
      'balancer.maxConcurrentMigrationsPerHost': b.maxConcurrentMigrationsPerHost,
      'balancer.splitMinUnits': b.splitMinUnits,
      'balancer.loadWindowMs': b.loadWindowMs,
    }
    const st: BalancerState = { hostsByState, hosts, sharesByState, jobsByState, jobProgress, settings }
    const lb = this.lastBalance
    if (lb) {
      const loads = Object.values(lb.loads)
      st.balance = {
        imbalance: lb.imbalance,
        toleratedImbalance: lb.toleratedImbalance ?? Number.POSITIVE_INFINITY,
        meanLoad: loads.length ? loads.reduce((a, x) => a + x, 0) / loads.length : 0,
        loads: lb.loads,
        loadNoise: lb.loadNoise,
      }
    }
    return st
  }

  // ------------------------------------------------------------------ helpers

  /**
   * Takes a checkpoint into the share record when it does not go backwards. Returns the name of a
   * state object that is no longer needed (the superseded one, or the ignored checkpoint's own).
   */
  private adopt(s: ShareRecord, cp: CheckpointMsg): string | undefined {
    if (cp.position < s.position || cp.position > s.to) return cp.stateRef?.name
    const old = s.stateRef?.name
    s.position = cp.position
    s.state = cp.stateRef ? undefined : cp.state
    s.stateRef = cp.stateRef
    s.stateBytes = cp.stateBytes
    s.unitsDone = cp.unitsDone
    return old !== undefined && old !== cp.stateRef?.name ? old : undefined
  }

  /** Deletes a state object once the record that referenced it is durably replaced (best effort). */
  private dropState(name: string | undefined): void {
    if (!name) return
    this.blobs.forget(name)
    this.store.deleteState(name).catch(() => undefined) // best effort, never rejects
  }

  /** Sends a command to a host, only while this balancer may act (commands carry its term). */
  private async command(hostId: string, cmd: HostCommand, timeoutMs = COMMAND_TIMEOUT_MS) {
    if (!this.acting()) throw new ShoalError('E_NOT_LEADER', `not sending '${cmd.t}' to ${hostId}: this balancer's lease (term ${this.fence.term}) is not confirmed`)
    return this.bus.request(this.subjects.hostCommand(hostId), cmd, hostReplySchema, timeoutMs)
  }

  private summary(job: JobRecord, now: number, withShares: boolean) {
    return jobSummary(job, this.ledger.sharesOf(job.jobId), this.live, now, withShares)
  }

  private publishJob(job: JobRecord): void {
    const summary = this.summary(job, Date.now(), false)
    this.lastProgress.set(job.jobId, summary.unitsDone)
    try {
      this.bus.publish(this.subjects.jobEvents(jobOwner(job), job.jobId), { v: V, t: 'job', job: summary })
    } catch (e) {
      this.log.error({ job: job.jobId, err: (e as Error).message }, 'cannot publish job event')
    }
  }

  private publishProgress(): void {
    for (const job of this.ledger.openJobs()) {
      if (job.state !== 'running') continue
      const done = this.summary(job, Date.now(), false).unitsDone
      if (this.lastProgress.get(job.jobId) !== done) this.publishJob(job)
    }
  }

  /**
   * Makes a running share's checkpoint durable: in its host's journal record when it fits there
   * (one write per host, however many of its shares checkpointed), else in the share record.
   */
  private async persistCheckpoint(s: ShareRecord, now: number): Promise<void> {
    const entry: JournalEntry = { shareId: s.shareId, epoch: s.epoch, position: s.position, unitsDone: s.unitsDone, ...(s.stateRef ? { stateRef: s.stateRef } : { state: s.state }), stateBytes: s.stateBytes }
    const fit = s.host === null ? ({ ok: false } as const) : this.journal.fits(s.host, entry)
    if (fit.ok) return this.journal.record(s.host!, entry, fit.bytes)
    s.updatedAt = now
    await this.persistShare(s)
  }

  /** Writes a share record; once durable, a journal entry it makes stale is forgotten. */
  private async persistShare(s: ShareRecord): Promise<void> {
    const run = { status: s.status, host: s.host, epoch: s.epoch, position: s.position }
    await this.store.putShare(s)
    this.journal.covered(s.shareId, run)?.catch((e: unknown) => this.failed('deleting a host\'s journal record', e))
  }

  private async persistJob(j: JobRecord): Promise<void> {
    await this.store.putJob(j)
  }
}


/** What `shoal status` shows of a balancing pass. */
function summarisePlan(plan: Plan, threshold: number, at: number, decideMs: number): Omit<BalanceSummary, 'splitsTotal'> {
  const count = (kind: Action['kind']) => plan.actions.filter((a) => a.kind === kind).length
  return {
    at,
    threshold,
    imbalance: plan.imbalance,
    toleratedImbalance: Number.isFinite(plan.toleratedImbalance) ? plan.toleratedImbalance : null,
    projectedImbalance: plan.projectedImbalance,
    loads: plan.normalisedLoads,
    loadNoise: plan.loadNoise,
    reasons: plan.reasons,
    decideMs,
    actions: { place: count('place'), migrate: count('migrate'), split: count('split') },
  }
}

/** "2 migrate (imbalance), 1 split" for a log line. */
function describeActions(actions: readonly Action[]): string {
  const n = new Map<string, number>()
  for (const a of actions) {
    const k = a.kind === 'migrate' ? `migrate (${a.reason})` : a.kind
    n.set(k, (n.get(k) ?? 0) + 1)
  }
  return [...n].map(([k, c]) => `${c} ${k}`).join(', ')
}

/** Order of host states in a status reply. */

/** Who submitted `job`: records from before identities were kept belong to operators. */
function jobOwner(job: JobRecord): string {
  return job.owner ?? 'operator'
}

/** Operators may act on every job; anyone else only on their own. */
function mayActOn(job: JobRecord, identity: string): boolean {
  return isOperator(identity) || jobOwner(job) === identity
}

/** The inbox a host's request must be answered on, or undefined when `hostId` is none. */
function inboxOfHost(s: Subjects, hostId: string | null): string | undefined {
  return hostId === null ? undefined : s.inbox(hostIdentity(hostId))
}

/**
 * The command that hands share `s` of `job` to a host under `epoch`: the one builder, so that the
 * admission check measures exactly what assignments send.
 */
function assignCommand(
  job: { jobId: string; processor: string; input: unknown },
  s: { shareId: string; from: number; to: number; position: number; unitsDone: number; state?: unknown; stateRef?: ShareRecord['stateRef'] },
  epoch: number,
  term: number,
): HostCommand {
  return {
    v: V,
    t: 'assign',
    term,
    share: { shareId: s.shareId, jobId: job.jobId, epoch, processor: job.processor, input: job.input, from: s.from, to: s.to, position: s.position, state: s.state, ...(s.stateRef ? { stateRef: s.stateRef } : {}), unitsDone: s.unitsDone },
  }
}
