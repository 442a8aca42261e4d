/**
 * The host daemon (`shoal host`): advertises capacity and load every pool.heartbeatMs, runs the
 * shares the balancer assigns in a piscina pool sized to its slots, reports checkpoints, results and
 * failures, and answers pause / split / drop / merge / validate commands.
 *
 * Only processors in the host's own registry (built-ins plus modules named in its config) ever run:
 * a job names a processor, it never ships code.
 *
 * A host obeys the leading balancer only: every command carries the leader's term, and a command
 * from a lower term than one the host has seen (in a command or in the leader's presence) is
 * refused with E_STALE_TERM. A finished share's result is kept and sent again until a balancer of
 * the current term acknowledges it durable or refuses it for good (stale epoch, share gone).
 *
 * Must never decide placement: it does what the balancer says, and drops a share the balancer
 * calls stale.
 */

import os from 'node:os'
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { ShoalError, toWire } from '../errors.ts'
import type { Config } from '../config/mod.ts'
import { createLogger, LogLimiter, type Logger } from '../log.ts'
import { closeNats, connectNats, settleWithin } from '../nats-connect.ts'
import { Bus } from '../protocol/bus.ts'
import { Codec } from '../protocol/codec.ts'
import {
  PROTOCOL_VERSION as V,
  hostCommandSchema,
  presenceSchema,
  REPORT_TIMEOUT_MS,
  reportBatchReplySchema,
  type CheckpointMsg,
  type Heartbeat,
  type HostCommand,
  type HostReply,
  type Report,
  type ShareAssignment,
  type ShareLoad,
} from '../protocol/messages.ts'
import { BALANCER_IDENTITY, Subjects, hostIdentity } from '../protocol/subjects.ts'
import { HostMetrics } from '../metrics/host-metrics.ts'
import { startMetricsServer, type MetricsServer } from '../metrics/server.ts'
import { loadProcessors, type ProcessorRegistry } from '../processors/registry.ts'
import { CheckpointPace } from './checkpoint-pace.ts'
import { hostCheckpointAnchor } from './checkpoint-grid.ts'
import { checkpointClock, ShareRunner, mergeResults, type RunningShare } from './share-runner.ts'
import { LoadSampler } from './load-sampler.ts'
import { stateFitsInline } from '../checkpoints/state-blobs.ts'
import { BlobClient } from './blob-client.ts'
import { ReportBatcher } from './report-batcher.ts'
import { ReportDelivery } from './report-delivery.ts'
import { MAX_PERIOD_FACTOR } from '../pool/heartbeat-period.ts'
import type { Checkpoint } from './share-runner.ts'

export interface HostOptions {
  config: Config
  logger?: Logger
  nc?: NatsConnection
}

/** One chunk of a large state to or from the balancer (it stores or reads the Object Store meanwhile). */
const BLOB_TIMEOUT_MS = 10_000

export class Host {
  readonly hostId: string
  readonly slots: number
  private readonly log: Logger
  private readonly subjects: Subjects
  private readonly bus: Bus
  private readonly sampler: LoadSampler
  private readonly running = new Map<string, RunningShare>()
  /**
   * Shares finished here whose result (or failure) is not acknowledged yet: still listed in the
   * heartbeats (`finished`), so a balancer that cannot store the result right now (a JetStream
   * election) does not take the share for lost and run it again.
   */
  private readonly finishing = new Map<string, ShareLoad>()
  /** Reports leave in batches, one message per batch (report-batcher.ts). */
  private readonly batcher: ReportBatcher
  /** Each share's reports in order, results sent until answered (report-delivery.ts). */
  private readonly delivery: ReportDelivery
  /** The newest periodic checkpoint taken per share: an older one still waiting to be sent is not. */
  /** Measures checkpoint lateness and sets how long before they are due shares take them. */
  private readonly pace: CheckpointPace
  private worstLatenessMs = 0
  private loggedLatenessMs = 0
  private readonly startedAt = Date.now()
  private seq = 0
  private blobSeq = 0
  private readonly blobs: BlobClient
  private sub: Subscription | undefined
  private presenceSub: Subscription | undefined
  /** The highest balancer term seen: commands from lower terms come from a deposed leader. */
  private maxTerm = 0
  private readonly limited: LogLimiter
  private hbTimer: NodeJS.Timeout | undefined
  /** How often this host beats: pool.heartbeatMs, or the longer period the leader announced. */
  private periodMs: number
  private stopped = false
  /** Prometheus metrics; served over HTTP when `host.metricsPort` is set. */
  readonly metrics: HostMetrics
  private metricsServer: MetricsServer | undefined
  /** Units done each running share had when last counted into the metrics. */
  private readonly unitsCounted = new Map<string, number>()

