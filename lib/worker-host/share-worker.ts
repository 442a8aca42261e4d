/**
 * The piscina worker entry that runs one share: loads the processor, then steps through the range
 * in slices sized to take about `stepTargetMs`, and between two slices (a safe point) obeys the
 * control block — pause and hand over, drop, or split off the tail — and posts a checkpoint every
 * `checkpointMs`. The task's return value is how the share ended (see TaskOutcome).
 *
 * Besides position and rate it publishes the share's CPU demand as a busy fraction: the share of
 * wall time this worker thread was active rather than idle in its event loop, from
 * `performance.eventLoopUtilization()` deltas over the rate window. That is the measure the
 * balancer needs, because it counts time the thread was runnable but not on a CPU: a CPU-bound
 * share reads ≈ 1 even when it only gets half a core, so contention shows up as load above 1. It
 * works although a synchronous processor never yields between steps: ELU's active time is wall
 * time minus time spent waiting in the loop's poll, so a loop that never polls reads 1, and an
 * async step that awaits a timer or I/O polls for exactly that wait and reads well below 1. "Time
 * inside step ÷ wall time" would get async steps wrong (the await counts as inside the step).
 * Its blind spot: a step that blocks the thread synchronously (readFileSync, Atomics.wait) reads
 * as busy without using a CPU. One worker thread runs one share at a time
 * (concurrentTasksPerWorker 1), so the thread's ELU is the share's.
 *
 * Must never import a module URL other than the one the host passed from its registry, never
 * throw out of the task (every failure becomes a `failed` outcome carrying a WireError), and never
 * wait on the event loop between steps of a synchronous processor (pauses are read from shared
 * memory, so a busy share still answers within one step).
 */
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { pack } from 'msgpackr'
import { ShoalError, toWire } from '../errors.ts'
import type { AnyProcessor } from '../processors/define.ts'
import { processorsOfModule } from '../processors/registry.ts'
import {
  CMD_DROP,
  CMD_PAUSE,
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
  type CheckpointBody,
  type TaskOutcome,
  type WorkerMessage,
  type WorkerTask,
} from './control.ts'
import { nextCheckpointDue } from './checkpoint-grid.ts'

/** Loaded modules by URL: a worker thread runs many shares of the same few processors. */
const modules = new Map<string, Promise<AnyProcessor[]>>()

/** How often the reported rate and busy fraction are recomputed: long enough to smooth over step jitter. */
const RATE_WINDOW_MS = 250

/** Imports a processor module by its registry URL. */
async function importModule(url: string): Promise<Record<string, unknown>> {
  try {
    return (await import(url)) as Record<string, unknown>
  } catch (err) {
    // Under tsx on Node 20, worker threads get tsx's CommonJS hooks but not its ESM hooks
    // (measured: `import()` of a .ts file fails with ERR_UNKNOWN_FILE_EXTENSION, `require` works).
    // Compiled hosts import .js and never take this path.
    if ((err as { code?: unknown }).code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?tsx?$/.test(url)) {
      try {
        return createRequire(import.meta.url)(fileURLToPath(url)) as Record<string, unknown>
      } catch {
        // Not under tsx after all: the import error says what is wrong.
      }
    }
    throw err
  }
}

async function loadProcessor(url: string, name: string): Promise<AnyProcessor> {
  let loading = modules.get(url)
  if (!loading) {
    loading = importModule(url).then(
      (mod: Record<string, unknown>) => processorsOfModule(mod, url),
      (err: unknown) => {
        throw new ShoalError('E_PROCESSOR_LOAD', `${url}: cannot import: ${toWire(err).message}`)
      },
    )
    modules.set(url, loading)
    // A failed import is not cached, so a fixed file is picked up by the next share.
    loading.catch(() => modules.delete(url))
  }
  const found = (await loading).find((p) => p.name === name)
  if (!found) throw new ShoalError('E_PROCESSOR_LOAD', `${url}: exports no processor named '${name}'`)
  return found
}

