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
 * This file is the composition root: it builds the parts, gives them the context (context.ts),
 * subscribes them to their subjects and runs their timers; it decides nothing itself. The parts:
 * recovery.ts, heartbeats.ts, reports.ts, blob-requests.ts, api.ts, admission.ts, passes.ts,
 * apply/{assign,migrate,split}.ts, share-fate.ts, completion.ts, records.ts, tracking.ts,
 * history.ts; decisions come from the pure functions in ./core and ../pool.
 *
 * Must never import processor code or block the event loop, and never act (write, command, ack)
 * without asking the fence.
 */

import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { ShoalError } from '../errors.ts'
import type { Config } from '../config/mod.ts'
import { LogLimiter, type Logger } from '../log.ts'
import { Bus } from '../protocol/bus.ts'
import { Codec } from '../protocol/codec.ts'
import type { WorkQueue } from '../protocol/work-queue.ts'
import { apiRequestSchema, blobRequestSchema, heartbeatSchema, hostReplySchema, leaveSchema, REPORT_TIMEOUT_MS, reportBatchSchema, reportSchema, type HostCommand } from '../protocol/messages.ts'
import { BALANCER_IDENTITY, Subjects, hostIdentity } from '../protocol/subjects.ts'
import { Membership } from '../pool/membership.ts'
import type { BalancerMetrics, BalancerState } from '../metrics/balancer-metrics.ts'
import { Admission } from './admission.ts'
import { Api, type LeadershipView } from './api.ts'
import { recordRetention } from './archive.ts'
import { Assigner } from './apply/assign.ts'
import { AssignSender } from './apply/assign-sender.ts'
import { Migrator } from './apply/migrate.ts'
import { Splitter } from './apply/split.ts'
import { BlobProxy } from './blob-proxy.ts'
import { serveBlob } from './blob-requests.ts'
import type { Buckets } from './buckets.ts'
import { CheckpointJournal } from './checkpoint-journal.ts'
import { Completion } from './completion.ts'
import type { BalancerContext } from './context.ts'
import { LoadHistory } from './core/load-history.ts'
import type { Fence } from './fence.ts'
import { Heartbeats } from './heartbeats.ts'
import { History } from './history.ts'
import { Ledger } from './ledger.ts'
import { diffConfig, type SettingChange } from './live-settings.ts'
import { Passes } from './passes.ts'
import { Records } from './records.ts'
import { recover } from './recovery.ts'
import { Reports } from './reports.ts'
import { ShareFate } from './share-fate.ts'
import { Store } from './store.ts'
import { Tracking } from './tracking.ts'

export type { LeadershipView } from './api.ts'

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
  /**
   * Whether admission may leave shares without records of their own (`initialShares`): only while
   * every balancer heard reads that format (node.ts). Absent: always.
   */
  lazyShares?: (() => boolean) | undefined
}

const COMMAND_TIMEOUT_MS = 5_000
const PROGRESS_EVERY_MS = 250
const MATERIALIZE_EVERY_MS = 1_000

export class Balancer {
  private readonly ctx: BalancerContext
  private readonly log: Logger
  private readonly bus: Bus
  private readonly subjects: Subjects
  private readonly fence: Fence
  private readonly loads: LoadHistory
  private readonly records: Records
  private readonly journal: CheckpointJournal
  private readonly blobs: BlobProxy
  private readonly completion: Completion
  private readonly admission: Admission
  private readonly heartbeats: Heartbeats
  private readonly reports: Reports
  private readonly api: Api
  private readonly passes: Passes
  private readonly assignSender: AssignSender
  private readonly lazyShares: () => boolean
  private readonly subs: Subscription[] = []
  private readonly timers: NodeJS.Timeout[] = []
  /** The balancing-pass timer, restarted when `balancer.intervalMs` changes. */
  private cycleTimer: NodeJS.Timeout | undefined
  private stopped = false
  /** Prometheus metrics: the node's registry, which outlives a term. */
  readonly metrics: BalancerMetrics
  private config: Config

