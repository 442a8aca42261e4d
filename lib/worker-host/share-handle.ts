/**
 * The handle of one running share (share-runner.ts starts it): the host daemon pauses (hands
 * over), splits or drops the share through it at the next safe point, and reads its progress.
 * Commands go to the worker through the share's SharedArrayBuffer control block; checkpoints and
 * split answers come back on its MessagePort; the task's outcome says how it ended.
 *
 * Must never let a share's handlers fire after the share was dropped.
 */

import type { MessagePort } from 'node:worker_threads'
import { receiveMessageOnPort } from 'node:worker_threads'
import { pack } from 'msgpackr'
import { fromWire, ShoalError, type WireError } from '../errors.ts'
import {
  BUSY_UNKNOWN,
  CMD_DROP,
  CMD_PAUSE,
  CMD_RUN,
  controlViews,
  I_BUSY_MILLI,
  I_CKPT_LEAD_MS,
  I_CMD,
  I_POSITION,
  I_RATE_MILLI,
  I_SPLIT_PPM,
  I_SPLIT_SEQ,
  I_TO,
  I_UNITS_DONE,
  type ControlViews,
  type TaskOutcome,
  type WorkerMessage,
} from './control.ts'
import { type Checkpoint, type RunningShare, type ShareEnd, type ShareFailed, type ShareHandlers, type ShareProgress, type ShareSpec, type SplitResult } from './share-types.ts'

export interface RunnerHooks {
  closed(): boolean
  /** The share's task has ended: free its slot. */
  forget(handle: ShareHandle): void
  reportError(err: unknown): void
}

export class ShareHandle implements RunningShare {
  readonly shareId: string
  readonly epoch: number
  readonly #spec: ShareSpec
  readonly #handlers: ShareHandlers
  readonly #views: ControlViews
  readonly #port: MessagePort
  readonly #runner: RunnerHooks
  #end: ShareEnd | null = null
  #failure: WireError | null = null
  /** Set by drop() and close(): from then on no handler fires. */
  #silenced = false
  #lastCheckpoint: Checkpoint | undefined
  #pause: { promise: Promise<Checkpoint>; resolve: (cp: Checkpoint) => void; reject: (e: Error) => void } | null = null
  #splitSeq = 0
  #pendingSplit: { seq: number; resolve: (r: SplitResult | null) => void } | null = null
  #splitChain: Promise<unknown> = Promise.resolve()
  readonly #ended: Promise<ShareEnd>
  #resolveEnded!: (e: ShareEnd) => void

  constructor(spec: ShareSpec, handlers: ShareHandlers, control: SharedArrayBuffer, port: MessagePort, runner: RunnerHooks) {
    this.shareId = spec.shareId
    this.epoch = spec.epoch
    this.#spec = spec
    this.#handlers = handlers
    this.#views = controlViews(control)
    this.#port = port
    this.#runner = runner
    this.#ended = new Promise((resolve) => (this.#resolveEnded = resolve))
    if (spec.state !== undefined) {
      // The checkpoint the share resumed from is the last good one until the worker posts another.
      this.#lastCheckpoint = {
        shareId: spec.shareId,
        epoch: spec.epoch,
        position: spec.position,
        to: spec.to,
        state: spec.state,
        unitsDone: spec.unitsDone,
        stateBytes: -1,
      }
    }
    port.on('message', (m: WorkerMessage) => this.#onMessage(m))
  }

