/**
 * The host daemon (`shoal host`): advertises capacity and load every pool.heartbeatMs, runs the
 * shares the balancer assigns in a piscina pool sized to its slots, reports checkpoints, results and
 * failures, and answers pause / split / drop / merge / validate commands.
 *
 * Only processors in the host's own registry (built-ins plus modules named in its config) ever run:
 * a job names a processor, it never ships code.
 *
 * Must never decide placement: it does what the balancer says, and drops a share the balancer
 * calls stale.
 */

import os from 'node:os'
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { ShoalError } from '../errors.ts'
import type { Config } from '../config/mod.ts'
import { createLogger, type Logger } from '../log.ts'
import { connectNats } from '../nats-connect.ts'
import { Bus } from '../protocol/bus.ts'
import { Codec } from '../protocol/codec.ts'
import {
  PROTOCOL_VERSION as V,
  hostCommandSchema,
  reportReplySchema,
  type CheckpointMsg,
  type Heartbeat,
  type HostCommand,
  type HostReply,
  type Report,
  type ShareAssignment,
  type ShareLoad,
} from '../protocol/messages.ts'
import { Subjects } from '../protocol/subjects.ts'
import { HostMetrics } from '../metrics/host-metrics.ts'
import { startMetricsServer, type MetricsServer } from '../metrics/server.ts'
import { loadProcessors, type ProcessorRegistry } from '../processors/registry.ts'
import { ShareRunner, mergeResults, type RunningShare } from './share-runner.ts'
import { LoadSampler } from './load-sampler.ts'
import { StateBlobs, stateFitsInline } from '../checkpoints/state-blobs.ts'
import type { Checkpoint } from './share-runner.ts'

export interface HostOptions {
  config: Config
  logger?: Logger
  nc?: NatsConnection
}

const REPORT_TIMEOUT_MS = 3_000
const RETRY_MAX_MS = 2_000

