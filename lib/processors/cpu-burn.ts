/**
 * Built-in processor `cpu-burn`: a fixed amount of integer hashing per unit, for benchmarks that
 * need predictable CPU demand. Each unit's hash is seeded by the unit index only, so the job's
 * checksum is the same however the range is split, paused or migrated — a wrong checksum means a
 * unit was lost or counted twice.
 *
 * Must never depend on anything but the unit index and `workPerUnit` (no clock, no randomness).
 */
import { defineProcessor } from './define.ts'

/** Input of a cpu-burn job. */
export interface CpuBurnInput {
  /** Hash rounds per unit; default 20000 (≈ tens of microseconds). */
  workPerUnit?: number
}

/** State of a cpu-burn share. */
export interface CpuBurnState {
  /** uint32 sum, mod 2^32, of the per-unit hashes so far. */
  checksum: number
  /** Units processed by this share. */
  units: number
}

export const CPU_BURN_DEFAULT_WORK = 20000
/** Upper bound on `workPerUnit`, so one unit cannot stall a step for seconds. */
export const CPU_BURN_MAX_WORK = 100_000_000

/** The uint32 hash of unit `i` after `work` rounds. Exported for tests and benchmarks. */
export function burnUnit(i: number, work: number): number {
  // Seed from both 32-bit halves so units above 2^32 do not repeat earlier ones.
  let h = (Math.imul((i >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.floor(i / 0x1_0000_0000)) >>> 0
  for (let r = 0; r < work; r++) {
    // murmur3's finaliser mixed with the round number: cheap, and not something V8 can fold away.
    h ^= h >>> 16
    h = Math.imul(h, 0x85ebca6b)
    h ^= h >>> 13
    h = (Math.imul(h, 0xc2b2ae35) + r) | 0
    h ^= h >>> 16
  }
  return h >>> 0
}

function workOf(input: CpuBurnInput | undefined): number {
  return input?.workPerUnit ?? CPU_BURN_DEFAULT_WORK
}

export default defineProcessor<CpuBurnInput, CpuBurnState, number>({
  name: 'cpu-burn',
  initialStepUnits: 16,
  validateInput(input: unknown): asserts input is CpuBurnInput {
    if (input === undefined || input === null) return
    if (typeof input !== 'object' || Array.isArray(input)) {
      throw new TypeError(`cpu-burn input must be an object like { workPerUnit: 20000 } (got ${JSON.stringify(input)})`)
    }
    const w = (input as Record<string, unknown>).workPerUnit
    if (w !== undefined && !(Number.isInteger(w) && (w as number) >= 1 && (w as number) <= CPU_BURN_MAX_WORK)) {
      throw new TypeError(`cpu-burn input.workPerUnit must be an integer from 1 to ${CPU_BURN_MAX_WORK} (got ${JSON.stringify(w)})`)
    }
  },
  init: () => ({ checksum: 0, units: 0 }),
  step: (state, from, to, input) => {
    const work = workOf(input)
    let sum = state.checksum
    for (let i = from; i < to; i++) sum = (sum + burnUnit(i, work)) >>> 0
    state.checksum = sum
    state.units += to - from
    return state
  },
  result: (state) => state.checksum,
  merge: (a, b) => (a + b) >>> 0,
})