  setCheckpointLead(ms: number): void {
    Atomics.store(this.#views.cmd, I_CKPT_LEAD_MS, ms)
  }

  progress(): ShareProgress {
    const p = this.#views.progress
    const busyMilli = Atomics.load(p, I_BUSY_MILLI)
    return {
      position: Number(Atomics.load(p, I_POSITION)),
      to: Number(Atomics.load(p, I_TO)),
      unitsDone: Number(Atomics.load(p, I_UNITS_DONE)),
      unitsPerSec: Number(Atomics.load(p, I_RATE_MILLI)) / 1000,
      busy: busyMilli === BUSY_UNKNOWN ? undefined : Number(busyMilli) / 1000,
    }
  }

  pause(): Promise<Checkpoint> {
    if (this.#pause) return this.#pause.promise
    let resolve!: (cp: Checkpoint) => void
    let reject!: (e: Error) => void
    const promise = new Promise<Checkpoint>((res, rej) => {
      resolve = res
      reject = rej
    })
    this.#pause = { promise, resolve, reject }
    if (this.#end) this.#settlePause()
    // A drop already requested wins over the pause.
    else Atomics.compareExchange(this.#views.cmd, I_CMD, CMD_RUN, CMD_PAUSE)
    return promise
  }

  split(fraction = 0.5): Promise<SplitResult | null> {
    if (!(typeof fraction === 'number' && fraction > 0 && fraction < 1)) {
      return Promise.reject(new ShoalError('E_INTERNAL', `split fraction must be a number between 0 and 1, exclusive (got ${fraction})`))
    }
    // One request in the control block at a time: a second one written before the worker read
    // the first would overwrite it and leave it unanswered.
    const ask = (): Promise<SplitResult | null> => {
      if (this.#end || this.#pause || this.#silenced) return Promise.resolve(null)
      const seq = ++this.#splitSeq
      const answer = new Promise<SplitResult | null>((resolve) => (this.#pendingSplit = { seq, resolve }))
      Atomics.store(this.#views.cmd, I_SPLIT_PPM, Math.min(999_999, Math.max(1, Math.round(fraction * 1e6))))
      Atomics.store(this.#views.cmd, I_SPLIT_SEQ, seq)
      return answer
    }
    const result = this.#splitChain.then(ask, ask)
    this.#splitChain = result
    return result
  }

  drop(): Promise<void> {
    this.#silenced = true
    if (!this.#end) Atomics.store(this.#views.cmd, I_CMD, CMD_DROP)
    return this.#ended.then(() => undefined)
  }

  whenEnded(): Promise<ShareEnd> {
    return this.#ended
  }

  /** Stops every handler (runner closing). */
  silence(): void {
    this.#silenced = true
  }

  /** True once drop() or close() was called: no handler fires any more. */
  get silenced(): boolean {
    return this.#silenced
  }

  #onMessage(m: WorkerMessage): void {
    if (m.t === 'checkpoint') {
      const cp: Checkpoint = { shareId: this.shareId, epoch: this.epoch, ...stripT(m) }
      this.#lastCheckpoint = cp
      if (!this.#silenced) this.#call(() => this.#handlers.onCheckpoint(cp))
      return
    }
    const pending = this.#pendingSplit
    if (!pending || pending.seq !== m.seq) return
    this.#pendingSplit = null
    if (m.keptTo === null) {
      pending.resolve(null)
      return
    }
    // An earlier checkpoint still names the old end; resuming it must not redo the tail.
    if (this.#lastCheckpoint && this.#lastCheckpoint.to > m.keptTo) {
      this.#lastCheckpoint = { ...this.#lastCheckpoint, to: m.keptTo }
    }
    pending.resolve({ keptTo: m.keptTo, tail: m.tail })
  }

  /** The task ended: take in every message it posted first, then report the end. */
  settle(outcome: TaskOutcome): void {
    if (this.#end) return
    // Messages and the task result travel on different ports, so the result can overtake them;
    // the messages are already queued on our port, so read them synchronously before going on.
    for (let m = receiveMessageOnPort(this.#port); m; m = receiveMessageOnPort(this.#port)) {
      this.#onMessage(m.message as WorkerMessage)
    }
    this.#port.close()
    this.#end = outcome.kind
    this.#runner.forget(this)
    if (this.#pendingSplit) {
      this.#pendingSplit.resolve(null)
      this.#pendingSplit = null
    }
    switch (outcome.kind) {
      case 'done':
        if (!this.#silenced) {
          const { result, unitsDone, to, elapsedMs } = outcome
          this.#call(() => this.#handlers.onDone({ shareId: this.shareId, epoch: this.epoch, result, unitsDone, to, elapsedMs }))
        }
        break
      case 'paused':
        this.#lastCheckpoint = { shareId: this.shareId, epoch: this.epoch, ...stripKind(outcome) }
        break
      case 'failed':
        this.#failure = outcome.error
        if (!this.#silenced) {
          const f: ShareFailed = { shareId: this.shareId, epoch: this.epoch, error: outcome.error }
          const cp = this.#lastGoodCheckpoint()
          if (cp) f.checkpoint = cp
          this.#call(() => this.#handlers.onFailed(f))
        }
        break
      case 'dropped':
        break
    }
    this.#settlePause()
    this.#resolveEnded(outcome.kind)
  }

  #settlePause(): void {
    const p = this.#pause
    if (!p || !this.#end) return
    if (this.#end === 'paused' && this.#lastCheckpoint) return p.resolve(this.#lastCheckpoint)
    if (this.#end === 'failed' && this.#failure) return p.reject(fromWire(this.#failure))
    const why = this.#runner.closed() ? 'the share runner closed' : `the share was ${this.#end}`
    p.reject(
      new ShoalError('E_NO_SUCH_SHARE', `share ${this.shareId} (epoch ${this.epoch}) cannot pause: ${why} first`, {
        details: { shareId: this.shareId, epoch: this.epoch, end: this.#end },
      }),
    )
  }

  #lastGoodCheckpoint(): Checkpoint | undefined {
    const cp = this.#lastCheckpoint
    if (cp && cp.stateBytes < 0) {
      try {
        return { ...cp, stateBytes: pack(cp.state).length }
      } catch {
        return cp
      }
    }
    return cp
  }

  #call(fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.#runner.reportError(err)
    }
  }
}

function stripT<T extends { t: unknown }>(m: T): Omit<T, 't'> {
  const { t: _t, ...rest } = m
  return rest
}

function stripKind<T extends { kind: unknown }>(m: T): Omit<T, 'kind'> {
  const { kind: _k, ...rest } = m
  return rest
}