  private constructor(
    private readonly config: Config,
    private readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    private readonly registry: ProcessorRegistry,
    private readonly runner: ShareRunner,
    logger: Logger,
  ) {
    this.hostId = config.host.id ?? defaultHostId()
    this.periodMs = config.pool.heartbeatMs
    this.slots = config.host.slots ?? Math.max(1, os.availableParallelism())
    this.log = logger.child({ host: this.hostId })
    this.limited = new LogLimiter(this.log)
    this.subjects = new Subjects(config.cluster)
    this.bus = new Bus(nc, new Codec(config.protocol.maxMessageBytes), { inbox: this.subjects.inbox(hostIdentity(this.hostId)) })
    this.blobs = new BlobClient(this.bus, this.subjects, this.hostId, BLOB_TIMEOUT_MS)
    const codec = this.bus.codec
    this.batcher = new ReportBatcher({
      send: async (reports) => (await this.bus.request(this.subjects.report(this.hostId), { v: V, t: 'reports', hostId: this.hostId, reports }, reportBatchReplySchema, REPORT_TIMEOUT_MS)).answers,
      sizeOf: (r) => codec.sizeOf(r),
      // The envelope of an empty batch, plus an array header's worst case.
      overheadBytes: codec.sizeOf({ v: V, t: 'reports', hostId: this.hostId, reports: [] }) + 8,
      maxBytes: codec.maxMessageBytes,
      lingerMs: Math.min(config.shares.reportLingerMs, Math.floor(config.shares.checkpointMs / 2)),
    })
    // Sampled at heartbeat pace, so a background CPU hog shows in the next heartbeats.
    this.sampler = new LoadSampler(config.pool.heartbeatMs)
    this.metrics = new HostMetrics(this.hostId, () => {
      const load = this.sampler.current()
      return { slots: this.slots, sharesRunning: this.running.size, cpuMachine: load.cpuMachine, cpuShoal: load.cpuShoal }
    })
    this.bus.rejects.onReject = (subject, cause) => this.metrics.rejected.inc({ subject, cause })
    this.delivery = new ReportDelivery({
      hostId: this.hostId,
      log: this.log,
      limited: this.limited,
      metrics: this.metrics,
      send: (r) => this.batcher.send(r),
      maxTerm: () => this.maxTerm,
      observeTerm: (t) => this.observeTerm(t),
      onNack: (shareId, msg, why) => this.onNack(shareId, msg, why),
      stopped: () => this.stopped,
    })
    this.pace = new CheckpointPace({
      lateness: (ms) => {
        this.metrics.checkpointLateness.observe(Math.max(0, ms) / 1000)
        if (ms > this.worstLatenessMs) {
          this.worstLatenessMs = ms
          this.metrics.checkpointLatenessMax.set(ms / 1000)
          // Logged when the worst grows by a quarter (and a millisecond): a handful of lines a run.
          if (ms >= 1 + this.loggedLatenessMs * 1.25) {
            this.loggedLatenessMs = ms
            this.log.info({ latenessMs: Math.round(ms), leadMs: this.pace.lead }, 'a checkpoint became durable later than it was due: the latest so far')
          }
        }
      },
      lead: (ms) => {
        this.runner.setCheckpointLead(ms)
        this.metrics.checkpointLead.set(ms / 1000)
      },
    })
  }

