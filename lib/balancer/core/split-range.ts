/**
 * Splits a job's range into share ranges. Pure.
 *
 * Part of the store's format: recovery makes the shares of a job admitted in one write again with
 * `splitRange(from, to, initialShares)` (lib/balancer/recovery.ts), so its output for a given
 * input must never change — a release that cut differently would rebuild shares overlapping or
 * missing the ones with records. spec/balancer/split-range.spec.ts pins it.
 *
 * Must never import NATS, timers or the clock.
 */

/**
 * Cuts `[from, to)` into `n` contiguous ranges of near-equal size (the first ones one unit larger
 * when it does not divide), never more ranges than `floor(units / minUnits)` and never fewer than 1.
 */
export function splitRange(from: number, to: number, n: number, minUnits = 1): Array<[number, number]> {
  const units = to - from
  if (!(units > 0)) return []
  const count = Math.max(1, Math.min(Math.floor(n), Math.floor(units / Math.max(1, minUnits))))
  const base = Math.floor(units / count)
  const extra = units - base * count
  const out: Array<[number, number]> = []
  let at = from
  for (let i = 0; i < count; i++) {
    const size = base + (i < extra ? 1 : 0)
    out.push([at, at + size])
    at += size
  }
  return out
}
