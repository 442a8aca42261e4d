/**
 * One `shoal balancer` process. Any number may run for a cluster; exactly one leads. The node owns
 * what outlives a leadership term: the NATS connection, the JetStream buckets, the lease, the
 * metrics endpoint, the config file watch and the presence beacon. While its lease says it leads,
 * it runs a `Balancer` (balancer.ts) for that term; when it is deposed it stops that Balancer and
 * stands by again, and when it takes over it starts a fresh one, which recovers from JetStream.
 *
 * Presence: every pool.heartbeatMs each node publishes who it is (leader with its term, or
 * standby) on `bal.presence.<id>`. Hosts adopt the leader's term (and refuse commands from lower
 * ones); the leader lists the standbys it hears. A node also hears its own presence come back:
 * while it does not, it is blind (its NATS link or NATS itself is away, or the process did not
 * run), and a blind balancer declares no host dead.
 *
 * Must never act on the pool itself: that is the Balancer's, under its fence.
 */

import os from 'node:os'
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { Packr } from 'msgpackr'
import { ShoalError } from '../errors.ts'
import type { Config } from '../config/mod.ts'
import { createLogger, LogLimiter, type Logger } from '../log.ts'
import { closeNats, connectNats } from '../nats-connect.ts'
import { WorkQueue } from '../protocol/work-queue.ts'
import { Bus } from '../protocol/bus.ts'
import { Codec } from '../protocol/codec.ts'
import { PROTOCOL_VERSION as V, presenceSchema, type Presence } from '../protocol/messages.ts'
import { BALANCER_IDENTITY, Subjects } from '../protocol/subjects.ts'
import { BalancerMetrics, type BalancerState } from '../metrics/balancer-metrics.ts'
import { startMetricsServer, type MetricsServer } from '../metrics/server.ts'
import { Balancer, type LeadershipView } from './balancer.ts'
import { STORE_READS, allRead, type StoreFormat } from './recovery.ts'
import { openBuckets, type Buckets } from './buckets.ts'
import type { LeaseFence } from './fence.ts'
import { Lease, type LeaseRecord } from './lease.ts'
import { watchConfigFile } from './live-settings.ts'

export interface BalancerNodeOptions {
  config: Config
  logger?: Logger
  /** An existing connection (tests); otherwise one is opened from config.nats, waiting for NATS. */
  nc?: NatsConnection
  /**
   * The config file to watch: when it changes, `reloadConfig` reads the whole config again and
   * the balancing settings (`LIVE_KEYS`) take effect without a restart.
   */
  configFile?: string
  reloadConfig?: () => Config
}

/** A standby not heard for this many presence periods is no longer listed. */
const PRESENCE_KEPT_PERIODS = 4

export class BalancerNode {
  readonly id: string
  readonly metrics: BalancerMetrics
  private readonly log: Logger
  private readonly limited: LogLimiter
  private readonly subjects: Subjects
  private readonly bus: Bus
  /** Received messages are handled in slices through this, so timers run on time (work-queue.ts). */
  private readonly work: WorkQueue
  private readonly lease: Lease
  private balancer: Balancer | undefined
  private metricsServer: MetricsServer | undefined
  private presenceSub: Subscription | undefined
  private presenceTimer: NodeJS.Timeout | undefined
  private unwatchConfig: (() => void) | undefined
  private readonly others = new Map<string, Presence & { at: number }>()
  private lastEcho: number
  private stopped = false

