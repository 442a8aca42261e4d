/**
 * The main-thread side of the host's share runtime: a piscina pool with one worker thread per
 * slot, and a handle per running share through which the host daemon pauses (hands over), splits
 * or drops it at the next safe point, and reads its progress.
 *
 * Commands travel through a SharedArrayBuffer the worker reads between steps (so a busy share
 * answers within about one step); checkpoints and split answers come back on a MessagePort; the
 * task's return value says how the share ended.
 *
 * Must never use piscina's AbortSignal to stop a share (it terminates the worker thread and loses
 * the state), never load processor code itself (the worker imports the registry URL it is given),
 * and never let a share's handlers fire after the share was dropped.
 */
import { fileURLToPath } from 'node:url'
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads'
import { pack } from 'msgpackr'
import { Piscina } from 'piscina'
import { fromWire, ShoalError, toWire, type WireError } from '../errors.ts'
import type { AnyProcessor } from '../processors/define.ts'
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
  newControlBlock,
  type ControlViews,
  type TaskOutcome,
  type WorkerMessage,
  type WorkerTask,
} from './control.ts'

// Under tsx (tests) this file is `.ts` and workers inherit the tsx loader; compiled, it is `.js`.
const WORKER_FILE = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './share-worker.ts' : './share-worker.js', import.meta.url),
)

/** A share to run, as the host daemon got it from the balancer. */
export interface ShareSpec {
  shareId: string
  epoch: number
  processorName: string
  /** The module URL from the host's processor registry (never from the job). */
  processorUrl: string
  input: unknown
  /** The share's range start (what `init` sees for a fresh share). */
  from: number
  /** Range end (exclusive). */
  to: number
  /** Next unit to process (`from` for a fresh share). */
  position: number
  /** State at `position`; undefined → the runtime calls `processor.init(input, [position, to])`. */
  state?: unknown
  /** Units processed so far by this share (all epochs). */
  unitsDone: number
}

/** A share's state at a safe point: everything needed to resume it elsewhere. */
export interface Checkpoint {
  shareId: string
  epoch: number
  /** Next unit to process. */
  position: number
  /** Range end (exclusive); smaller than the spec's after a split. */
  to: number
  state: unknown
  unitsDone: number
  /** msgpack size of `state`, in bytes (-1 when not measured). */
  stateBytes: number
  /**
   * For a periodic checkpoint: when it was due to be durable and when it was taken, in ms since
   * the epoch on the clock of `checkpointClock()` (absent for the one a share resumed from or
   * paused at).
   */
  dueAt?: number
  takenAt?: number
}

/** The clock checkpoints' `dueAt` is on: the same in the worker threads and the main thread. */
export function checkpointClock(): number {
  return performance.timeOrigin + performance.now()
}

export interface ShareRunnerOptions {
  /** Worker threads, i.e. shares that run at once. */
  slots: number
  /** A checkpoint is posted after every `checkpointMs` of work. */
  checkpointMs: number
  /** Target duration of one step; bounds how long a pause or split waits for a safe point. */
  stepTargetMs: number
  /** A checkpoint whose msgpack state is larger fails the share with E_CHECKPOINT_TOO_LARGE. */
  maxCheckpointBytes: number
  /**
   * Called with errors that belong to no share: a handler that threw, a pool error. Default:
   * `process.emitWarning`. Never throws into the worker machinery.
   */
  onError?: (err: unknown) => void
}

/** A share that ran to the end of its range. */
export interface ShareDone {
  shareId: string
  epoch: number
  result: unknown
  unitsDone: number
  to: number
  /** Time in the worker from task start (including module load and init) to the result. */
  elapsedMs: number
}

/** A share that failed on this host. */
export interface ShareFailed {
  shareId: string
  epoch: number
  error: WireError
  /** The last good checkpoint known here (posted by the worker, or the one the share started from). */
  checkpoint?: Checkpoint
}

/** What the runtime tells the host daemon about one share. Handlers should not throw. */
export interface ShareHandlers {
  /** Every `checkpointMs` of work (time-based, in the worker). */
  onCheckpoint(cp: Checkpoint): void
  onDone(done: ShareDone): void
  /** The processor threw, the checkpoint was too large, the module failed to load, or the worker died. */
  onFailed(f: ShareFailed): void
}

/** How a share's run on this host ended. */
export type ShareEnd = 'done' | 'paused' | 'dropped' | 'failed'

/** Last known progress of a running share (read from shared memory: cheap). */
export interface ShareProgress {
  position: number
  to: number
  unitsDone: number
  unitsPerSec: number
  /**
   * Fraction of wall time the share's worker thread was active over the last rate window, 0..1
   * (see share-worker.ts): its CPU demand in cores, ≈ 1 for a CPU-bound share even on a contended
   * core. Undefined until the worker has measured a first window (queued or just started), which
   * is not the same as 0, a share that waits on timers or I/O.
   */
  busy: number | undefined
}