  static async start(opts: HostOptions): Promise<Host> {
    const cfg = opts.config
    const log = opts.logger ?? createLogger('shoal-host', cfg.log.level)
    const registry = await loadProcessors([...cfg.host.processors])
    const slots = cfg.host.slots ?? Math.max(1, os.availableParallelism())
    const runner = new ShareRunner({
      slots,
      checkpointMs: cfg.shares.checkpointMs,
      // This host's phase of the period: a fleet's checkpoints spread over it (checkpoint-grid.ts).
      checkpointAnchor: hostCheckpointAnchor(checkpointClock(), cfg.shares.checkpointMs),
      stepTargetMs: cfg.shares.stepTargetMs,
      maxCheckpointBytes: cfg.shares.maxCheckpointBytes,
    })
    let nc: NatsConnection
    try {
      nc =
        opts.nc ??
        (await connectNats({ ...cfg.nats, inboxPrefix: new Subjects(cfg.cluster).inbox(hostIdentity(cfg.host.id ?? defaultHostId())) }, `shoal-host-${cfg.host.id ?? defaultHostId()}`, {}, {
          waitForServer: { onWaiting: (m) => log.warn(m), onConnected: (server) => log.info({ server }, 'connected to NATS') },
        }))
    } catch (e) {
      await runner.close()
      throw e
    }
    const host = new Host(cfg, nc, opts.nc === undefined, registry, runner, log)
    if (cfg.host.metricsPort !== undefined) {
      try {
        host.metricsServer = await startMetricsServer(host.metrics.registry, cfg.host.metricsPort)
        host.log.info({ url: host.metricsServer.url }, 'serving metrics')
      } catch (e) {
        await runner.close()
        if (opts.nc === undefined) await closeNats(nc)
        throw e
      }
    }
    host.countReconnects().catch(() => undefined) // ends when the connection closes
    host.listen()
    host.log.info({ slots, processors: registry.names(), tags: cfg.host.tags }, 'host started')
    return host
  }