  private constructor(
    private config: Config,
    private readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    private readonly buckets: Buckets,
    logger: Logger,
    /** The lease bucket's connection (closed with the node when it owns its connections). */
    private readonly leaseNc: NatsConnection,
  ) {
    this.id = config.balancer.id ?? defaultBalancerId()
    this.log = logger.child({ balancer: this.id })
    this.limited = new LogLimiter(this.log)
    this.subjects = new Subjects(config.cluster)
    // One queue for every message this process reads, the leader's and the presences alike: a
    // backlog delays this balancer's own presence echo as much as the hosts' heartbeats, so it
    // counts itself deaf rather than taking queued heartbeats for silence (see `hearing`).
    this.metrics = new BalancerMetrics(() => this.metricsState())
    const wait = this.metrics.workQueueWait
    this.work = new WorkQueue({ onError: (e) => this.limited.error('work-queue', { err: (e as Error).message }, 'a message handler threw'), onWait: (ms) => wait.observe(ms / 1000) })
    this.bus = new Bus(nc, new Codec(config.protocol.maxMessageBytes), { inbox: this.subjects.inbox(BALANCER_IDENTITY), work: this.work })
    this.metrics.watchWorkQueue(this.work)
    const writes = this.metrics.storeWrite
    buckets.onWriteAnswered = (ms) => writes.observe(ms / 1000)
    this.lastEcho = Date.now()
    const packr = new Packr({ useRecords: false, mapsAsObjects: true })
    this.lease = new Lease({
      id: this.id,
      pid: process.pid,
      leaseMs: config.balancer.leaseMs,
      kv: buckets.leader,
      encode: (r) => packr.pack(r),
      decode: (v) => packr.unpack(v) as LeaseRecord,
      now: () => performance.now(),
      wallNow: () => Date.now(),
      events: {
        elected: (fence, rec) => this.lead(fence, rec),
        deposed: (why) => this.depose(why),
        storeTrouble: (e) => this.limited.warn('lease', { err: (e as Error).message }, 'cannot read or renew the leadership lease (NATS or JetStream away); retrying'),
        // Once seen in a chaos smoke run: a standby took 52 s to lead with nothing logged.
        renewed: (ms, lapsedMs) => {
          this.metrics.leaseRenewal.observe(ms / 1000)
          if (lapsedMs <= 0) return
          this.metrics.leaseLapses.inc()
          this.metrics.leaseLapsedSeconds.inc(lapsedMs / 1000)
          this.limited.warn('lease-lapsed', { lapsedMs: Math.round(lapsedMs), renewalMs: Math.round(ms) }, 'the lease went unconfirmed: nothing was written, commanded or acknowledged until this renewal came back')
        },
        takeoverConflict: (revision, term) => this.limited.warn('lease-conflict', { revision, term }, 'taking over the lapsed lease failed on a revision conflict (another balancer was first, or the lease read was stale); following again'),
      },
    })
  }

  /**
   * Connects (waiting for NATS if it is not up yet), opens the cluster's buckets (waiting for
   * JetStream), and starts following the lease: this process leads at once if nobody does.
   */
  static async start(opts: BalancerNodeOptions): Promise<BalancerNode> {
    const cfg = opts.config
    const log = opts.logger ?? createLogger('shoal-balancer', cfg.log.level)
    const nc =
      opts.nc ??
      (await connectNats({ ...cfg.nats, inboxPrefix: new Subjects(cfg.cluster).inbox(BALANCER_IDENTITY) }, 'shoal-balancer', {}, {
        waitForServer: {
          onWaiting: (m) => log.warn(m),
          onConnected: (server) => log.info({ server }, 'connected to NATS'),
        },
      }))
    let buckets: Buckets
    // The lease's own connection: its renewals' answers must not queue behind the hosts' messages
    // on a busy balancer's connection (the lease lapsed that way at 2,000 hosts, issue 12). It is
    // opened once the main one is up, so it waits for nothing.
    let leaseNc: NatsConnection | undefined
    try {
      leaseNc = opts.nc ?? (await connectNats({ ...cfg.nats, inboxPrefix: new Subjects(cfg.cluster).inbox(BALANCER_IDENTITY) }, 'shoal-balancer-lease', {}, { waitForServer: { onWaiting: (m) => log.warn(m) } }))
      buckets = await openBucketsPatiently(nc, leaseNc, new Subjects(cfg.cluster), cfg, log)
    } catch (e) {
      if (opts.nc === undefined) {
        await nc.close().catch(() => undefined)
        await leaseNc?.close().catch(() => undefined)
      }
      throw e
    }
    for (const w of buckets.warnings) log.warn(w)
    const node = new BalancerNode(cfg, nc, opts.nc === undefined, buckets, log, leaseNc)
    const port = cfg.balancer.metricsPort
    if (port !== undefined) {
      try {
        node.metricsServer = await startMetricsServer(node.metrics.registry, port)
        node.log.info({ url: node.metricsServer.url }, 'serving metrics')
      } catch (e) {
        if (opts.nc === undefined) await nc.close().catch(() => undefined)
        throw e
      }
    }
    node.startPresence()
    node.watchConfig(opts.configFile, opts.reloadConfig)
    node.watchConnection()
    node.lease.start()
    node.log.info({ cluster: cfg.cluster, replicas: buckets.replicas, leaseMs: cfg.balancer.leaseMs }, 'balancer started: following the leadership lease')
    return node
  }

