/**
 * What imbalance a migration threshold tolerates, after VMware DRS's published rules.
 *
 * DRS gives a balancing recommendation the priority `6 − ceil(σ / (0.1 / √H))` for imbalance σ (the
 * standard deviation of normalised host loads) over H hosts, and threshold T applies priorities
 * ≤ T; so balancing starts once σ > (5 − T) · 0.1 / √H. Since vSphere 6.5 DRS also acts when the
 * most and least loaded hosts differ by more than 30/20/10/5 % at T = 2/3/4/5. T = 1 applies only
 * mandatory moves. A move must also reach a minimum goodness (σ reduction), lower the more
 * aggressive T is (`minGoodness`).
 *
 * Must never import NATS, timers or the clock.
 */

export type Threshold = 1 | 2 | 3 | 4 | 5

/** One DRS priority step of imbalance for `hostCount` hosts: 0.1 / √H. */
export function imbalanceStep(hostCount: number): number {
  return 0.1 / Math.sqrt(Math.max(1, hostCount))
}

/** σ above which balancing moves start: (5 − T) · 0.1 / √H; Infinity at T = 1. */
export function toleratedImbalance(threshold: Threshold, hostCount: number): number {
  if (threshold <= 1) return Number.POSITIVE_INFINITY
  return (5 - threshold) * imbalanceStep(hostCount)
}

/** DRS ≥ 6.5: most − least loaded normalised load above which balancing starts; Infinity at T = 1. */
export function toleratedLoadGap(threshold: Threshold): number {
  return [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, 0.3, 0.2, 0.1, 0.05][threshold] ?? Number.POSITIVE_INFINITY
}

/** DRS priority (1 = most urgent … 5 = slight) of the current imbalance. */
export function drsPriority(sigma: number, hostCount: number): number {
  return Math.max(1, 6 - Math.ceil(sigma / imbalanceStep(hostCount)))
}

/**
 * Least σ reduction a balancing move must bring at imbalance `sigma` over `hostCount` hosts;
 * Infinity at T = 1 (no balancing move is ever good enough).
 *
 * Moving Δ of normalised load from a host to one whose load is D lower cuts σ by about
 * Δ(D − Δ) / (H·σ): a single move matters less the more hosts there are. A floor fixed in σ would
 * therefore forbid every move in a large pool; instead the floor asks the move itself to be
 * substantial, Δ(D − Δ) ≥ 1, ½, ¼, ⅒ hundredths at T = 2..5 (one core of a 16-core host carried
 * across a gap of 22, 14, 10 or 8 % of load), whatever the pool size:
 * minGoodness = f(T) / 100 / (H·σ).
 */
export function minGoodness(threshold: Threshold, hostCount: number, sigma: number): number {
  const fraction = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, 1, 0.5, 0.25, 0.1][threshold] ?? Number.POSITIVE_INFINITY
  return (fraction / 100) / (Math.max(1, hostCount) * Math.max(sigma, 1e-9))
}
