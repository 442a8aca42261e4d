/**
 * What the scale benchmark (bench/scale.ts) and its synthetic-host worker processes
 * (synthetic-worker.ts) say to each other over the Node IPC channel: the worker's set-up, the
 * parent's orders (which hosts beat, when a measured window starts and ends, stop) and the
 * figures a worker counted in a window. Also the job input that tells a synthetic host how its
 * shares behave, with its schema: the balancer passes it through untouched, as it does any input.
 *
 * Types and schemas only: must never do I/O.
 */

import { z } from 'zod'

/** Processor name the synthetic hosts register (and the benchmark's jobs name). */
export const SYNTHETIC_PROCESSOR = 'synthetic'

/**
 * How every share of a job behaves on a synthetic host: `runMs` 0 finishes it at once (done report
 * right after the assignment's answer); otherwise its position advances evenly over `runMs` and it
 * checkpoints every `shares.checkpointMs` meanwhile. `failPermille` of the shares (chosen by a hash
 * of the share id) fail their first attempt with a retryable error, so the balancer retries them
 * elsewhere. A share's result is the number of units of its range; results merge by summing, so a
 * job's result is its range's length exactly when every unit was counted once.
 */
export const syntheticInputSchema = z.object({
  runMs: z.number().int().nonnegative(),
  failPermille: z.number().int().min(0).max(1000).default(0),
})
export type SyntheticInput = z.input<typeof syntheticInputSchema>

/** A worker's set-up, passed in the environment variable WORKER_ENV as JSON. */
export interface WorkerSetup {
  index: number
  /** Workers in the run (for spreading the heartbeat phases over all of them). */
  workers: number
  natsUrl: string
  cluster: string
  hostIds: string[]
  slots: number
  cores: number
  memoryBytes: number
  heartbeatMs: number
  checkpointMs: number
  /** How long a checkpoint waits for company in a report batch (as lib/worker-host/host.ts). */
  reportLingerMs: number
  maxMessageBytes: number
  /** A host's report waits this long for the balancer's answer (lib/worker-host/host.ts: 3 s). */
  reportTimeoutMs: number
}
export const WORKER_ENV = 'SHOAL_SCALE_WORKER'

/** Parent → worker. Every order is answered by one `WorkerReply` with the same `id`. */
export type WorkerOrder =
  | { id: number; t: 'active'; count: number }
  | { id: number; t: 'window-start' }
  | { id: number; t: 'window-end' }
  | { id: number; t: 'census' }
  | { id: number; t: 'stop' }

/** Report kinds a synthetic host sends. */
export type ReportKind = 'checkpoint' | 'done' | 'failed'

/** What one worker counted between `window-start` and `window-end`. */
export interface WindowCounts {
  /** Wall time the worker measured the window over, ms. */
  ms: number
  heartbeats: number
  /** Longest time between two heartbeats of one host, of those the window saw (the worker's own lateness). */
  maxHeartbeatGapMs: number
  /** Reports sent (each try), by kind. */
  sent: Record<ReportKind, number>
  acked: Record<ReportKind, number>
  nacked: Record<ReportKind, number>
  /** No answer within reportTimeoutMs. */
  timeouts: Record<ReportKind, number>
  /** No responder, an error reply, an answer that did not validate. */
  errors: Record<ReportKind, number>
  /** Periodic checkpoints skipped because the share's previous one was still unanswered. */
  checkpointsSkipped: number
  /** Send → answer of every answered report, ms, by kind. */
  ackMs: Record<ReportKind, Float64Array>
  /** Commands received, by type. */
  commands: Record<string, number>
  /** This worker process's own CPU time, ms. */
  cpuMs: number
}

/** The worker's shares as they are now. */
export interface Census {
  running: number
  /** Finished, their final report not answered yet. */
  finishing: number
  activeHosts: number
}

export type WorkerReply =
  | { id: number; t: 'ok' }
  | { id: number; t: 'window'; counts: WindowCounts }
  | { id: number; t: 'census'; census: Census }
  | { id: number; t: 'error'; message: string }

/** Sent once, unasked, when the worker is connected and its hosts are listening. */
export interface WorkerReady {
  t: 'ready'
}

export function emptyByKind<T>(make: () => T): Record<ReportKind, T> {
  return { checkpoint: make(), done: make(), failed: make() }
}
