/**
 * The main-thread side of the host's share runtime: a piscina pool with one worker thread per
 * slot, and a handle per running share (share-handle.ts) through which the host daemon pauses
 * (hands over), splits or drops it at the next safe point, and reads its progress. The shapes
 * are in share-types.ts (re-exported here).
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
import { MessageChannel } from 'node:worker_threads'
import { Piscina } from 'piscina'
import { ShoalError, toWire } from '../errors.ts'
import type { AnyProcessor } from '../processors/define.ts'
import { newControlBlock, type TaskOutcome, type WorkerTask } from './control.ts'
import { ShareHandle, type RunnerHooks } from './share-handle.ts'
import type { ShareHandlers, ShareRunnerOptions, ShareSpec, RunningShare } from './share-types.ts'

export * from './share-types.ts'

// Under tsx (tests) this file is `.ts` and workers inherit the tsx loader; compiled, it is `.js`.
const WORKER_FILE = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './share-worker.ts' : './share-worker.js', import.meta.url),
)

function checkOptions(o: ShareRunnerOptions): void {
  const bad = (key: string, want: string, got: unknown): never => {
    throw new ShoalError('E_CONFIG', `ShareRunner ${key} must be ${want} (got ${JSON.stringify(got)})`, {
      details: { key, value: got },
    })
  }
  if (!Number.isInteger(o.slots) || o.slots < 1) bad('slots', 'an integer >= 1', o.slots)
  if (!(typeof o.checkpointMs === 'number' && o.checkpointMs > 0)) bad('checkpointMs', 'a number > 0', o.checkpointMs)
  if (!(typeof o.stepTargetMs === 'number' && o.stepTargetMs > 0)) bad('stepTargetMs', 'a number > 0', o.stepTargetMs)
  if (o.checkpointAnchor !== undefined && !Number.isFinite(o.checkpointAnchor)) bad('checkpointAnchor', 'a finite number (ms on checkpointClock())', o.checkpointAnchor)
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
      checkpointAnchor: this.#opts.checkpointAnchor,
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
