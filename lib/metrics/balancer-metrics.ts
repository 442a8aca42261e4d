/**
 * The balancer's Prometheus metrics (`shoal_` prefix, base units: seconds, bytes), in a registry of
 * its own (never prom-client's global one). Events (a migration, a split, a failover, a checkpoint,
 * a finished job, a decision pass, a rejected message) are counted as they happen; the state gauges
 * (hosts, loads, imbalance, shares, jobs, settings) are read from the balancer at scrape time, so a
 * scrape shows the state as it is, not as it was at the last event. The names and labels are the
 * contract in grafana/METRICS.md, which the dashboards are checked against.
 *
 * Must never import NATS or the balancer itself: the balancer hands in a `StateSource`.
 */

import { PerformanceObserver, constants as perf, monitorEventLoopDelay } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { moveReasonSchema } from '../protocol/messages.ts'

/** What the state gauges show, read at scrape time. */
export interface BalancerState {
  hostsByState: Record<string, number>
  hosts: Array<{ hostId: string; slots: number; freeSlots: number; cores: number; draining: boolean }>
  /** From the last interval pass (absent before the first). */
  balance?: { imbalance: number; toleratedImbalance: number; meanLoad: number; loads: Record<string, number>; loadNoise?: Record<string, number> | undefined }
  sharesByState: Record<string, number>
  jobsByState: Record<string, number>
  /** Unfinished jobs: units done and total. */
  jobProgress: Array<{ jobId: string; unitsDone: number; unitsTotal: number }>
  /** Live balancing settings, by config key. */
  settings: Record<string, number>
  /** This process's part in leadership: leading or standing by, the term it knows, standbys heard. */
  leadership?: { leading: boolean; term: number; standbys: number }
}

export type StateSource = () => BalancerState

const SHARE_STATES = ['pending', 'running', 'done', 'failed', 'cancelled']
const JOB_STATES = ['waiting', 'running', 'completed', 'failed', 'cancelled']
const HOST_STATES = ['alive', 'suspect', 'dead', 'left']
/** Stun from a millisecond to a few seconds (1 MiB checkpoints take ≈ 50 ms here). */
const STUN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
/** Lease renewals: a KV write (≈ 0.2 ms idle) up to a lease (1 s by default) and past it. */
const LEASE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
const DECIDE_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
const SIZE_BUCKETS = [64, 1024, 16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024, 64 * 1024 * 1024]
const JOB_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600]
/** State gauges are recomputed at most this often within one scrape's collect calls. */
const REFRESH_MS = 50

