/**
 * One synthetic host: speaks the host protocol of lib/worker-host/host.ts on a NATS connection it
 * shares with the other synthetic hosts of its worker process, without running any processor code.
 *
 *   heartbeat  pool.hb.<hostId>: capacity, load (its running shares' CPU over its cores), and its
 *              shares: running ones with position and rate, finished ones whose final report is not
 *              answered yet (`finished: true`), as a real host lists them
 *   commands   host.<hostId>.cmd: assign, pause (answers with a checkpoint), split (keeps
 *              [position, mid), gives the tail away), drop, merge (sums), validate; a command
 *              from a lower term than the highest heard is refused with E_STALE_TERM
 *   reports    bal.report.<hostId>, in batches as a real host sends them (lib/worker-host/report-batcher.ts):
 *              a checkpoint every checkpointMs per running share, on the host's own grid at a
 *              random phase as a real host's (lib/worker-host/checkpoint-grid.ts) (sent once;
 *              skipped while the previous one is unanswered), done or failed at the end, sent again
 *              with back-off (100 ms doubling to 1 s) until a balancer of the current term answers
 *
 * A share's behaviour comes from its job's input (ipc.ts `syntheticInputSchema`): it finishes at
 * once or after `runMs`, and some fail their first attempt. Its position is computed from the
 * clock, so a share costs nothing between ticks.
 *
 * Must never decide placement, and never report a unit it was not given: results are the length
 * of the share's range, so the job's merged result says whether every unit was counted once.
 */

import type { Subscription } from '@nats-io/transport-node'
import { ShoalError, toWire } from '../../lib/errors.ts'
import { NO_REPLY, type Bus } from '../../lib/protocol/bus.ts'
import type { Codec } from '../../lib/protocol/codec.ts'
import {
  PROTOCOL_VERSION as V,
  hostCommandSchema,
  type CheckpointMsg,
  type Heartbeat,
  type HostCommand,
  type HostReply,
  type Report,
  type ReportAnswer,
  type ShareAssignment,
  type ShareLoad,
} from '../../lib/protocol/messages.ts'
import { BALANCER_IDENTITY, type Subjects } from '../../lib/protocol/subjects.ts'
import { SYNTHETIC_PROCESSOR, syntheticInputSchema, type ReportKind, type WorkerSetup } from './ipc.ts'
import type { ReportSender } from './report-sender.ts'
import type { WindowCounter } from './window-counter.ts'
import { hostCheckpointAnchor, nextCheckpointDue } from '../../lib/worker-host/checkpoint-grid.ts'
import { ReportBatcher } from '../../lib/worker-host/report-batcher.ts'

/** What the synthetic hosts of one worker share. */
export interface HostKit {
  bus: Bus
  codec: Codec
  sender: ReportSender
  subjects: Subjects
  counter: WindowCounter
  setup: WorkerSetup
  /** The highest balancer term heard (in a command, an answer or the leader's presence). */
  term: { max: number }
  /** The period the hosts beat at: pool.heartbeatMs, or the leader's longer one (its presence). */
  period: { ms: number }
}

interface SimShare {
  shareId: string
  epoch: number
  from: number
  to: number
  /** Position and units done when this run started (from the assignment's checkpoint). */
  startPos: number
  startUnits: number
  /** performance.now() at the start of this run. */
  startedAt: number
  /** Units per millisecond; Infinity finishes at once. */
  rate: number
  fail: boolean
  nextCheckpointAt: number
  checkpointInFlight: boolean
  /** This share's reports, in order (a real host chains them the same way). */
  chain: Promise<void>
}

const RETRY_MIN_MS = 100
const RETRY_MAX_MS = 1_000

/** FNV-1a of a string: picks the shares that fail, the same ones in every run. */
function hash(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h >>> 0
}

export class SyntheticHost {
  readonly running = new Map<string, SimShare>()
  readonly finishing = new Map<string, ShareLoad>()
  /** An inactive host neither beats, answers nor reports (the balancer declares it dead). */
  active = false
  stopped = false
  /** performance.now() of the next heartbeat due, and of the last one sent. */
  private nextBeatAt = 0
  private lastBeatAt: number | undefined
  private seq = 0
  private readonly startedAt = Date.now()
  private sub: Subscription | undefined
  private readonly batcher: ReportBatcher
  private rephase = false
  /** This host's checkpoint grid, as a real host's (lib/worker-host/checkpoint-grid.ts). */
  private readonly checkpointAnchor: number

