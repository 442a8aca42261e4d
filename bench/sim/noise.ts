/**
 * Stray background load for the simulator's hosts (issue 9, point 2): what agents, log shippers and
 * the kernel do to a real host, drawn once per heartbeat period. At level λ (cores on average):
 *
 * - a jitter of λ·JITTER_SHARE × an exponential draw each period (mostly small, now and then
 *   several times its mean, as a sampler reads a real host), and
 * - bursts: with probability BURST_START_P per period a burst of BURST_CORES_PER_LEVEL·λ cores
 *   (at least BURST_MIN_CORES, at most one core) lasting 1..BURST_MAX_PERIODS periods — a flush, a
 *   cron job, a compaction — scaled so that jitter and bursts together average λ.
 *
 * Level 0 is a silent host. Must never read Math.random: the generator is the caller's seeded one.
 */

/** Part of the level the jitter carries (the bursts carry the rest). */
export const JITTER_SHARE = 0.6
/** Chance per period that a burst starts (one every ≈ 8 s at 250 ms periods). */
export const BURST_START_P = 0.03
/** Longest burst, in periods (so up to 1.5 s at 250 ms). */
export const BURST_MAX_PERIODS = 6
const BURST_MIN_CORES = 0.1

/** The seed of host `index`'s noise in a run seeded `seed` (the simulator and the ideal agree on it). */
export function noiseSeed(seed: number, index: number): number {
  return seed * 7919 + index + 1
}

/** When host `index` of `count` sends its first heartbeat: heartbeats are staggered over one period. */
export function heartbeatPhaseMs(index: number, count: number, heartbeatMs: number): number {
  return (heartbeatMs * index) / count
}

export class NoiseSource {
  private burstLeft = 0
  private readonly burstCores: number

  constructor(
    private readonly level: number,
    private readonly rng: () => number,
  ) {
    // Mean time in bursts per period ≈ p·E[len] / (1 + p·E[len]); bursts carry (1 − JITTER_SHARE)·λ.
    const meanLen = (BURST_MAX_PERIODS + 1) / 2
    const inBurst = (BURST_START_P * meanLen) / (1 + BURST_START_P * meanLen)
    this.burstCores = Math.min(1, Math.max(BURST_MIN_CORES, ((1 - JITTER_SHARE) * level) / inBurst))
  }

  /** Background cores for the next period. */
  next(): number {
    if (!(this.level > 0)) return 0
    const jitter = this.level * JITTER_SHARE * -Math.log(1 - this.rng())
    if (this.burstLeft === 0 && this.rng() < BURST_START_P) this.burstLeft = 1 + Math.floor(this.rng() * BURST_MAX_PERIODS)
    let burst = 0
    if (this.burstLeft > 0) {
      this.burstLeft--
      burst = this.burstCores
    }
    return jitter + burst
  }
}