  private constructor(opts: BalancerOptions) {
    this.config = opts.config
    this.log = opts.logger.child({ term: opts.fence.term })
    const limited = new LogLimiter(this.log)
    this.subjects = new Subjects(opts.config.cluster)
    this.bus = new Bus(opts.nc, new Codec(opts.config.protocol.maxMessageBytes), { inbox: this.subjects.inbox(BALANCER_IDENTITY), ...(opts.work ? { work: opts.work } : {}) })
    this.fence = opts.fence
    this.metrics = opts.metrics
    this.loads = new LoadHistory(opts.config.balancer.loadWindowMs)
    const metrics = this.metrics
    this.ctx = {
      log: this.log,
      limited,
      metrics,
      subjects: this.subjects,
      bus: this.bus,
      fence: this.fence,
      ledger: new Ledger(),
      membership: new Membership({ suspectAfterMs: opts.config.pool.suspectAfterMs, hostDeadMs: opts.config.pool.hostDeadMs, heartbeatMs: opts.config.pool.heartbeatMs }),
      tracking: new Tracking(),
      config: () => this.config,
      stopped: () => this.stopped,
      acting: () => this.acting(),
      actingSoon: () => this.actingSoon(),
      failed: (what, e) => this.failed(what, e, limited),
      command: (hostId, cmd, timeoutMs) => this.command(hostId, cmd, timeoutMs),
      kick: (kind) => this.passes.kick(kind),
    }
    const store = new Store(opts.buckets, opts.fence, {
      events: {
        retry: (bucket, key, err, attempt, delayMs) => {
          metrics.storeRetries.inc({ bucket })
          limited.warn(`store-retry:${bucket}`, { bucket, key, attempt, delayMs, err: (err as Error).message }, 'store write failed; retrying')
        },
        fencedWrite: (bucket, key, theirTerm) => {
          metrics.fencedWrites.inc()
          this.log.warn({ bucket, key, theirTerm }, 'found a record written by an older term after this one took over (a deposed leader\'s late write): overwritten')
        },
      },
    })
    store.onBulkFailed = (bucket, err) => this.log.warn({ bucket, err: (err as Error).message }, 'cannot read the bucket in bulk; reading it key by key')
    this.blobs = new BlobProxy(store.blobStore(), { maxBytes: opts.config.shares.maxCheckpointBytes + 1024 })
    const maxBytes = this.bus.codec.maxMessageBytes
    // Half a message per host's record; an entry at most 1/64 of one, so a host's shares fit many
    // to a record. A larger state goes to its share record as before.
    this.journal = new CheckpointJournal(store.journal, (x) => this.bus.codec.sizeOf(x), { maxRecordBytes: Math.floor(maxBytes / 2), maxEntryBytes: Math.max(512, Math.floor(maxBytes / 64)) })
    this.bus.rejects.onReject = (subject, cause) => metrics.rejected.inc({ subject, cause })
    // Every bucket's series exists from the start, so rate() and the dashboards see zeros, not gaps.
    for (const b of [opts.buckets.jobs, opts.buckets.shares, opts.buckets.hosts]) metrics.storeRetries.inc({ bucket: b.name }, 0)

    // The parts, leaves first: each gets the context and the operations of the parts it needs.
    const ctx = this.ctx
    const history = new History()
    this.records = new Records(ctx, store, this.journal, this.blobs)
    this.completion = new Completion(ctx, this.records)
    const fate = new ShareFate(ctx, this.records, history, this.completion)
    this.assignSender = new AssignSender(ctx)
    const assigner = new Assigner(ctx, this.records, fate, this.assignSender)
    const migrator = new Migrator(ctx, this.records, fate, history, this.loads)
    const splitter = new Splitter(ctx, this.records, assigner)
    this.lazyShares = opts.lazyShares ?? (() => true)
    this.admission = new Admission(ctx, this.records, this.lazyShares)
    this.heartbeats = new Heartbeats(ctx, this.loads, fate, { hearing: opts.hearing, lastHeard: opts.lastHeard, backlogMs: () => opts.work?.backlogMs() ?? 0 })
    this.reports = new Reports(ctx, this.records, fate, this.completion, splitter)
    this.passes = new Passes(ctx, { records: this.records, history, loads: this.loads, completion: this.completion, assigner, migrator, splitter })
    this.api = new Api(ctx, {
      records: this.records,
      history,
      admission: this.admission,
      completion: this.completion,
      migrator,
      balance: () => this.passes.balance(),
      leadership: opts.leadership,
      rejected: () => this.rejected(),
      applySettings: (next, source) => this.applySettings(next, source),
    })
  }

  /**
   * Recovers this term's view from JetStream and starts serving. Rejects with E_NOT_LEADER when
   * the term ends during recovery.
   */
  static async start(opts: BalancerOptions): Promise<Balancer> {
    const b = new Balancer(opts)
    try {
      await recover(b.ctx, b.records, b.journal)
      b.heartbeats.startAfterRecovery(Date.now())
    } catch (e) {
      await b.stop()
      throw e
    }
    b.listen()
    b.log.info({ cluster: opts.config.cluster, jobs: b.ctx.ledger.jobCount, shares: b.ctx.ledger.shareCount }, 'leading: state recovered, serving')
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
    this.assignSender.close()
    await Promise.resolve()
  }