export class Host {
  readonly hostId: string
  readonly slots: number
  private readonly log: Logger
  private readonly subjects: Subjects
  private readonly bus: Bus
  private readonly sampler: LoadSampler
  private readonly running = new Map<string, RunningShare>()
  /** Per-share chain of reports, so a share's reports reach the balancer in order. */
  private readonly reportChains = new Map<string, Promise<void>>()
  private readonly startedAt = Date.now()
  private seq = 0
  private blobSeq = 0
  private blobs: Promise<StateBlobs> | undefined
  private sub: Subscription | undefined
  private hbTimer: NodeJS.Timeout | undefined
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
    this.slots = config.host.slots ?? Math.max(1, os.availableParallelism())
    this.log = logger.child({ host: this.hostId })
    this.subjects = new Subjects(config.cluster)
    this.bus = new Bus(nc, new Codec(config.protocol.maxMessageBytes))
    // Sampled at heartbeat pace, so a background CPU hog shows in the next heartbeats.
    this.sampler = new LoadSampler(config.pool.heartbeatMs)
    this.metrics = new HostMetrics(this.hostId, () => {
      const load = this.sampler.current()
      return { slots: this.slots, sharesRunning: this.running.size, cpuMachine: load.cpuMachine, cpuShoal: load.cpuShoal }
    })
    this.bus.rejects.onReject = (subject, cause) => this.metrics.rejected.inc({ subject, cause })
  }

  static async start(opts: HostOptions): Promise<Host> {
    const cfg = opts.config
    const log = opts.logger ?? createLogger('shoal-host', cfg.log.level)
    const registry = await loadProcessors([...cfg.host.processors])
    const slots = cfg.host.slots ?? Math.max(1, os.availableParallelism())
    const runner = new ShareRunner({
      slots,
      checkpointMs: cfg.shares.checkpointMs,
      stepTargetMs: cfg.shares.stepTargetMs,
      maxCheckpointBytes: cfg.shares.maxCheckpointBytes,
    })
    let nc: NatsConnection
    try {
      nc = opts.nc ?? (await connectNats(cfg.nats, `shoal-host-${cfg.host.id ?? defaultHostId()}`))
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
        if (opts.nc === undefined) await nc.drain().catch(() => undefined)
        throw e
      }
    }
    void host.countReconnects()
    host.listen()
    host.log.info({ slots, processors: registry.names(), tags: cfg.host.tags }, 'host started')
    return host
  }

  /** Clean shutdown: drops running shares (the balancer re-dispatches them), leaves the pool. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.hbTimer) clearInterval(this.hbTimer)
    this.sampler.stop()
    this.sub?.unsubscribe()
    try {
      this.bus.publish(this.subjects.leave(this.hostId), { v: V, t: 'leave', hostId: this.hostId })
      await this.nc.flush()
    } catch {
      /* connection gone: the balancer will declare us dead instead */
    }
    await Promise.all([...this.running.values()].map((r) => r.drop().catch(() => undefined)))
    await this.runner.close()
    await this.metricsServer?.close()
    if (this.ownsConnection) await this.nc.drain().catch(() => undefined)
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

  /** Rejected messages by `subject cause`. */
  rejected(): Record<string, number> {
    return this.bus.rejects.snapshot()
  }

  private listen(): void {
    this.sampler.start()
    this.sub = this.bus.serve(this.subjects.hostCommand(this.hostId), hostCommandSchema, (cmd) => this.onCommand(cmd))
    this.beat()
    this.hbTimer = setInterval(() => this.beat(), this.config.pool.heartbeatMs)
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
    const ref = await (await this.stateBlobs()).put(`${cp.shareId}.${cp.epoch}.${this.hostId}.${++this.blobSeq}`, cp.state)
    return { ...base, state: undefined, stateRef: ref }
  }

  private stateBlobs(): Promise<StateBlobs> {
    this.blobs ??= StateBlobs.open(this.nc, this.subjects)
    this.blobs.catch(() => (this.blobs = undefined))
    return this.blobs
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
      void existing.drop()
    }
    const p = this.processor(a.processor)
    if (a.stateRef) a = { ...a, state: await (await this.stateBlobs()).get(a.stateRef) }
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
    const run: RunningShare = this.runner.start(spec, {
      onCheckpoint: (cp) => {
        if (isCurrent()) this.report(a.shareId, this.checkpointMsg(cp).then((checkpoint) => ({ v: V, t: 'checkpoint', hostId: this.hostId, checkpoint })), false)
      },
      onDone: (d) => {
        if (!isCurrent()) return
        this.running.delete(a.shareId)
        this.countUnits(a.shareId, d.unitsDone)
        this.unitsCounted.delete(a.shareId)
        this.report(a.shareId, { v: V, t: 'done', hostId: this.hostId, shareId: d.shareId, epoch: d.epoch, to: d.to, result: d.result, unitsDone: d.unitsDone, elapsedMs: d.elapsedMs }, true)
      },
      onFailed: (f) => {
        if (!isCurrent()) return
        this.running.delete(a.shareId)
        this.unitsCounted.delete(a.shareId)
        const msg: Report = { v: V, t: 'failed', hostId: this.hostId, shareId: f.shareId, epoch: f.epoch, error: f.error }
        this.log.warn({ share: f.shareId, error: f.error.message }, 'share failed')
        const cp = f.checkpoint
        this.report(a.shareId, cp ? this.checkpointMsg(cp).then((checkpoint) => ({ ...msg, checkpoint }), () => msg) : msg, true)
      },
    })
    this.running.set(a.shareId, run)
    this.unitsCounted.set(a.shareId, a.unitsDone)
    this.log.info({ share: a.shareId, epoch: a.epoch, from: a.position, to: a.to }, 'share started')
  }

  /**
   * Sends a report in order after the share's earlier ones. A checkpoint is sent once (the next
   * one supersedes it); a result or failure is retried until the balancer answers, because it is
   * the only copy of that work.
   */
  private report(shareId: string, msg: Report | Promise<Report>, mustArrive: boolean): void {
    const prev = this.reportChains.get(shareId) ?? Promise.resolve()
    const next = prev.then(async () => {
      let m: Report
      try {
        m = await msg
      } catch (e) {
        this.log.warn({ share: shareId, err: (e as Error).message }, 'checkpoint not sent')
        return
      }
      await this.send(shareId, m, mustArrive)
    })
    this.reportChains.set(shareId, next)
    void next.finally(() => {
      if (this.reportChains.get(shareId) === next) this.reportChains.delete(shareId)
    })
  }

  private async send(shareId: string, msg: Report, mustArrive: boolean): Promise<void> {
    let wait = 100
    for (;;) {
      try {
        const t0 = performance.now()
        const reply = await this.bus.request(this.subjects.report(), msg, reportReplySchema, REPORT_TIMEOUT_MS)
        if (msg.t === 'checkpoint' && reply.t === 'ack') this.metrics.checkpointLatency.observe((performance.now() - t0) / 1000)
        if (reply.t === 'nack') this.onNack(shareId, msg, reply.error.message)
        return
      } catch (e) {
        const err = e as ShoalError
        if (!mustArrive || this.stopped || (err.code !== 'E_TIMEOUT' && err.code !== 'E_UNAVAILABLE')) {
          if (mustArrive) this.log.error({ share: shareId, t: msg.t, err: err.message }, 'report could not be delivered')
          return
        }
        await new Promise((r) => setTimeout(r, wait))
        wait = Math.min(RETRY_MAX_MS, wait * 2)
      }
    }
  }

  private onNack(shareId: string, msg: Report, why: string): void {
    const epoch = msg.t === 'checkpoint' ? msg.checkpoint.epoch : msg.epoch
    this.log.warn({ share: shareId, epoch, t: msg.t, why }, 'balancer rejected report: dropping share')
    const r = this.running.get(shareId)
    if (r && r.epoch === epoch) {
      this.running.delete(shareId)
      void r.drop()
    }
  }
}

function defaultHostId(): string {
  return `${os.hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${process.pid}`
}

