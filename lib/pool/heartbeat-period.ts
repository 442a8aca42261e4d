/**
 * How often hosts beat as the pool grows (issue 12, point 5), the way Nomad stretches its
 * heartbeat TTLs with the number of nodes: the leader keeps the pool's heartbeat rate under
 * `pool.maxHeartbeatsPerSec` by doubling the period, and announces it in its presence. Each host
 * beats at the period it was told and says so in its heartbeats (`periodMs`); the balancer
 * measures each host's silence against that host's own period (membership.ts), so a host that
 * has not heard of a change yet, or a leader that has just taken over, never mistakes a slower
 * beat for a death. At the default pool sizes nothing changes: 2,000 beats/s at 250 ms is 500 hosts.
 *
 * Why the rate and not the bytes: a heartbeat's cost at the balancer is mostly per message
 * (decode, validate, membership), 21 µs for an idle host here; carrying only what changed would
 * shrink the bytes, not the messages.
 *
 * Must never import NATS, timers or the clock.
 */

/** The longest period, as a multiple of pool.heartbeatMs: detection time grows with it. */
export const MAX_PERIOD_FACTOR = 64
/** A longer period goes back down only once the shorter one would stay this far under the cap. */
const SHRINK_HEADROOM = 0.8

/**
 * The period (ms) for a pool of `hosts` that beats every `currentMs` now: `baseMs` times a power
 * of two, the smallest with `hosts` beats per period within `maxPerSec`, with headroom before it
 * shrinks again, so a pool near the boundary does not flap.
 */
export function heartbeatPeriod(hosts: number, currentMs: number, baseMs: number, maxPerSec: number): number {
  const rate = (periodMs: number) => (hosts * 1000) / periodMs
  let p = Math.min(Math.max(baseMs, currentMs), baseMs * MAX_PERIOD_FACTOR)
  while (rate(p) > maxPerSec && p < baseMs * MAX_PERIOD_FACTOR) p *= 2
  while (p > baseMs && rate(p / 2) <= maxPerSec * SHRINK_HEADROOM) p /= 2
  return Math.round(p)
}

/**
 * What a host's own period means for its silence: the factor its suspect and dead times are
 * multiplied by (1 at pool.heartbeatMs), clamped so that no heartbeat can ask for more than
 * MAX_PERIOD_FACTOR.
 */
export function silenceFactor(periodMs: number | undefined, baseMs: number): number {
  if (periodMs === undefined || !(baseMs > 0)) return 1
  return Math.min(MAX_PERIOD_FACTOR, Math.max(1, periodMs / baseMs))
}