  /** The period (ms) hosts are asked to beat at, for the leader's presence. */
  heartbeatPeriod(): number {
    return this.heartbeats.periodMs()
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
      this.cycleTimer = setInterval(() => this.passes.cycle(), this.config.balancer.intervalMs)
    }
    return live
  }

  /** What the metrics' state gauges show, read at scrape time (one pass over the records). */
  metricsState(): BalancerState {
    const { ledger, membership, tracking } = this.ctx
    const sharesByState: Record<string, number> = { ...ledger.shareCounts() }
    const hostsByState: Record<string, number> = {}
    const hosts: BalancerState['hosts'] = []
    for (const h of membership.all()) {
      hostsByState[h.state] = (hostsByState[h.state] ?? 0) + 1
      if (h.state !== 'alive' && h.state !== 'suspect') continue
      const slots = h.heartbeat.capacity.slots
      hosts.push({ hostId: h.hostId, slots, freeSlots: Math.max(0, tracking.freeSlots(h.hostId, slots, ledger.runningOn(h.hostId).size)), cores: h.heartbeat.capacity.cores, draining: tracking.draining.has(h.hostId) })
    }
    const jobsByState: Record<string, number> = { ...ledger.jobCounts() }
    const jobProgress: BalancerState['jobProgress'] = []
    const now = Date.now()
    for (const j of ledger.openJobs()) {
      const sum = this.records.summary(j, now, false)
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
    const lb = this.passes.lastBalance()
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

  private listen(): void {
    const s = this.subjects
    this.subs.push(
      this.bus.subscribe(s.poolAll(), heartbeatSchema.or(leaveSchema), (msg, subject) => this.heartbeats.onPool(msg, subject)),
      // Answers go only to the inbox of the identity the subject names (lib/protocol/bus.ts).
      // A batch of a host's reports, or one report alone (hosts before batching sent those).
      this.bus.serve(s.reportAll(), reportBatchSchema.or(reportSchema), (r, raw) => (r.t === 'reports' ? this.reports.onBatchFrom(r, raw.subject) : this.reports.onReportFrom(r, raw.subject)), {
        replyInbox: (subj) => inboxOfHost(s, s.parseReport(subj)),
        // Read after half the host's wait, an answer would likely come after it gave up: a balancer
        // that fell behind answers the reports still awaited instead (work-queue.ts, "expiring").
        expireAfterMs: REPORT_TIMEOUT_MS / 2,
      }),
      this.bus.serve(s.blobAll(), blobRequestSchema, (r, raw) => serveBlob(this.ctx, this.blobs, r, raw.subject), { replyInbox: (subj) => inboxOfHost(s, s.parseBlob(subj)) }),
      this.bus.serve(s.apiAll(), apiRequestSchema, (r, raw) => this.api.onApiFrom(r, raw.subject), { replyInbox: (subj) => {
        const who = s.parseApi(subj)?.identity
        return who === undefined ? undefined : s.inbox(who)
        // A client's request goes before the hosts' backlog: `status` answers in milliseconds,
        // not after every message a busy balancer has yet to read (issue 12).
      }, urgent: true }),
    )
    this.timers.push(
      setInterval(() => this.heartbeats.tick(), this.heartbeats.tickMs()),
      setInterval(() => this.records.publishProgress(), PROGRESS_EVERY_MS),
      // A balancer of an older release appeared: write out the shares it could not see.
      setInterval(() => {
        if (!this.lazyShares()) this.admission.materialize()
      }, MATERIALIZE_EVERY_MS),
      // Finished jobs past jobs.retainMs leave memory, and their records past jobs.recordRetainMs
      // the store: a tenth of the shorter retention late at most, never more than a minute.
      setInterval(() => {
        const now = Date.now()
        this.completion.forgetExpired(now, (jobId) => this.admission.admitting(jobId))
        if (this.acting()) this.records.sweep(now, recordRetention(this.config.jobs))
      }, Math.min(60_000, Math.max(100, Math.floor(this.config.jobs.retainMs / 10)))),
    )
    this.cycleTimer = setInterval(() => this.passes.cycle(), this.config.balancer.intervalMs)
    this.passes.kick()
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
  private failed(what: string, e: unknown, limited: LogLimiter): void {
    const err = e as ShoalError
    if (err?.code === 'E_NOT_LEADER' || this.stopped) {
      this.log.debug({ what, err: err?.message }, 'not done: this balancer no longer leads')
      return
    }
    this.metrics.internalErrors.inc({ where: 'background-task' })
    limited.error(`failed:${what}`, { what, err: err?.message ?? String(e) }, `${what} failed`)
  }

  /** Sends a command to a host, only while this balancer may act (commands carry its term). */
  private async command(hostId: string, cmd: HostCommand, timeoutMs = COMMAND_TIMEOUT_MS) {
    if (!this.acting()) throw new ShoalError('E_NOT_LEADER', `not sending '${cmd.t}' to ${hostId}: this balancer's lease (term ${this.fence.term}) is not confirmed`)
    return this.bus.request(this.subjects.hostCommand(hostId), cmd, hostReplySchema, timeoutMs)
  }
}

/** The inbox a host's request must be answered on, or undefined when `hostId` is none. */
function inboxOfHost(s: Subjects, hostId: string | null): string | undefined {
  return hostId === null ? undefined : s.inbox(hostIdentity(hostId))
}