/** Node's GC kinds, by the names the metric uses. */
const GC_KINDS: Record<number, string> = {
  [perf.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [perf.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [perf.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perf.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
}

export class BalancerMetrics {
  readonly registry = new Registry()
  readonly migrations: Counter<'reason' | 'result'>
  readonly stun: Histogram<'reason'>
  readonly splits: Counter
  readonly failovers: Counter
  readonly unitsRedone: Counter
  readonly checkpoints: Counter
  readonly checkpointSize: Histogram
  /** From the start of a report's handling to its answer (a checkpoint's includes its durable write). */
  readonly reportAnswer: Histogram<'t'>
  /** A record write's round trip to JetStream (acked-publisher.ts). */
  readonly storeWrite: Histogram
  readonly jobDuration: Histogram<'state'>
  readonly decide: Histogram<'pass'>
  /** The whole synchronous part of a pass: snapshot of the records, then decide. */
  readonly pass: Histogram<'pass'>
  readonly rejected: Counter<'subject' | 'cause'>
  readonly storeRetries: Counter<'bucket'>
  readonly fencedWrites: Counter
  readonly checkpointFailures: Counter<'cause'>
  readonly internalErrors: Counter<'where'>
  readonly takeovers: Counter
  readonly leaseRenewal: Histogram
  readonly leaseLapses: Counter
  readonly leaseLapsedSeconds: Counter
  readonly hostTransitions: Counter<'to'>
  /** The state gauges, by short name. */
  private readonly g: Record<string, Gauge<string>>
  private lastRefresh = 0

  /**
   * The balancer's queue of received messages (lib/protocol/work-queue.ts), read at scrape time:
   * a leader that cannot keep up holds its backlog there, in its own memory, rather than in
   * nats-server, so this is where falling behind shows.
   */
  watchWorkQueue(q: { readonly length: number }): void {
    new Gauge({ name: 'shoal_balancer_work_queue_messages', help: 'Received messages waiting in the balancer\'s work queue.', registers: [this.registry], collect() { this.set(q.length) } })
  }

  /** How long the oldest message of each slice of the work queue waited (its `onWait`). */
  readonly workQueueWait = new Histogram({
    name: 'shoal_balancer_work_queue_wait_seconds',
    help: 'How long the oldest received message of each slice of the work queue waited before it was handled.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })

  constructor(private readonly source: StateSource) {
    const r = [this.registry]
    const refresh = () => this.refresh()
    const gauge = <L extends string>(name: string, help: string, labelNames: L[] = []) => new Gauge<L>({ name, help, labelNames, registers: r, collect: refresh })

    this.g = {
      hosts: gauge('shoal_hosts', 'Hosts in the pool by membership state.', ['state']),
      slots: gauge('shoal_host_slots', 'Worker slots a host advertises.', ['host']),
      freeSlots: gauge('shoal_host_free_slots', 'Slots of a host not running a share (as the balancer accounts them).', ['host']),
      cores: gauge('shoal_host_cores', 'CPU cores a host advertises (its affinity set).', ['host']),
      load: gauge('shoal_host_normalised_load', 'Demand of a host (its shares plus load not from Shoal, smoothed) over its cores; 1 = full.', ['host']),
      loadNoise: gauge('shoal_host_load_noise', 'Noise of a host\'s normalised load: the standard deviation of one heartbeat\'s reading.', ['host']),
      draining: gauge('shoal_host_draining', '1 when a host is in maintenance mode.', ['host']),
      imbalance: gauge('shoal_cluster_imbalance', 'Standard deviation of the hosts\' normalised loads at the last balancing pass.'),
      tolerated: gauge('shoal_cluster_tolerated_imbalance', 'Imbalance the migration threshold tolerates (+Inf at threshold 1).'),
      meanLoad: gauge('shoal_cluster_mean_load', 'Mean normalised load of the hosts at the last balancing pass.'),
      settings: gauge('shoal_balancer_setting', 'Balancing settings in force, by config key.', ['key']),
      shares: gauge('shoal_shares', 'Shares of unfinished and recent jobs by state.', ['state']),
      jobs: gauge('shoal_jobs', 'Jobs by state.', ['state']),
      // `job_id`, not `job`: Prometheus owns the `job` label (the scrape job) and would rename ours.
      unitsDone: gauge('shoal_job_units_done', 'Units done of an unfinished job.', ['job_id']),
      unitsTotal: gauge('shoal_job_units_total', 'Units of an unfinished job.', ['job_id']),
      leader: gauge('shoal_balancer_leader', '1 when this balancer process leads its cluster, 0 while it stands by.'),
      term: gauge('shoal_balancer_term', 'The leadership term this balancer process knows (grows at every takeover).'),
      standbys: gauge('shoal_balancer_standbys', 'Standby balancers the leader hears (0 on a standby).'),
    }
    this.migrations = new Counter({ name: 'shoal_migrations_total', help: 'Live migrations by reason and result.', labelNames: ['reason', 'result'], registers: r })
    this.stun = new Histogram({ name: 'shoal_migration_stun_seconds', help: 'Stun of a live migration: pause requested → resumed on the target.', labelNames: ['reason'], buckets: STUN_BUCKETS, registers: r })
    this.splits = new Counter({ name: 'shoal_splits_total', help: 'Dynamic splits: running shares whose tail went to an idle slot.', registers: r })
    this.failovers = new Counter({ name: 'shoal_failovers_total', help: 'Shares re-dispatched from a lost host.', registers: r })
    this.unitsRedone = new Counter({ name: 'shoal_failover_units_redone_total', help: 'Units a lost host had done past its last checkpoint (done again).', registers: r })
    this.checkpoints = new Counter({ name: 'shoal_checkpoints_total', help: 'Checkpoints stored durably.', registers: r })
    this.checkpointSize = new Histogram({ name: 'shoal_checkpoint_size_bytes', help: 'Encoded size of stored checkpoint states.', buckets: SIZE_BUCKETS, registers: r })
    this.storeWrite = new Histogram({ name: 'shoal_store_write_seconds', help: 'Round trip of one record write (job, share, journal) to JetStream: from its publish to the answer, as this process read it.', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: r })
    this.reportAnswer = new Histogram({ name: 'shoal_report_answer_seconds', help: 'Time from the start of a report\'s handling (after its wait in the work queue) to its answer, by report (checkpoint, done, failed); a checkpoint\'s includes its durable write.', labelNames: ['t'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: r })
    this.jobDuration = new Histogram({ name: 'shoal_job_duration_seconds', help: 'Submit → end of finished jobs, by final state.', labelNames: ['state'], buckets: JOB_BUCKETS, registers: r })
    this.decide = new Histogram({ name: 'shoal_decide_duration_seconds', help: 'Time of one pure balancing decision, by pass (interval or kick).', labelNames: ['pass'], buckets: DECIDE_BUCKETS, registers: r })
    this.pass = new Histogram({ name: 'shoal_balancer_pass_seconds', help: 'Time of the synchronous part of one balancing pass (the snapshot of the records, then decide), by pass: nothing else runs meanwhile.', labelNames: ['pass'], buckets: DECIDE_BUCKETS, registers: r })
    this.rejected = new Counter({ name: 'shoal_messages_rejected_total', help: 'Messages counted and dropped, by subject and cause.', labelNames: ['subject', 'cause'], registers: r })
    this.storeRetries = new Counter({ name: 'shoal_store_write_retries_total', help: 'KV writes that failed for a transient reason and were retried, by bucket.', labelNames: ['bucket'], registers: r })
    this.fencedWrites = new Counter({ name: 'shoal_store_fenced_writes_total', help: 'Records found written by an older term after a takeover (a deposed leader\'s late write) and overwritten.', registers: r })
    this.checkpointFailures = new Counter({ name: 'shoal_checkpoint_failures_total', help: 'Checkpoint reports not stored, by cause (stale, too-large, not-leader).', labelNames: ['cause'], registers: r })
    this.internalErrors = new Counter({ name: 'shoal_errors_total', help: 'Errors logged and survived (a failed background task, an unhandled rejection), by where.', labelNames: ['where'], registers: r })
    this.takeovers = new Counter({ name: 'shoal_balancer_takeovers_total', help: 'Times this balancer process became the leader.', registers: r })
    this.leaseRenewal = new Histogram({ name: 'shoal_balancer_lease_renewal_seconds', help: 'Round trip of the leader\'s lease renewals (a KV compare-and-set on its own NATS connection).', buckets: LEASE_BUCKETS, registers: r })
    this.leaseLapses = new Counter({ name: 'shoal_balancer_lease_lapses_total', help: 'Times the leader\'s lease went unconfirmed (no renewal back within balancer.leaseMs) and it stopped acting until one came back.', registers: r })
    // How late the event loop ran, worst since the last scrape: a balancer that falls behind its
    // messages shows here first (its timers, the lease's among them, run late).
    const loop = monitorEventLoopDelay({ resolution: 10 })
    loop.enable()
    new Gauge({
      name: 'shoal_balancer_event_loop_delay_seconds',
      help: 'Longest event-loop delay since the previous scrape: how late timers (lease renewals among them) and messages ran.',
      registers: r,
      collect() {
        this.set(loop.max / 1e9)
        loop.reset()
      },
    })
    // The collector's work by kind: a balancer's answers wait behind its pauses. prom-client's
    // default metrics have this too, but their gauges named *_total fail `promtool check metrics`.
    const gc = new Histogram({ name: 'shoal_balancer_gc_seconds', help: 'Garbage collections of the balancer process by kind (major, minor, incremental, weakcb), and how long each took.', labelNames: ['kind'], buckets: [0.001, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: r })
    for (const kind of Object.values(GC_KINDS)) gc.zero({ kind })
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) gc.observe({ kind: GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? 'other' }, e.duration / 1000)
    }).observe({ entryTypes: ['gc'] })
    this.leaseLapsedSeconds = new Counter({ name: 'shoal_balancer_lease_lapsed_seconds_total', help: 'Time the leader spent unable to act because its lease was unconfirmed.', registers: r })
    // Counted where they happen: an overloaded balancer's logs arrive late, this does not (issue 12).
    this.hostTransitions = new Counter({ name: 'shoal_host_transitions_total', help: 'Host membership transitions seen by this balancer while leading, by the state entered (alive, suspect, dead, left).', labelNames: ['to'], registers: r })
    for (const cause of ['stale', 'too-large', 'not-leader']) this.checkpointFailures.inc({ cause }, 0)
    for (const where of ['unhandled-rejection', 'background-task', 'recovery']) this.internalErrors.inc({ where }, 0)
    // Every reason and result exists from the start, so rate() and the dashboards see zeros, not gaps.
    for (const reason of moveReasonSchema.options) {
      for (const result of ['ok', 'failed']) this.migrations.inc({ reason, result }, 0)
      this.stun.zero({ reason })
    }
    for (const state of ['completed', 'failed', 'cancelled']) this.jobDuration.zero({ state })
  }

  /** Recomputes the state gauges (once per scrape: every gauge's collect calls this). */
  private refresh(): void {
    const now = Date.now()
    if (now - this.lastRefresh < REFRESH_MS) return
    this.lastRefresh = now
    const st = this.source()
    const g = this.g
    for (const m of Object.values(g)) m.reset()
    for (const s of HOST_STATES) g.hosts!.set({ state: s }, st.hostsByState[s] ?? 0)
    for (const h of st.hosts) {
      g.slots!.set({ host: h.hostId }, h.slots)
      g.freeSlots!.set({ host: h.hostId }, h.freeSlots)
      g.cores!.set({ host: h.hostId }, h.cores)
      g.draining!.set({ host: h.hostId }, h.draining ? 1 : 0)
    }
    if (st.balance) {
      for (const [host, l] of Object.entries(st.balance.loads)) g.load!.set({ host }, l)
      for (const [host, n] of Object.entries(st.balance.loadNoise ?? {})) g.loadNoise!.set({ host }, n)
      g.imbalance!.set(st.balance.imbalance)
      g.tolerated!.set(st.balance.toleratedImbalance)
      g.meanLoad!.set(st.balance.meanLoad)
    }
    for (const [key, v] of Object.entries(st.settings)) g.settings!.set({ key }, v)
    for (const s of SHARE_STATES) g.shares!.set({ state: s }, st.sharesByState[s] ?? 0)
    for (const s of JOB_STATES) g.jobs!.set({ state: s }, st.jobsByState[s] ?? 0)
    for (const j of st.jobProgress) {
      g.unitsDone!.set({ job_id: j.jobId }, j.unitsDone)
      g.unitsTotal!.set({ job_id: j.jobId }, j.unitsTotal)
    }
    if (st.leadership) {
      g.leader!.set(st.leadership.leading ? 1 : 0)
      g.term!.set(st.leadership.term)
      g.standbys!.set(st.leadership.standbys)
    }
  }
}