/** The split of a share: it keeps `[position, keptTo)` and `tail` becomes a new share. */
export interface SplitResult {
  keptTo: number
  tail: [number, number]
}

/** The handle of a share running (or queued) on this host. */
export interface RunningShare {
  readonly shareId: string
  readonly epoch: number
  progress(): ShareProgress
  /**
   * Hand over: stop at the next safe point and resolve with the final checkpoint; the share then
   * ends on this host (no onDone). Rejects with E_NO_SUCH_SHARE when the share finished or was
   * dropped first, or with the share's error when it failed first.
   */
  pause(): Promise<Checkpoint>
  /**
   * At the next safe point cut `[mid, to)` off, `mid = position + ceil((to - position) * (1 -
   * fraction))` (at least one unit kept and one given), and keep running `[position, mid)`.
   * Resolves null when fewer than 2 units remain or the share has ended or is stopping.
   */
  split(fraction?: number): Promise<SplitResult | null>
  /** Stop at the next safe point and discard the share: no onDone/onFailed after this call. */
  drop(): Promise<void>
  /** Resolves (never rejects) when the share's task has ended and its slot is free. */
  whenEnded(): Promise<ShareEnd>
}

function checkOptions(o: ShareRunnerOptions): void {
  const bad = (key: string, want: string, got: unknown): never => {
    throw new ShoalError('E_CONFIG', `ShareRunner ${key} must be ${want} (got ${JSON.stringify(got)})`, {
      details: { key, value: got },
    })
  }
  if (!Number.isInteger(o.slots) || o.slots < 1) bad('slots', 'an integer >= 1', o.slots)
  if (!(typeof o.checkpointMs === 'number' && o.checkpointMs > 0)) bad('checkpointMs', 'a number > 0', o.checkpointMs)
  if (!(typeof o.stepTargetMs === 'number' && o.stepTargetMs > 0)) bad('stepTargetMs', 'a number > 0', o.stepTargetMs)
  if (!Number.isInteger(o.maxCheckpointBytes) || o.maxCheckpointBytes < 1) {
    bad('maxCheckpointBytes', 'an integer >= 1', o.maxCheckpointBytes)
  }
}

function checkSpec(s: ShareSpec): void {
  const bad = (msg: string): never => {
    throw new ShoalError('E_BAD_RANGE', `share ${s.shareId}: ${msg}`, { details: { shareId: s.shareId } })
  }
  for (const k of ['from', 'to', 'position', 'unitsDone'] as const) {
    if (!Number.isSafeInteger(s[k])) bad(`${k} must be a safe integer (got ${String(s[k])})`)
  }
  if (!(s.from <= s.position && s.position <= s.to)) {
    bad(`needs from <= position <= to (got from ${s.from}, position ${s.position}, to ${s.to})`)
  }
  if (typeof s.processorUrl !== 'string' || s.processorUrl === '') {
    throw new ShoalError('E_INTERNAL', `share ${s.shareId}: processorUrl must come from the processor registry`)
  }
}

