/**
 * `summarize` (support/bench.ts) for the scale benchmark's sample sets, which reach hundreds of
 * thousands of report answer times per window: that one spreads its samples into Math.max's
 * arguments, which overflows the stack there. Same figures, same nearest-rank percentiles, same
 * rounding, computed over a sorted typed array with loops.
 *
 * Must never drop or clip a sample.
 */

import { round } from '../support/bench.ts'

export function summarizeMany(samples: ArrayLike<number>): { n: number; p50: number; p99: number; max: number; mean: number; min: number } {
  const n = samples.length
  if (n === 0) return { n, p50: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN, min: Number.NaN }
  const sorted = Float64Array.from(samples).sort()
  const rank = (p: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]!
  let sum = 0
  for (let i = 0; i < n; i++) sum += sorted[i]!
  return { n, p50: round(rank(50)), p99: round(rank(99)), max: round(sorted[n - 1]!), mean: round(sum / n), min: round(sorted[0]!) }
}
