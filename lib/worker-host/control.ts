/**
 * The control block shared between a share's main-thread handle (share-runner.ts) and the worker
 * thread running it (share-worker.ts): one small SharedArrayBuffer per running share.
 *
 * The main thread writes commands (pause, drop, split) that the worker reads with Atomics between
 * two steps; the worker writes its progress (position, units done, rate, busy fraction) after every
 * step so the main thread can report progress without a message round trip.
 *
 * It also declares the task, message and outcome types that cross the thread boundary.
 *
 * The block must never hold anything but integers, and no index is ever written by both sides: the
 * command words belong to the main thread, the progress words to the worker.
 */
import type { MessagePort } from 'node:worker_threads'
import type { WireError } from '../errors.ts'

/** Int32 command words at the start of the block (bytes 0..15). */
const CMD_WORDS = 4
/** Int64 progress words after the command words (bytes 16..55). */
const PROGRESS_WORDS = 5

/** Bytes of the control block: 4 int32 command words, then 5 int64 progress words. */
export const CONTROL_BYTES = CMD_WORDS * 4 + PROGRESS_WORDS * 8

/** Index (Int32Array) of the terminal command: one of `CMD_*`. Written by the main thread only. */
export const I_CMD = 0
/** Index (Int32Array) of the split request counter; bumped by the main thread for each request. */
export const I_SPLIT_SEQ = 1
/** Index (Int32Array) of the requested split fraction, in parts per million (1..999999). */
export const I_SPLIT_PPM = 2
/**
 * Index (Int32Array) of the checkpoint lead in ms: the worker takes each checkpoint this long
 * before it is due, so that it is durable by then (the host sets it from its measured round trips).
 */
export const I_CKPT_LEAD_MS = 3

/** Index (BigInt64Array) of the next unit to process. Written by the worker only. */
export const I_POSITION = 0
/** Index (BigInt64Array) of the units processed by the share so far (all epochs). */
export const I_UNITS_DONE = 1
/** Index (BigInt64Array) of the measured rate in milli-units per second. */
export const I_RATE_MILLI = 2
/** Index (BigInt64Array) of the end of the range the worker is running (shrinks on split). */
export const I_TO = 3
/**
 * Index (BigInt64Array) of the worker thread's busy fraction over the last rate window, in
 * thousandths (0..1000); `BUSY_UNKNOWN` until the first window has been measured.
 */
export const I_BUSY_MILLI = 4

/** `I_BUSY_MILLI` before the worker has measured anything (a queued or just-started share). */
export const BUSY_UNKNOWN = -1n

/** No terminal command: keep running. */
export const CMD_RUN = 0
/** Stop at the next safe point and return the state as a checkpoint. */
export const CMD_PAUSE = 1
/** Stop at the next safe point and return nothing. */
export const CMD_DROP = 2

/** The two typed views of one control block. */
export interface ControlViews {
  /** Command words (main thread writes, worker reads). */
  cmd: Int32Array
  /** Progress words (worker writes, main thread reads). */
  progress: BigInt64Array
}

/** Creates the views over a control block (the same layout on both sides). */
export function controlViews(sab: SharedArrayBuffer): ControlViews {
  return { cmd: new Int32Array(sab, 0, CMD_WORDS), progress: new BigInt64Array(sab, CMD_WORDS * 4, PROGRESS_WORDS) }
}

/** Allocates a control block whose progress words start at the share's current position. */
export function newControlBlock(position: number, to: number, unitsDone: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(CONTROL_BYTES)
  const { progress } = controlViews(sab)
  Atomics.store(progress, I_POSITION, BigInt(position))
  Atomics.store(progress, I_UNITS_DONE, BigInt(unitsDone))
  Atomics.store(progress, I_TO, BigInt(to))
  Atomics.store(progress, I_BUSY_MILLI, BUSY_UNKNOWN)
  return sab
}

/** What the main thread hands the worker for one share (structured-cloned by piscina). */
export interface WorkerTask {
  shareId: string
  epoch: number
  processorName: string
  /** A URL from the host's processor registry; the worker imports nothing else. */
  processorUrl: string
  input: unknown
  from: number
  to: number
  position: number
  /** undefined → the worker calls `init(input, [position, to])`. */
  state: unknown
  unitsDone: number
  checkpointMs: number
  /**
   * The host's checkpoint grid: checkpoints are due at `checkpointAnchor + k × checkpointMs` (ms
   * on `checkpointClock()`; checkpoint-grid.ts). Absent: a grid from the share's start.
   */
  checkpointAnchor?: number | undefined
  stepTargetMs: number
  maxCheckpointBytes: number
  /** The control block (see the indices above). */
  control: SharedArrayBuffer
  /** Where the worker posts checkpoints and split answers; must be in the task's transferList. */
  port: MessagePort
}

/** A checkpoint as the worker posts it (the main thread adds shareId and epoch). */
export interface CheckpointBody {
  position: number
  to: number
  state: unknown
  unitsDone: number
  stateBytes: number
}

/** Messages the worker posts on the task's port while the share runs. */
export type WorkerMessage =
  /**
   * A periodic checkpoint; `dueAt` is when it was due to be durable and `takenAt` when it was
   * taken (ms since the epoch, from `performance.timeOrigin + performance.now()`, a clock the main
   * thread reads alike).
   */
  | ({ t: 'checkpoint'; dueAt: number; takenAt: number } & CheckpointBody)
  | { t: 'split'; seq: number; keptTo: number; tail: [number, number] }
  | { t: 'split'; seq: number; keptTo: null }

/** How a task ended: its return value. */
export type TaskOutcome =
  | { kind: 'done'; result: unknown; unitsDone: number; to: number; elapsedMs: number }
  | ({ kind: 'paused' } & CheckpointBody)
  | { kind: 'dropped' }
  | { kind: 'failed'; error: WireError }