  /** Where the metrics are served (undefined when `balancer.metricsPort` is unset). */
  get metricsUrl(): string | undefined {
    return this.metricsServer?.url
  }

  /** Leading right now (lease confirmed or being renewed) with a running Balancer. */
  get leading(): boolean {
    return this.balancer !== undefined && this.lease.leading
  }

  get term(): number {
    return this.lease.term
  }

  /** Messages the leading Balancer dropped, by `subject cause` (empty on a standby). */
  rejected(): Record<string, number> {
    return this.balancer?.rejected() ?? {}
  }

  /** Counts an error that reached the process's last line of defence (crash-guard.ts). */
  unhandled(where: string): void {
    this.metrics.internalErrors.inc({ where })
  }

  /** Stops: a leader hands its lease back so a standby takes over at once. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.presenceTimer) clearInterval(this.presenceTimer)
    this.unwatchConfig?.()
    const b = this.balancer
    this.balancer = undefined
    await b?.stop()
    await this.lease.stop()
    this.presenceSub?.unsubscribe()
    await this.metricsServer?.close()
    if (this.ownsConnection) await Promise.all([closeNats(this.nc), closeNats(this.leaseNc)])
    this.log.info('balancer stopped')
  }

  // ------------------------------------------------------------------ leadership

  private lead(fence: LeaseFence, rec: LeaseRecord): void {
    if (this.stopped) return
    this.metrics.takeovers.inc()
    this.log.info({ term: fence.term }, `elected leader with term ${fence.term}: recovering the cluster's state`)
    this.publishPresence()
    const leadership = (): LeadershipView => ({ leader: { id: this.id, pid: process.pid, term: fence.term, since: rec.since }, standbys: this.standbys() })
    Balancer.start({
      config: this.config,
      logger: this.log,
      nc: this.nc,
      buckets: this.buckets,
      fence,
      metrics: this.metrics,
      hearing: () => this.hearing(),
      lastHeard: () => this.lastEcho,
      leadership,
      work: this.work,
      lazyShares: () => this.everyBalancerReads('initial-shares'),
    }).then(
      async (b) => {
        if (this.stopped || fence.state() === 'revoked') {
          await b.stop()
          return
        }
        this.balancer = b
      },
      (e: unknown) => {
        if ((e as ShoalError).code === 'E_NOT_LEADER' || fence.state() === 'revoked') {
          this.log.warn({ err: (e as Error).message }, 'lost leadership while recovering')
          return
        }
        // Not a leadership matter (a bug, a record it cannot read): let another balancer try.
        this.metrics.internalErrors.inc({ where: 'recovery' })
        this.log.error({ err: (e as Error).message }, 'recovery failed: stepping down')
        this.lease.stepDown('recovery failed')
      },
    )
  }

  private depose(why: string): void {
    this.log.warn({ why }, `no longer the leader: ${why}; standing by`)
    const b = this.balancer
    this.balancer = undefined
    this.publishPresence()
    b?.stop().catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'stopping the deposed balancer failed'))
  }

  // ------------------------------------------------------------------ presence

  private startPresence(): void {
    this.presenceSub = this.bus.subscribe(this.subjects.presenceAll(), presenceSchema, (p, subject) => {
      if (subject !== this.subjects.presence(p.id)) {
        this.bus.rejects.count(subject, 'invalid')
        return
      }
      if (p.id === this.id) {
        if (p.pid === process.pid) this.lastEcho = Date.now()
        return
      }
      this.others.set(p.id, { ...p, at: Date.now() })
    })
    this.publishPresence()
    this.presenceTimer = setInterval(() => this.publishPresence(), this.config.pool.heartbeatMs)
  }

  private publishPresence(): void {
    if (this.stopped) return
    const leading = this.lease.leading
    const cur = this.lease.current
    const period = leading ? this.balancer?.heartbeatPeriod() : undefined
    const p: Presence = { v: V, t: 'presence', id: this.id, pid: process.pid, role: leading ? 'leader' : 'standby', term: this.lease.term, ...(leading && cur ? { since: cur.since } : {}), ...(period === undefined ? {} : { heartbeatMs: period }), reads: [...STORE_READS] }
    try {
      this.bus.publish(this.subjects.presence(this.id), p)
    } catch (e) {
      this.limited.warn('presence', { err: (e as Error).message }, 'cannot publish presence')
    }
  }

  /**
   * Whether this process hears NATS: its own presence came back within two periods. A frozen
   * process, a broken link or a stalled server all stop the echo.
   */
  private hearing(): boolean {
    return Date.now() - this.lastEcho <= 2 * this.config.pool.heartbeatMs + 50
  }