/** Wraps whatever a processor threw so the message says where, and keeps the original text. */
function processorThrew(
  processor: AnyProcessor,
  shareId: string,
  phase: string,
  err: unknown,
  range?: [number, number],
): ShoalError {
  const original = toWire(err, 'E_PROCESSOR_THREW')
  const where = range ? `${phase} [${range[0]}, ${range[1]})` : phase
  const details: Record<string, unknown> = { shareId, processor: processor.name, phase }
  if (range) details.range = range
  const stack = original.details?.stack
  if (stack !== undefined) details.stack = stack
  // A processor says an error may pass on a retry (elsewhere, later) by marking it `retryable: true`.
  const retryable = typeof err === 'object' && err !== null && (err as { retryable?: unknown }).retryable === true
  return new ShoalError(
    'E_PROCESSOR_THREW',
    `processor '${processor.name}' threw in ${where} of share ${shareId}: ${original.message}`,
    { details, retryable },
  )
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function'
}

/** Runs one share until it is done, paused, dropped or failed. Never rejects. */
export default async function runShare(task: WorkerTask): Promise<TaskOutcome> {
  try {
    return await run(task)
  } catch (err) {
    return { kind: 'failed', error: toWire(err, 'E_INTERNAL') }
  }
}

async function run(task: WorkerTask): Promise<TaskOutcome> {
  const t0 = performance.now()
  const { shareId, input, port, checkpointMs, stepTargetMs, maxCheckpointBytes } = task
  const { cmd, progress } = controlViews(task.control)

  const processor = await loadProcessor(task.processorUrl, task.processorName)
  // Called through a plain function type: TypeScript cannot use an assertion signature here.
  const validate: ((input: unknown) => void) | undefined = processor.validateInput?.bind(processor)
  if (validate) {
    try {
      validate(input)
    } catch (err) {
      throw new ShoalError('E_BAD_JOB', `input rejected by processor '${processor.name}': ${toWire(err).message}`, {
        details: { shareId },
      })
    }
  }

  let pos = task.position
  let to = task.to
  let unitsDone = task.unitsDone
  let state = task.state
  if (state === undefined) {
    try {
      state = processor.init(input, [pos, to])
    } catch (err) {
      throw processorThrew(processor, shareId, 'init', err)
    }
  }

  /** Measures the state's msgpack size and enforces the limit; the body of a checkpoint. */
  const snapshot = (): CheckpointBody => {
    let stateBytes: number
    try {
      stateBytes = pack(state).length
    } catch (err) {
      throw new ShoalError(
        'E_PROCESSOR_THREW',
        `processor '${processor.name}': state of share ${shareId} cannot be encoded with msgpack: ${toWire(err).message}`,
        { details: { shareId } },
      )
    }
    if (stateBytes > maxCheckpointBytes) {
      throw new ShoalError(
        'E_CHECKPOINT_TOO_LARGE',
        `share ${shareId}: checkpoint state is ${stateBytes} bytes, over the limit of ${maxCheckpointBytes} bytes (shares.maxCheckpointBytes)`,
        { details: { shareId, stateBytes, maxCheckpointBytes } },
      )
    }
    return { position: pos, to, state, unitsDone, stateBytes }
  }
  const post = (msg: WorkerMessage): void => {
    try {
      port.postMessage(msg)
    } catch (err) {
      // Structured clone refused the state (a function, a class with private fields, ...).
      throw new ShoalError('E_PROCESSOR_THREW', `share ${shareId}: cannot send ${msg.t}: ${toWire(err).message}`, {
        details: { shareId },
      })
    }
  }

  let stepUnits = processor.initialStepUnits ?? 1
  let seenSplitSeq = 0
  // Checkpoints are due on a fixed grid (every checkpointMs), not checkpointMs after the last one
  // was taken: taking one late then does not push every later one back, so on a contended host
  // lateness does not add up. The grid is the host's (checkpoint-grid.ts: its shares report
  // together, and hosts spread over the period), or else starts at this share's start. Each is
  // taken the host's lead before it is due, so it is durable by then.
  const started = performance.now()
  const anchor = task.checkpointAnchor === undefined ? started : task.checkpointAnchor - performance.timeOrigin
  let checkpointDue = nextCheckpointDue(started, anchor, checkpointMs)
  let windowStart = started
  let windowElu = performance.eventLoopUtilization()
  let windowUnits = 0
  let runUnits = 0
  let runMs = 0

  for (;;) {
    // Safe point: no step is in progress and `state` reflects every unit before `pos`.
    const command = Atomics.load(cmd, I_CMD)
    if (command === CMD_DROP) return { kind: 'dropped' }
    if (command === CMD_PAUSE) return { kind: 'paused', ...snapshot() }

    const splitSeq = Atomics.load(cmd, I_SPLIT_SEQ)
    if (splitSeq !== seenSplitSeq) {
      seenSplitSeq = splitSeq
      const fraction = Atomics.load(cmd, I_SPLIT_PPM) / 1e6
      const remaining = to - pos
      if (remaining < 2) {
        post({ t: 'split', seq: splitSeq, keptTo: null })
      } else {
        // Keep at least one unit and give away at least one, whatever the fraction.
        const mid = Math.min(to - 1, Math.max(pos + 1, pos + Math.ceil(remaining * (1 - fraction))))
        const tail: [number, number] = [mid, to]
        to = mid
        Atomics.store(progress, I_TO, BigInt(to))
        post({ t: 'split', seq: splitSeq, keptTo: mid, tail })
      }
    }

    if (pos >= to) break

    const n = Math.min(stepUnits, to - pos)
    const s0 = performance.now()
    let next: unknown
    try {
      next = processor.step(state, pos, pos + n, input)
      if (isThenable(next)) next = await next
    } catch (err) {
      throw processorThrew(processor, shareId, 'step', err, [pos, pos + n])
    }
    if (next === undefined) {
      throw new ShoalError(
        'E_PROCESSOR_THREW',
        `processor '${processor.name}' step returned undefined in share ${shareId}: step must return the state`,
        { details: { shareId } },
      )
    }
    state = next
    const now = performance.now()
    const dt = now - s0
    pos += n
    unitsDone += n
    runUnits += n
    runMs += dt
    windowUnits += n

    // Size the next step from this one's rate, growing at most 4× so one lucky fast step does
    // not produce a step that blows the pause latency.
    stepUnits = dt > 0 ? Math.max(1, Math.min(4 * n, Math.floor((n / dt) * stepTargetMs))) : 4 * n

    Atomics.store(progress, I_POSITION, BigInt(pos))
    Atomics.store(progress, I_UNITS_DONE, BigInt(unitsDone))
    if (now - windowStart >= RATE_WINDOW_MS || runMs === dt) {
      const ms = now - windowStart
      const rate = ms > 0 ? (windowUnits / ms) * 1000 : runMs > 0 ? (runUnits / runMs) * 1000 : 0
      Atomics.store(progress, I_RATE_MILLI, BigInt(Math.round(rate * 1000)))
      // ELU reads its own clock, a moment after `now`: the two windows differ by microseconds.
      const elu = performance.eventLoopUtilization()
      const busy = performance.eventLoopUtilization(elu, windowElu).utilization
      if (Number.isFinite(busy)) Atomics.store(progress, I_BUSY_MILLI, BigInt(Math.round(Math.min(1, Math.max(0, busy)) * 1000)))
      windowElu = elu
      windowStart = now
      windowUnits = 0
    }

    const lead = Math.max(0, Math.min(checkpointMs / 2, Atomics.load(cmd, I_CKPT_LEAD_MS)))
    if (pos < to && now >= checkpointDue - lead) {
      post({ t: 'checkpoint', dueAt: performance.timeOrigin + checkpointDue, takenAt: performance.timeOrigin + now, ...snapshot() })
      checkpointDue += checkpointMs
      // More than a whole interval behind (the thread was starved): due again at the first grid
      // point more than the lead from now (within one interval of that).
      if (checkpointDue - lead <= now) checkpointDue = nextCheckpointDue(now + lead, anchor, checkpointMs)
    }
  }

  let result: unknown
  try {
    result = processor.result(state, input)
  } catch (err) {
    throw processorThrew(processor, shareId, 'result', err)
  }
  try {
    pack(result)
  } catch (err) {
    throw new ShoalError(
      'E_PROCESSOR_THREW',
      `processor '${processor.name}': result of share ${shareId} cannot be encoded with msgpack: ${toWire(err).message}`,
      { details: { shareId } },
    )
  }
  return { kind: 'done', result, unitsDone, to, elapsedMs: performance.now() - t0 }
}
