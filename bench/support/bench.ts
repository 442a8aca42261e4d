/**
 * What every benchmark shares: the module shape the dispatcher (`bench/run.ts`) loads, the
 * statistics the figures are made of, the machine description printed with them, and the error
 * that marks a run as wrong (a job result that is not exact means work was lost or counted twice).
 *
 * Must never tune, filter or round a measurement to flatten it: statistics are computed over every
 * sample taken, and a failed check is an error, never a figure quietly left out.
 */

import { cpus, loadavg, totalmem } from 'node:os'

/** What a benchmark is given by the dispatcher. */
export interface BenchContext {
  /** Short run (seconds) that only shows the machinery works; figures are not meaningful. */
  smoke: boolean
  /** The dispatcher will print the figures as JSON (benchmarks need not care). */
  json: boolean
  /** Human progress, one line per call (the dispatcher sends it to stderr). */
  log: (line: string) => void
}

/** Figures a benchmark returns: plain JSON values, keys with their unit in the name. */
export type Figures = Record<string, unknown>

/** A module `bench/<name>.ts`. */
export interface BenchModule {
  /** One line: what the benchmark measures. */
  description: string
  run(ctx: BenchContext): Promise<Figures>
}

/** A run that produced a wrong answer or could not measure what it must: the dispatcher exits 1. */
export class BenchError extends Error {
  override name = 'BenchError'
}

/** p-th percentile (0..100) by nearest rank over all samples; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

export function median(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function mean(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN
  return samples.reduce((a, b) => a + b, 0) / samples.length
}

/** count, p50, p99, max, mean (and min) of a sample set, rounded to 3 decimals for printing. */
export function summarize(samples: readonly number[]): { n: number; p50: number; p99: number; max: number; mean: number; min: number } {
  return {
    n: samples.length,
    p50: round(percentile(samples, 50)),
    p99: round(percentile(samples, 99)),
    max: round(samples.length ? Math.max(...samples) : Number.NaN),
    mean: round(mean(samples)),
    min: round(samples.length ? Math.min(...samples) : Number.NaN),
  }
}

/** Rounds to `digits` decimals (display only; never used before a statistic is computed). */
export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** What the figures were measured on. */
export function machine(): Record<string, unknown> {
  const c = cpus()
  return {
    cores: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    node: process.version,
    loadAverage1m: round(loadavg()[0] ?? Number.NaN, 2),
    note: `${c.length} cores shared by every process of the run (nats-server, balancer, hosts, this process) and by whatever else runs on the machine`,
  }
}

/** Resolves after `ms` (pacing only: waiting for a state is done by polling that state). */
/**
 * Node options for the shoal processes a benchmark starts: with SHOAL_BENCH_CPU_PROF=DIR set, each
 * writes a V8 CPU profile into DIR when it exits (stopped, not killed), to see where a figure's
 * time goes; SHOAL_BENCH_NODE_ARGS adds options of its own (space-separated, e.g.
 * `--max-semi-space-size=64`), to try a V8 setting against the same benchmark. Empty otherwise:
 * a benchmark's figures are of processes as `shoal` starts them.
 */
export function benchNodeArgs(): string[] {
  const dir = process.env.SHOAL_BENCH_CPU_PROF
  const extra = (process.env.SHOAL_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)
  return [...(dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : []), ...extra]
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/**
 * Polls `cond` every `everyMs` until it returns a value other than undefined/false, and returns it;
 * throws a BenchError naming `what` after `timeoutMs`.
 */
export async function until<T>(cond: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, what: string, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await cond()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new BenchError(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}