  /** Clean shutdown: drops running shares (the balancer re-dispatches them), leaves the pool. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.hbTimer) clearInterval(this.hbTimer)
    this.batcher.close()
    this.sampler.stop()
    this.sub?.unsubscribe()
    this.presenceSub?.unsubscribe()
    try {
      this.bus.publish(this.subjects.leave(this.hostId), { v: V, t: 'leave', hostId: this.hostId })
      // Bounded: with NATS away a flush waits for a server that may never come back.
      await settleWithin(this.nc.flush(), 1_000)
    } catch {
      /* connection gone: the balancer will declare us dead instead */
    }
    await Promise.all([...this.running.values()].map((r) => r.drop().catch(() => undefined)))
    await this.runner.close()
    await this.metricsServer?.close()
    if (this.ownsConnection) await closeNats(this.nc)
    this.log.info('host stopped')
  }

  /** Counts NATS reconnects into the metrics until the connection closes. */
  private async countReconnects(): Promise<void> {
    try {
      for await (const s of this.nc.status()) if (s.type === 'reconnect') this.metrics.reconnects.inc()
    } catch {
      /* the connection closed: nothing left to count */
    }
  }

  /** Adds the units a share did since it was last counted to the metrics. */
  private countUnits(shareId: string, unitsDone: number): void {
    const before = this.unitsCounted.get(shareId)
    if (before !== undefined && unitsDone > before) this.metrics.unitsProcessed.inc(unitsDone - before)
    this.unitsCounted.set(shareId, Math.max(before ?? unitsDone, unitsDone))
  }

  /** Where the metrics are served (undefined when `host.metricsPort` is unset). */
  get metricsUrl(): string | undefined {
    return this.metricsServer?.url
  }

  /** Counts an error that reached the process's last line of defence (crash-guard.ts). */
  unhandled(where: string): void {
    this.metrics.errors.inc({ where })
  }

  /** The highest balancer term this host has obeyed. */
  get term(): number {
    return this.maxTerm
  }

  /** Rejected messages by `subject cause`. */
  rejected(): Record<string, number> {
    return this.bus.rejects.snapshot()
  }

  private listen(): void {
    this.sampler.start()
    this.sub = this.bus.serve(this.subjects.hostCommand(this.hostId), hostCommandSchema, (cmd, raw) => {
      if (cmd.term < this.maxTerm) {
        this.bus.rejects.count(raw.subject, 'stale-term')
        this.log.warn({ t: cmd.t, term: cmd.term, current: this.maxTerm }, 'command from a deposed balancer refused')
        throw new ShoalError('E_STALE_TERM', `host ${this.hostId} follows balancer term ${this.maxTerm}; a command of term ${cmd.term} comes from a deposed leader`)
      }
      this.observeTerm(cmd.term)
      return this.onCommand(cmd)
    }, { replyInbox: () => this.subjects.inbox(BALANCER_IDENTITY) })
    // The leader says who it is every heartbeat: a host learns a new term even if the new leader
    // never commands it, so a deposed leader's late commands find it already refusing them.
    this.presenceSub = this.bus.subscribe(this.subjects.presenceAll(), presenceSchema, (p) => {
      if (p.role !== 'leader') return
      this.observeTerm(p.term)
      // The period only from the leader this host follows (a deposed one's word is old).
      if (p.term >= this.maxTerm && p.heartbeatMs !== undefined) this.setPeriod(p.heartbeatMs)
    })
    this.beat()
    this.hbTimer = setInterval(() => this.beat(), this.periodMs)
  }

  /**
   * Beats every `ms` from now on, as the leader asks for a large pool (lib/pool/heartbeat-period.ts),
   * within pool.heartbeatMs and MAX_PERIOD_FACTOR times it. The heartbeats say the period, and
   * the first one at a longer period goes out at once, before the longer silence starts.
   */
  private setPeriod(ms: number): void {
    const base = this.config.pool.heartbeatMs
    const next = Math.round(Math.min(base * MAX_PERIOD_FACTOR, Math.max(base, ms)))
    if (next === this.periodMs || this.stopped) return
    this.log.info({ from: this.periodMs, to: next }, `beating every ${next} ms, as the leader asks`)
    this.periodMs = next
    if (this.hbTimer) clearInterval(this.hbTimer)
    this.beat()
    this.hbTimer = setInterval(() => this.beat(), next)
  }

  private observeTerm(term: number): void {
    if (term <= this.maxTerm) return
    if (this.maxTerm > 0) this.log.info({ from: this.maxTerm, to: term }, `following balancer term ${term}`)
    this.maxTerm = term
    this.metrics.term.set(term)
  }

  private beat(): void {
    if (this.stopped) return
    const load = this.sampler.current()
    const shares = [...this.running.values()].map((r) => {
      const p = r.progress()
      this.countUnits(r.shareId, p.unitsDone)
      const entry: ShareLoad = { shareId: r.shareId, epoch: r.epoch, position: p.position, to: p.to, unitsDone: p.unitsDone, unitsPerSec: p.unitsPerSec }
      // Left out until measured: the balancer must not read a queued share as an idle one.
      if (p.busy !== undefined) entry.busy = p.busy
      return entry
    })
    for (const f of this.finishing.values()) if (!this.running.has(f.shareId)) shares.push(f)
    const hb: Heartbeat = {
      v: V,
      t: 'hb',
      hostId: this.hostId,
      seq: this.seq++,
      startedAt: this.startedAt,
      capacity: { slots: this.slots, cores: Math.max(1, os.availableParallelism()), memoryBytes: this.config.host.memoryBytes ?? load.memTotalBytes },
      tags: { ...this.config.host.tags },
      processors: this.registry.names(),
      load: {
        cpuMachine: load.cpuMachine,
        cpuShoal: load.cpuShoal,
        memFreeBytes: load.memFreeBytes,
        busySlots: this.running.size,
        utilisation: Math.min(1, this.running.size / this.slots),
      },
      shares,
      periodMs: this.periodMs,
    }
    try {
      this.bus.publish(this.subjects.heartbeat(this.hostId), hb)
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'cannot publish heartbeat')
    }
  }

  // ------------------------------------------------------------------ commands

  private async onCommand(cmd: HostCommand): Promise<HostReply> {
    switch (cmd.t) {
      case 'assign':
        await this.assign(cmd.share)
        return { v: V, t: 'ok' }
      case 'assign-batch': {
        // Each share taken or refused on its own, as if it had come alone; answered in order.
        const answers = await Promise.all(
          cmd.shares.map((a) => this.assign(a).then(
            () => ({ v: V, t: 'ok' as const }),
            (e: unknown) => ({ v: V, t: 'err' as const, error: toWire(e) }),
          )),
        )
        return { v: V, t: 'assigned', answers }
      }
      case 'pause': {
        const r = this.current(cmd.shareId, cmd.epoch)
        const cp = await r.pause()
        this.running.delete(cmd.shareId)
        return { v: V, t: 'paused', checkpoint: await this.checkpointMsg(cp) }
      }
      case 'split': {
        const r = this.current(cmd.shareId, cmd.epoch)
        const s = await r.split(cmd.fraction)
        return s ? { v: V, t: 'split', keptTo: s.keptTo, tail: s.tail } : { v: V, t: 'split', keptTo: r.progress().to, tail: null }
      }
      case 'drop': {
        const r = this.running.get(cmd.shareId)
        if (r && r.epoch === cmd.epoch) {
          this.running.delete(cmd.shareId)
          await r.drop()
          this.log.info({ share: cmd.shareId, epoch: cmd.epoch }, 'share dropped on the balancer\'s word')
        }
        return { v: V, t: 'ok' }
      }
      case 'merge': {
        const p = this.processor(cmd.processor)
        return { v: V, t: 'merged', result: mergeResults(p.processor, cmd.results, cmd.input) }
      }
      case 'validate': {
        const p = this.processor(cmd.processor)
        try {
          p.processor.validateInput?.(cmd.input)
        } catch (e) {
          throw new ShoalError('E_BAD_JOB', (e as Error).message ?? String(e))
        }
        return { v: V, t: 'ok' }
      }
    }
  }

  /**
   * The wire form of a checkpoint: the state inline when it fits in half a message, otherwise put
   * in the Object Store first and referenced by name.
   */
  private async checkpointMsg(cp: Checkpoint): Promise<CheckpointMsg> {
    const base = { shareId: cp.shareId, epoch: cp.epoch, position: cp.position, to: cp.to, unitsDone: cp.unitsDone, stateBytes: cp.stateBytes }
    if (stateFitsInline(cp.stateBytes, this.config.protocol.maxMessageBytes)) return { ...base, state: cp.state }
    const ref = await this.blobs.put(`${cp.shareId}.${cp.epoch}.${this.hostId}.${++this.blobSeq}`, cp.state)
    return { ...base, state: undefined, stateRef: ref }
  }

  private processor(name: string) {
    const p = this.registry.get(name)
    if (!p) throw new ShoalError('E_UNKNOWN_PROCESSOR', `host ${this.hostId} does not register processor '${name}' (registered: ${this.registry.names().join(', ')})`)
    return p
  }

  private current(shareId: string, epoch: number): RunningShare {
    const r = this.running.get(shareId)
    if (!r || r.epoch !== epoch) {
      throw new ShoalError('E_NO_SUCH_SHARE', `host ${this.hostId} does not run share ${shareId} at epoch ${epoch}`)
    }
    return r
  }

  private async assign(a: ShareAssignment): Promise<void> {
    const existing = this.running.get(a.shareId)
    if (existing && existing.epoch === a.epoch) return // a retried assignment
    if (existing) {
      this.running.delete(a.shareId)
      existing.drop().catch(() => undefined) // the old run is being replaced: its end does not matter
    }
    const p = this.processor(a.processor)
    if (a.stateRef) a = { ...a, state: await this.blobs.get(a.stateRef) }
    const spec = {
      shareId: a.shareId,
      epoch: a.epoch,
      processorName: p.name,
      processorUrl: p.url,
      input: a.input,
      from: a.from,
      to: a.to,
      position: a.position,
      unitsDone: a.unitsDone,
      ...(a.state === undefined ? {} : { state: a.state }),
    }
    const isCurrent = () => this.running.get(a.shareId) === run
    // Checkpoints of this run, numbered: one with a newer behind it is superseded.
    let newest = 0
    const run: RunningShare = this.runner.start(spec, {
      onCheckpoint: (cp) => {
        if (!isCurrent()) return
        const seq = ++newest
        // Built when its turn comes: a superseded large state is never uploaded.
        const msg = () => this.checkpointMsg(cp).then((checkpoint): Report => ({ v: V, t: 'checkpoint', hostId: this.hostId, checkpoint }))
        this.delivery.report(a.shareId, msg, false, {
          // A newer checkpoint of this share is waiting behind this one: sending this one only delays it.
          superseded: () => newest !== seq,
          durable: () => this.pace.durable(cp, checkpointClock()),
        }).catch(() => undefined) // report() settles every failure itself
      },
      onDone: (d) => {
        if (!isCurrent()) return
        this.running.delete(a.shareId)
        this.countUnits(a.shareId, d.unitsDone)
        this.unitsCounted.delete(a.shareId)
        this.finished(d.shareId, d.epoch, d.to, d.unitsDone, this.delivery.report(a.shareId, { v: V, t: 'done', hostId: this.hostId, shareId: d.shareId, epoch: d.epoch, to: d.to, result: d.result, unitsDone: d.unitsDone, elapsedMs: d.elapsedMs }, true))
      },
      onFailed: (f) => {
        if (!isCurrent()) return
        this.running.delete(a.shareId)
        this.unitsCounted.delete(a.shareId)
        const msg: Report = { v: V, t: 'failed', hostId: this.hostId, shareId: f.shareId, epoch: f.epoch, error: f.error }
        this.log.warn({ share: f.shareId, error: f.error.message }, 'share failed')
        const cp = f.checkpoint
        this.finished(f.shareId, f.epoch, cp?.position ?? a.position, cp?.unitsDone ?? a.unitsDone, this.delivery.report(a.shareId, cp ? () => this.checkpointMsg(cp).then((checkpoint) => ({ ...msg, checkpoint }), () => msg) : msg, true))
      },
    })
    this.running.set(a.shareId, run)
    this.unitsCounted.set(a.shareId, a.unitsDone)
    // Debug: 10 % of a host's main thread at tiny-share rates (bench tiny); a failure or a drop is info.
    this.log.debug({ share: a.shareId, epoch: a.epoch, from: a.position, to: a.to }, 'share started')
  }

  /** Lists a finished share in the heartbeats until its final report is answered (`delivered`). */
  private finished(shareId: string, epoch: number, position: number, unitsDone: number, delivered: Promise<void>): void {
    const entry: ShareLoad = { shareId, epoch, position, to: position, unitsDone, unitsPerSec: 0, busy: 0, finished: true }
    this.finishing.set(shareId, entry)
    delivered.then(() => {
      if (this.finishing.get(shareId) === entry) this.finishing.delete(shareId)
    }, () => undefined)
  }

  private onNack(shareId: string, msg: Report, why: string): void {
    const epoch = msg.t === 'checkpoint' ? msg.checkpoint.epoch : msg.epoch
    this.log.warn({ share: shareId, epoch, t: msg.t, why }, 'balancer rejected report: dropping share')
    const r = this.running.get(shareId)
    if (r && r.epoch === epoch) {
      this.running.delete(shareId)
      r.drop().catch(() => undefined) // dropped on the balancer's word: how it ends does not matter
    }
  }
}

function defaultHostId(): string {
  return `${os.hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${process.pid}`
}