  constructor(
    readonly hostId: string,
    private readonly kit: HostKit,
    /** Where in the heartbeat period this host beats: a fleet's heartbeats are not in step. */
    private readonly phaseMs: number,
  ) {
    const { codec, setup } = kit
    this.checkpointAnchor = hostCheckpointAnchor(performance.now(), setup.checkpointMs)
    this.batcher = new ReportBatcher({
      send: (reports) => this.sendBatch(reports),
      sizeOf: (r) => codec.sizeOf(r),
      overheadBytes: codec.sizeOf({ v: V, t: 'reports', hostId, reports: [] }) + 8,
      maxBytes: setup.maxMessageBytes,
      lingerMs: setup.reportLingerMs,
    })
  }

  /**
   * One batch on the wire; every report in it is counted with the batch's round trip (from the
   * send, so a checkpoint's linger is not in it: that is the host's choice, not the balancer's delay).
   */
  private async sendBatch(reports: Report[]): Promise<ReportAnswer[]> {
    const { counter, sender, term } = this.kit
    const o = await sender.send(this.hostId, { v: V, t: 'reports', hostId: this.hostId, reports })
    if (o.t !== 'answers') {
      for (const r of reports) counter.outcome(r.t, o.t === 'answer' ? { t: 'error', message: 'a single answer to a batch' } : o)
      throw new ShoalError(o.t === 'timeout' ? 'E_TIMEOUT' : 'E_UNAVAILABLE', o.t === 'error' ? o.message : `no answer to ${reports.length} report(s)`)
    }
    reports.forEach((r, i) => {
      const a = o.answers[i]
      if (!a || a.t === 'err') counter.outcome(r.t, { t: 'error', message: a ? a.error.message : 'no answer for it' })
      else counter.outcome(r.t, { t: 'answer', reply: a, ms: o.ms }, a.term < term.max)
    })
    return o.answers
  }

  listen(): void {
    const { bus, subjects } = this.kit
    this.kit.sender.listen(this.hostId)
    this.sub = bus.serve(subjects.hostCommand(this.hostId), hostCommandSchema, (cmd, raw) => {
      // A silent host is unreachable, not merely quiet: it answers nothing either.
      if (!this.active) return NO_REPLY
      this.kit.counter.command(cmd.t)
      if (cmd.term < this.kit.term.max) {
        bus.rejects.count(raw.subject, 'stale-term')
        throw new ShoalError('E_STALE_TERM', `host ${this.hostId} follows balancer term ${this.kit.term.max}; a command of term ${cmd.term} comes from a deposed leader`)
      }
      this.kit.term.max = cmd.term
      return this.onCommand(cmd)
    }, { replyInbox: () => subjects.inbox(BALANCER_IDENTITY) })
  }

  stop(): void {
    this.stopped = true
    this.batcher.close()
    this.sub?.unsubscribe()
  }

  /** Sends the heartbeat if it is due; keeps the host's phase unless the worker fell a period behind. */
  maybeBeat(now: number): void {
    if (!this.active || this.stopped || now < this.nextBeatAt) return
    const period = this.kit.period.ms
    this.nextBeatAt = now - this.nextBeatAt > period ? now + period : this.nextBeatAt + period
    // After a change of period: back to this host's own phase of the new one, so the fleet's
    // heartbeats stay spread over the period rather than arrive together.
    if (this.rephase) this.nextBeatAt = now + (this.phaseMs / this.kit.setup.heartbeatMs) * period
    this.rephase = false
    this.kit.counter.heartbeat(this.lastBeatAt === undefined ? undefined : now - this.lastBeatAt)
    this.lastBeatAt = now
    this.kit.bus.publish(this.kit.subjects.heartbeat(this.hostId), this.heartbeat(now))
  }

  /** Beats at the next tick (the period changed: the heartbeat says so before the longer silence). */
  beatNow(): void {
    this.nextBeatAt = 0
    this.rephase = true
  }

  /** Starts (or resumes) beating, at the host's own phase of the period. */
  activate(now: number): void {
    if (this.active) return
    this.active = true
    this.lastBeatAt = undefined
    this.nextBeatAt = now + this.phaseMs
  }

