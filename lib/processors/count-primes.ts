/**
 * Built-in processor `count-primes`: unit i is the integer i, a share's result is how many primes
 * its range holds, and results merge by addition. Known answers (π(2·10⁶) = 148,933,
 * π(10⁷) = 664,579, π(10⁸) = 5,761,455) make it the exactly-once check of the whole system: a unit
 * counted twice or lost changes the answer.
 *
 * Each step runs an odds-only segmented sieve of Eratosthenes over its sub-range, so the cost per
 * unit barely depends on where the step starts — what the runtime's step sizing needs.
 *
 * Must never keep anything share-specific at module level: the module is shared by every share a
 * worker thread runs. The caches here (base primes, the scratch segment) are pure functions of
 * nothing but their size.
 */
import { defineProcessor } from './define.ts'

/** Odd numbers per sieve segment: 2^15 bytes stays in L1/L2 cache while it is crossed off. */
const SEGMENT_ODDS = 1 << 15

/** Odd primes up to `baseLimit`, ascending; grown (never shrunk) when a range needs more. */
let basePrimes = new Uint32Array(0)
let baseLimit = 1

const scratch = new Uint8Array(SEGMENT_ODDS)

/** Makes sure `basePrimes` holds every odd prime up to `limit` (at least). */
function ensureBasePrimes(limit: number): void {
  if (limit <= baseLimit) return
  // Doubling keeps the number of rebuilds logarithmic while ranges creep upwards.
  const n = Math.max(limit, baseLimit * 2, 1024)
  const composite = new Uint8Array(n + 1)
  const found: number[] = []
  for (let i = 3; i <= n; i += 2) {
    if (composite[i]) continue
    found.push(i)
    for (let j = i * i; j <= n; j += 2 * i) composite[j] = 1
  }
  basePrimes = Uint32Array.from(found)
  baseLimit = n
}

/** Counts primes among the odd numbers in `[lo, hi)`, where `lo` is odd and `lo >= 3`. */
function countOddPrimes(lo: number, hi: number): number {
  let count = 0
  for (let segLo = lo; segLo < hi; segLo += 2 * SEGMENT_ODDS) {
    const segHi = Math.min(hi, segLo + 2 * SEGMENT_ODDS)
    const len = Math.ceil((segHi - segLo) / 2) // odd numbers segLo, segLo+2, ... < segHi
    scratch.fill(0, 0, len)
    const primes = basePrimes
    for (let k = 0; k < primes.length; k++) {
      const p = primes[k]!
      const pp = p * p
      if (pp >= segHi) break
      // First odd multiple of p in the segment that is not p itself.
      let m = pp >= segLo ? pp : Math.ceil(segLo / p) * p
      if (m % 2 === 0) m += p
      for (let j = (m - segLo) / 2; j < len; j += p) scratch[j] = 1
    }
    for (let j = 0; j < len; j++) if (scratch[j] === 0) count++
  }
  return count
}

/** Counts the primes in `[from, to)`. Exported for tests and benchmarks. */
export function countPrimesInRange(from: number, to: number): number {
  if (to <= 2 || from >= to) return 0
  let count = from <= 2 ? 1 : 0
  let lo = Math.max(from, 3)
  if (lo % 2 === 0) lo++
  if (lo >= to) return count
  ensureBasePrimes(Math.floor(Math.sqrt(to)) + 1)
  return count + countOddPrimes(lo, to)
}

/** State of a count-primes share: primes counted so far. */
export interface CountPrimesState {
  count: number
}

export default defineProcessor<unknown, CountPrimesState, number>({
  name: 'count-primes',
  // About a millisecond of sieving on a slow core; the runtime adapts from there.
  initialStepUnits: 65536,
  init: () => ({ count: 0 }),
  step: (state, from, to) => {
    state.count += countPrimesInRange(from, to)
    return state
  },
  result: (state) => state.count,
  merge: (a, b) => a + b,
})
