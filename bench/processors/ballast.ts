/**
 * Benchmark processor `ballast`: a share whose checkpoint state carries `stateBytes` bytes of
 * deterministic ballast plus a counter, and whose units each wait `msPerUnit` and touch one ballast
 * byte. It exists so the migration benchmark can move shares of a chosen checkpoint size that run
 * long enough to be moved many times, without burning the CPU that the measurement needs.
 *
 * It checks itself exactly: every step must start where the previous one ended (a state resumed
 * from the wrong checkpoint, or a unit run twice or skipped, throws), and a share's result
 * recomputes the whole ballast from scratch and throws if one byte differs (a state damaged in
 * transit fails the job). The job's result is the number of units, so the benchmark can compare
 * it with the range length.
 *
 * Must never depend on anything but the unit indices and the input (no clock, no randomness):
 * a share resumed on another host must reach the same bytes.
 */

import { setTimeout as sleep } from 'node:timers/promises'
import { defineProcessor } from '../../lib/processors/define.ts'

/** Input of a ballast job. */
export interface BallastInput {
  /** Bytes of ballast in each share's state (1 to 64 MiB). */
  stateBytes: number
  /** Milliseconds each unit waits (0 to 1000); 0 means no wait. */
  msPerUnit: number
}

/** State of a ballast share. */
export interface BallastState {
  /** First unit of this share's state (its range start, or a split-off tail's start). */
  start: number
  /** Next unit the state expects: every unit in [start, next) has been applied once. */
  next: number
  /** Units applied (must equal next - start). */
  counter: number
  ballast: Uint8Array
}

const MAX_STATE_BYTES = 64 * 1024 * 1024

/** The ballast a fresh share starts with: xorshift32 bytes from a fixed seed (not compressible). */
export function initialBallast(bytes: number): Uint8Array {
  const b = new Uint8Array(bytes)
  let x = 0x2545f491
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}

/** Applies units [from, to) to the ballast in place: each unit adds to one byte. */
export function applyUnits(b: Uint8Array, from: number, to: number): void {
  const n = b.length
  for (let u = from; u < to; u++) {
    const i = u % n
    b[i] = (b[i]! + (u & 0xff) + 1) & 0xff
  }
}

export default defineProcessor<BallastInput, BallastState, number>({
  name: 'ballast',
  initialStepUnits: 1,
  validateInput(input: unknown): asserts input is BallastInput {
    const o = input as Record<string, unknown> | null
    if (typeof o !== 'object' || o === null || Array.isArray(o)) {
      throw new TypeError(`ballast input must be an object like { stateBytes: 65536, msPerUnit: 1 } (got ${JSON.stringify(input)})`)
    }
    if (!(Number.isInteger(o.stateBytes) && (o.stateBytes as number) >= 1 && (o.stateBytes as number) <= MAX_STATE_BYTES)) {
      throw new TypeError(`ballast input.stateBytes must be an integer from 1 to ${MAX_STATE_BYTES} (got ${JSON.stringify(o.stateBytes)})`)
    }
    if (!(typeof o.msPerUnit === 'number' && o.msPerUnit >= 0 && o.msPerUnit <= 1000)) {
      throw new TypeError(`ballast input.msPerUnit must be a number from 0 to 1000 (got ${JSON.stringify(o.msPerUnit)})`)
    }
  },
  init: (input, [from]) => ({ start: from, next: from, counter: 0, ballast: initialBallast(input.stateBytes) }),
  step: async (state, from, to, input) => {
    if (from !== state.next) {
      throw new Error(`ballast: step [${from}, ${to}) does not continue the state, which expects unit ${state.next} next (a unit lost or run twice)`)
    }
    if (state.ballast.length !== input.stateBytes) {
      throw new Error(`ballast: state carries ${state.ballast.length} bytes of ballast, expected ${input.stateBytes}`)
    }
    if (input.msPerUnit > 0) await sleep(input.msPerUnit * (to - from))
    applyUnits(state.ballast, from, to)
    state.counter += to - from
    state.next = to
    return state
  },
  result: (state, input) => {
    if (state.counter !== state.next - state.start) {
      throw new Error(`ballast: counter ${state.counter} does not match the units [${state.start}, ${state.next})`)
    }
    const expected = initialBallast(input.stateBytes)
    applyUnits(expected, state.start, state.next)
    const got = state.ballast
    if (got.length !== expected.length) throw new Error(`ballast: ${got.length} bytes of ballast at the end, expected ${expected.length}`)
    for (let i = 0; i < expected.length; i++) {
      if (got[i] !== expected[i]) throw new Error(`ballast: byte ${i} is ${got[i]}, expected ${expected[i]} (state damaged in a checkpoint or a migration)`)
    }
    return state.counter
  },
  merge: (a, b) => a + b,
})
