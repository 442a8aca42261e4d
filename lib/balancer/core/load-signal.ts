/**
 * A noisy load figure turned into one the policy can act on: a level smoothed over a window of
 * samples, and an estimate of the figure's own noise (issue 9, point 1). Used for each host's
 * external (non-Shoal) CPU demand and each running share's CPU demand, fed once per heartbeat.
 *
 * Level: the median of the samples of the last `windowMs` (with the default 1000 ms, the last 4
 * heartbeats). A median, not an EWMA, because the two kinds of change real hosts show need opposite
 * treatment: a burst (a log shipper's flush, a cron job) of up to half the window does not move a
 * median at all, while a lasting step (a hog) moves it fully once it fills half the window. An EWMA
 * of the same window lets every burst leak in and reaches 63 % of a step only after a whole window,
 * which the hog rule (a hogged share moves within 2 balancing intervals) cannot afford.
 *
 * Noise: an exponentially weighted mean of the absolute difference between successive samples,
 * over NOISE_WINDOWS windows, divided by 2/√π (≈ 1.128: E|x₁ − x₂| = 2σ/√π for independent normal
 * samples of standard deviation σ), so it reads as the standard deviation of one sample. Successive
 * differences, not the spread around the level, because a step then counts once (one big
 * difference) instead of for as long as the level lags behind it — a variance about the level
 * would read a hog's arrival as noise and make the policy doubt the very load it must act on. A
 * signal starts at NOISE_PRIOR, not 0: a host seen for a moment has not shown it is quiet.
 *
 * Must never import NATS, timers or the clock: time is the caller's `at`.
 */

/** The noise estimate's time constant, in windows: a host's noise is a slow property. */
export const NOISE_WINDOWS = 5
/** Noise assumed before any difference has been seen (a fraction of a core, like the samples). */
export const NOISE_PRIOR = 0.05
/** E|x₁ − x₂| / σ for independent normal samples. */
const MEAN_ABS_DIFF_PER_SIGMA = 2 / Math.sqrt(Math.PI)
/** Most samples kept, whatever the window: bounds memory at a tiny heartbeat period. */
export const MAX_SAMPLES = 64

export interface SignalReading {
  /** Smoothed level (median of the window). */
  level: number
  /** Estimated standard deviation of one sample. */
  noise: number
  /** Samples in the window. */
  samples: number
}

export class LoadSignal {
  private readonly at: number[] = []
  private readonly x: number[] = []
  private absDiff = NOISE_PRIOR * MEAN_ABS_DIFF_PER_SIGMA
  private lastAt = Number.NaN
  /**
   * The reading, made when a sample arrives rather than when it is read: a balancing pass reads
   * every running share's signal (50,000 at 10,000 hosts), and a median made there — a copy and a
   * sort each — was two thirds of `buildClusterView`'s time (bench/sim/snapshot-time.ts, issue 12). A sample arrives once a
   * heartbeat, in handling the work queue slices; the pass is one synchronous turn.
   */
  private reading: Readonly<SignalReading> = { level: 0, noise: this.absDiff / MEAN_ABS_DIFF_PER_SIGMA, samples: 0 }

  constructor(private windowMs: number) {}

  /** Changes the window (live tuning); samples outside the new window go at the next `add`. */
  setWindow(windowMs: number): void {
    this.windowMs = windowMs
  }

  /** Adds a sample taken at `at` (ms, any monotonic clock). Non-finite samples and time going back are ignored. */
  add(at: number, x: number): void {
    if (!Number.isFinite(x) || !Number.isFinite(at)) return
    const n = this.x.length
    if (n > 0) {
      const dt = at - this.lastAt
      if (!(dt >= 0)) return
      const tau = Math.max(1, NOISE_WINDOWS * this.windowMs)
      const alpha = 1 - Math.exp(-Math.max(dt, 1) / tau)
      this.absDiff += alpha * (Math.abs(x - this.x[n - 1]!) - this.absDiff)
    }
    this.at.push(at)
    this.x.push(x)
    this.lastAt = at
    // Keep the samples of the last windowMs, and always the newest one.
    let drop = 0
    while (drop < this.x.length - 1 && (at - this.at[drop]! >= this.windowMs || this.x.length - drop > MAX_SAMPLES)) drop++
    if (drop > 0) {
      this.at.splice(0, drop)
      this.x.splice(0, drop)
    }
    this.reading = { level: median(this.x), noise: this.absDiff / MEAN_ABS_DIFF_PER_SIGMA, samples: this.x.length }
  }

  /** The smoothed level and noise; level 0 before any sample. The same object until the next sample. */
  read(): Readonly<SignalReading> {
    return this.reading
  }
}

/** Median of `xs` (mean of the middle two for an even count); 0 for none. Does not modify `xs`. */
export function median(xs: readonly number[]): number {
  const n = xs.length
  if (n === 0) return 0
  if (n === 1) return xs[0]!
  const s = [...xs].sort((a, b) => a - b)
  const mid = n >> 1
  return n % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}