  /**
   * Whether every other balancer heard lately reads store format `format` (a standby of an older
   * release does not): the leader writes that format only then (recovery.ts `STORE_READS`).
   */
  private everyBalancerReads(format: StoreFormat): boolean {
    return allRead(this.others.values(), Date.now() - PRESENCE_KEPT_PERIODS * this.config.pool.heartbeatMs, format)
  }

  private standbys(): Array<{ id: string; pid: number }> {
    const horizon = Date.now() - PRESENCE_KEPT_PERIODS * this.config.pool.heartbeatMs
    const out = []
    for (const [id, p] of this.others) {
      if (p.at < horizon) this.others.delete(id)
      else if (p.role === 'standby') out.push({ id, pid: p.pid })
    }
    return out.sort((a, b) => a.id.localeCompare(b.id))
  }

  /** Logs NATS disconnects and reconnects once each (the echo decides what they mean). */
  private watchConnection(): void {
    const watch = async () => {
      for await (const s of this.nc.status()) {
        if (s.type === 'disconnect') this.log.warn({ server: s.server }, 'disconnected from NATS; reconnecting')
        else if (s.type === 'reconnect') this.log.info({ server: s.server }, 'reconnected to NATS')
      }
    }
    watch().catch(() => undefined) // the status iterator ends when the connection closes
  }

  // ------------------------------------------------------------------ config and metrics

  private watchConfig(file: string | undefined, reload: (() => Config) | undefined): void {
    if (!file || !reload) return
    this.unwatchConfig = watchConfigFile(
      file,
      reload,
      (next) => {
        this.config = next
        return this.balancer?.applySettings(next, `config file ${file}`) ?? []
      },
      (e) => this.log.error({ file, err: e.message }, 'config file change refused: the settings in force are kept'),
    )
  }

  private metricsState(): BalancerState {
    const leadership = { leading: this.leading, term: this.lease.term, standbys: this.leading ? this.standbys().length : 0 }
    const b = this.balancer
    if (b) return { ...b.metricsState(), leadership }
    return { hostsByState: {}, hosts: [], sharesByState: {}, jobsByState: {}, jobProgress: [], settings: {}, leadership }
  }
}

/** Opens the buckets, waiting (and saying so once) while JetStream is not available yet. */
async function openBucketsPatiently(nc: NatsConnection, leaseNc: NatsConnection, subjects: Subjects, cfg: Config, log: Logger): Promise<Buckets> {
  let said = false
  let delay = 250
  for (;;) {
    try {
      const b = await openBuckets(nc, subjects, { replicas: cfg.nats.replicas, leaseMs: cfg.balancer.leaseMs, leaseNc })
      if (said) log.info('JetStream is available')
      return b
    } catch (e) {
      if (e instanceof ShoalError && !e.retryable) throw e
      if (!said) log.warn({ err: (e as Error).message }, 'JetStream is not available yet (a cluster electing its leaders, or nats-server without -js): waiting for it')
      said = true
      await new Promise((r) => setTimeout(r, delay))
      delay = Math.min(2_000, delay * 2)
    }
  }
}

function defaultBalancerId(): string {
  return `${os.hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${process.pid}`
}
