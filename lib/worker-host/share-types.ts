/**
 * The shapes of the host's share runtime: a share to run, its checkpoints, progress and ends, and
 * the handle the host daemon holds while it runs (share-runner.ts starts it, share-handle.ts is
 * the handle). Types, and the clock checkpoints are stamped with.
 */

import type { WireError } from '../errors.ts'

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
  /**
   * The host's checkpoint grid (checkpoint-grid.ts): every share's checkpoints are due at
   * `checkpointAnchor + k × checkpointMs`, ms on `checkpointClock()`, so a host's shares report
   * together and a fleet's hosts, anchored at random phases, spread their reports over the period.
   * Absent: each share's grid starts at its start.
   */
  checkpointAnchor?: number | undefined
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