  private heartbeat(now: number): Heartbeat {
    const { slots, cores, memoryBytes } = this.kit.setup
    const shares: ShareLoad[] = []
    for (const s of this.running.values()) {
      const position = this.position(s, now)
      shares.push({ shareId: s.shareId, epoch: s.epoch, position, to: s.to, unitsDone: s.startUnits + (position - s.startPos), unitsPerSec: Number.isFinite(s.rate) ? s.rate * 1000 : 0, busy: 1 })
    }
    for (const f of this.finishing.values()) if (!this.running.has(f.shareId)) shares.push(f)
    // Each running share keeps one core busy; nothing else runs on a synthetic host.
    const cpu = Math.min(1, this.running.size / cores)
    return {
      v: V,
      t: 'hb',
      hostId: this.hostId,
      seq: this.seq++,
      startedAt: this.startedAt,
      capacity: { slots, cores, memoryBytes },
      tags: {},
      processors: [SYNTHETIC_PROCESSOR],
      load: { cpuMachine: cpu, cpuShoal: cpu, memFreeBytes: Math.floor(memoryBytes * 0.75), busySlots: this.running.size, utilisation: Math.min(1, this.running.size / slots) },
      shares,
      periodMs: this.kit.period.ms,
    }
  }

  /** Checkpoints that are due, and shares that reached their end. */
  tick(now: number): void {
    if (this.stopped || !this.active) return
    for (const s of this.running.values()) {
      if (this.position(s, now) >= s.to) this.finish(s)
      else if (now >= s.nextCheckpointAt) {
        s.nextCheckpointAt += this.kit.setup.checkpointMs
        if (s.checkpointInFlight) this.kit.counter.checkpointSkipped()
        else this.checkpoint(s, now)
      }
    }
  }

  private position(s: SimShare, now: number): number {
    if (!Number.isFinite(s.rate)) return s.to
    return Math.min(s.to, s.startPos + Math.floor(s.rate * (now - s.startedAt)))
  }

  private checkpointMsg(s: SimShare, now: number): CheckpointMsg {
    const position = this.position(s, now)
    const state = { units: position - s.from }
    return { shareId: s.shareId, epoch: s.epoch, position, to: s.to, state, unitsDone: s.startUnits + (position - s.startPos), stateBytes: this.kit.codec.sizeOf(state) }
  }

  private checkpoint(s: SimShare, now: number): void {
    s.checkpointInFlight = true
    const report: Report = { v: V, t: 'checkpoint', hostId: this.hostId, checkpoint: this.checkpointMsg(s, now) }
    s.chain = s.chain.then(async () => {
      if (this.running.get(s.shareId) !== s) return
      const o = await this.sendOnce('checkpoint', report)
      if (o === 'nack' && this.running.get(s.shareId) === s) this.running.delete(s.shareId)
    }).finally(() => (s.checkpointInFlight = false)).catch(() => undefined) // sendOnce never rejects
  }

  private finish(s: SimShare): void {
    if (this.running.get(s.shareId) !== s) return
    this.running.delete(s.shareId)
    const unitsDone = s.startUnits + (s.to - s.startPos)
    const entry: ShareLoad = { shareId: s.shareId, epoch: s.epoch, position: s.to, to: s.to, unitsDone, unitsPerSec: 0, busy: 0, finished: true }
    this.finishing.set(s.shareId, entry)
    const report: Report = s.fail
      ? { v: V, t: 'failed', hostId: this.hostId, shareId: s.shareId, epoch: s.epoch, error: { code: 'E_PROCESSOR_THREW', message: `synthetic failure of ${s.shareId} (bench/scale: its first attempt fails)`, retryable: true } }
      : { v: V, t: 'done', hostId: this.hostId, shareId: s.shareId, epoch: s.epoch, to: s.to, result: s.to - s.from, unitsDone, elapsedMs: performance.now() - s.startedAt }
    s.chain = s.chain.then(() => this.sendUntilAnswered(report)).finally(() => {
      if (this.finishing.get(s.shareId) === entry) this.finishing.delete(s.shareId)
    }).catch(() => undefined) // sendUntilAnswered never rejects
  }

  /** One try; 'ack' | 'nack' | 'none' (no answer, an error, or an answer from a deposed leader). */
  private async sendOnce(kind: ReportKind, report: Report): Promise<'ack' | 'nack' | 'none'> {
    const { counter, term } = this.kit
    counter.sent(kind)
    // Counted by sendBatch, with the batch's round trip.
    const reply = await this.batcher.send(report).catch(() => undefined)
    if (!reply || reply.term < term.max) return 'none'
    term.max = Math.max(term.max, reply.term)
    return reply.t
  }