/** Runs shares in worker threads; one per slot at a time (more are queued by piscina). */
export class ShareRunner {
  readonly #opts: ShareRunnerOptions
  readonly #pool: Piscina<WorkerTask, TaskOutcome>
  /** Shares whose task has not ended, including dropped ones still on their way to a safe point. */
  readonly #shares = new Set<ShareHandle>()
  #closed = false
  #leadMs = 0
  /** What a share handle may ask of its runner, and nothing more. */
  readonly #hooks: RunnerHooks = {
    closed: () => this.#closed,
    forget: (handle) => {
      this.#shares.delete(handle)
    },
    reportError: (err) => this.#reportError(err),
  }

  constructor(opts: ShareRunnerOptions) {
    checkOptions(opts)
    this.#opts = { ...opts }
    this.#pool = new Piscina<WorkerTask, TaskOutcome>({
      filename: WORKER_FILE,
      minThreads: opts.slots,
      maxThreads: opts.slots,
      concurrentTasksPerWorker: 1,
      // Threads are the slots: never reap them (a new one costs 40-120 ms).
      idleTimeout: Infinity,
    })
    this.#pool.on('error', (err: unknown) => this.#reportError(err))
  }

  /**
   * Starts (or queues) a share. Throws if a share with this id is running here and has not been
   * dropped (a dropped one may still hold its slot until its next safe point).
   */
  start(spec: ShareSpec, handlers: ShareHandlers): RunningShare {
    if (this.#closed) throw new ShoalError('E_UNAVAILABLE', `share runner is closed; cannot start share ${spec.shareId}`)
    checkSpec(spec)
    const existing = [...this.#shares].find((h) => h.shareId === spec.shareId && !h.silenced)
    if (existing) {
      // Two live runs of one share on one host would report its units twice. A dropped run may
      // still be reaching its safe point, but it reports nothing, so a new epoch may start.
      throw new ShoalError(
        'E_INTERNAL',
        `share ${spec.shareId} is already running here (epoch ${existing.epoch}); drop it before starting epoch ${spec.epoch}`,
      )
    }
    const control = newControlBlock(spec.position, spec.to, spec.unitsDone)
    const { port1, port2 } = new MessageChannel()
    const handle = new ShareHandle(spec, handlers, control, port1, this.#hooks)
    handle.setCheckpointLead(this.#leadMs)
    this.#shares.add(handle)
    const task: WorkerTask = {
      shareId: spec.shareId,
      epoch: spec.epoch,
      processorName: spec.processorName,
      processorUrl: spec.processorUrl,
      input: spec.input,
      from: spec.from,
      to: spec.to,
      position: spec.position,
      state: spec.state,
      unitsDone: spec.unitsDone,
      checkpointMs: this.#opts.checkpointMs,
      stepTargetMs: this.#opts.stepTargetMs,
      maxCheckpointBytes: this.#opts.maxCheckpointBytes,
      control,
      port: port2,
    }
    let run: Promise<TaskOutcome>
    try {
      run = this.#pool.run(task, { transferList: [port2] })
    } catch (err) {
      run = Promise.reject(err)
    }
    const died = (err: unknown): TaskOutcome =>
      // Closing the pool rejects its tasks: those shares end as if dropped.
      this.#closed
        ? { kind: 'dropped' }
        : {
            kind: 'failed',
            error: toWire(
              // The thread died (out of memory, process.exit in a processor): another host may do better.
              new ShoalError('E_PROCESSOR_THREW', `worker thread failed running share ${spec.shareId}: ${toWire(err).message}`, {
                cause: err,
                retryable: true,
              }),
            ),
          }
    run
      .then(
        (outcome) => handle.settle(outcome),
        (err: unknown) => handle.settle(died(err)),
      )
      .catch((err: unknown) => this.#reportError(err))
    return handle
  }

  /**
   * How long before it is due each share takes a checkpoint (ms, at most checkpointMs / 2 in the
   * worker): the host sets it from the round trips it measures, so checkpoints are durable on time.
   */
  setCheckpointLead(ms: number): void {
    this.#leadMs = Math.max(0, Math.min(2 ** 31 - 1, Math.round(Number.isFinite(ms) ? ms : 0)))
    for (const h of this.#shares) h.setCheckpointLead(this.#leadMs)
  }

  /** Shares started here that have not ended yet (including queued ones). */
  running(): RunningShare[] {
    return [...this.#shares.values()]
  }

  /** Busy slots / slots, 0..1. */
  utilisation(): number {
    return Math.min(this.#shares.size, this.#opts.slots) / this.#opts.slots
  }

  /**
   * Destroys the pool. Running shares end silently (as if dropped; pending pauses reject): pause
   * them first to hand them over.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const h of this.#shares.values()) h.silence()
    await this.#pool.destroy()
  }

  #reportError(err: unknown): void {
    try {
      if (this.#opts.onError) this.#opts.onError(err)
      else process.emitWarning(err instanceof Error ? err : new Error(String(err)), 'ShoalShareRunner')
    } catch {
      // An error reporter that throws has nowhere left to report to.
    }
  }
}

interface RunnerHooks {
  closed(): boolean
  /** The share's task has ended: free its slot. */
  forget(handle: ShareHandle): void
  reportError(err: unknown): void
}

class ShareHandle implements RunningShare {
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

/**
 * Merges share results in the given (range) order with the processor's `merge`. Throws
 * E_PROCESSOR_THREW (original message included) when `merge` throws, E_INTERNAL on an empty list.
 */
export function mergeResults(processor: AnyProcessor, results: readonly unknown[], input: unknown): unknown {
  if (results.length === 0) {
    throw new ShoalError('E_INTERNAL', `mergeResults: no results to merge for processor '${processor.name}'`)
  }
  let acc = results[0]
  for (let i = 1; i < results.length; i++) {
    try {
      acc = processor.merge(acc, results[i], input)
    } catch (err) {
      throw new ShoalError(
        'E_PROCESSOR_THREW',
        `processor '${processor.name}' threw in merge (result ${i} of ${results.length}): ${toWire(err, 'E_PROCESSOR_THREW').message}`,
        { cause: err, details: { processor: processor.name, index: i } },
      )
    }
  }
  return acc
}