  private async sendUntilAnswered(report: Report): Promise<void> {
    let wait = RETRY_MIN_MS
    while (!this.stopped) {
      if (this.active && (await this.sendOnce(report.t, report)) !== 'none') return
      await new Promise((r) => setTimeout(r, wait))
      wait = Math.min(RETRY_MAX_MS, wait * 2)
    }
  }

  private onCommand(cmd: HostCommand): HostReply {
    switch (cmd.t) {
      case 'assign':
        this.assign(cmd.share)
        return { v: V, t: 'ok' }
      case 'assign-batch':
        // As lib/worker-host/host.ts: each share answered on its own, in order.
        return {
          v: V,
          t: 'assigned',
          answers: cmd.shares.map((a) => {
            try {
              this.assign(a)
              return { v: V, t: 'ok' as const }
            } catch (e) {
              return { v: V, t: 'err' as const, error: toWire(e) }
            }
          }),
        }
      case 'pause': {
        const s = this.current(cmd.shareId, cmd.epoch)
        this.running.delete(s.shareId)
        return { v: V, t: 'paused', checkpoint: this.checkpointMsg(s, performance.now()) }
      }
      case 'split': {
        const s = this.current(cmd.shareId, cmd.epoch)
        const pos = this.position(s, performance.now())
        const remaining = s.to - pos
        if (remaining < 2) return { v: V, t: 'split', keptTo: s.to, tail: null }
        // As lib/worker-host/share-worker.ts: keep at least one unit and give away at least one.
        const mid = Math.min(s.to - 1, Math.max(pos + 1, pos + Math.ceil(remaining * (1 - cmd.fraction))))
        const tail: [number, number] = [mid, s.to]
        s.to = mid
        return { v: V, t: 'split', keptTo: mid, tail }
      }
      case 'drop': {
        const s = this.running.get(cmd.shareId)
        if (s && s.epoch === cmd.epoch) this.running.delete(cmd.shareId)
        return { v: V, t: 'ok' }
      }
      case 'merge': {
        let sum = 0
        for (const r of cmd.results) {
          if (typeof r !== 'number') throw new ShoalError('E_PROCESSOR_THREW', `synthetic merge: a result is not a number (${typeof r})`)
          sum += r
        }
        return { v: V, t: 'merged', result: sum }
      }
      case 'validate':
        this.input(cmd.processor, cmd.input)
        return { v: V, t: 'ok' }
    }
  }

  private input(processor: string, input: unknown) {
    if (processor !== SYNTHETIC_PROCESSOR) throw new ShoalError('E_UNKNOWN_PROCESSOR', `host ${this.hostId} does not register processor '${processor}' (registered: ${SYNTHETIC_PROCESSOR})`)
    const p = syntheticInputSchema.safeParse(input)
    if (!p.success) throw new ShoalError('E_BAD_JOB', `synthetic input: ${p.error.issues[0]?.message ?? 'invalid'}`)
    return p.data
  }

  private current(shareId: string, epoch: number): SimShare {
    const s = this.running.get(shareId)
    if (!s || s.epoch !== epoch) throw new ShoalError('E_NO_SUCH_SHARE', `host ${this.hostId} does not run share ${shareId} at epoch ${epoch}`)
    return s
  }

  private assign(a: ShareAssignment): void {
    const existing = this.running.get(a.shareId)
    if (existing && existing.epoch === a.epoch) return // a retried assignment
    const input = this.input(a.processor, a.input)
    if (a.stateRef) throw new ShoalError('E_INTERNAL', 'synthetic hosts keep checkpoint states inline; got a state reference')
    const now = performance.now()
    const s: SimShare = {
      shareId: a.shareId,
      epoch: a.epoch,
      from: a.from,
      to: a.to,
      startPos: a.position,
      startUnits: a.unitsDone,
      startedAt: now,
      rate: input.runMs === 0 ? Number.POSITIVE_INFINITY : (a.to - a.from) / input.runMs,
      fail: input.failPermille > 0 && a.epoch === 1 && hash(a.shareId) % 1000 < input.failPermille,
      nextCheckpointAt: nextCheckpointDue(now, this.checkpointAnchor, this.kit.setup.checkpointMs),
      checkpointInFlight: false,
      chain: Promise.resolve(),
    }
    // The replaced run (another epoch) ends without a word, as a dropped worker thread does.
    this.running.set(a.shareId, s)
    // After the assignment's answer has gone out: a real host's share starts after that too.
    if (!Number.isFinite(s.rate)) setImmediate(() => this.finish(s))
  }
}
