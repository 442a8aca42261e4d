/**
 * Benchmark processor `instant`: the real-host counterpart of the scale benchmark's synthetic
 * hosts, for the tiny-shares benchmark (bench/tiny.ts). A share does no work at all: each step only
 * counts its units, so a one-unit share finishes in its first step and what is measured is
 * Shoal's own cost of placing, running and reporting a share on a real `shoal host`.
 *
 * A share's result is the number of units it stepped through and results merge by summing, so a
 * job over [0, N) must end with exactly N: a unit lost or counted twice (a share run twice, a
 * split that overlaps) shows as a wrong result. It takes the synthetic hosts' input
 * (bench/scale/ipc.ts) so the same job stream drives both, and refuses any input asking for a
 * behaviour it does not have (a run time, failures) rather than silently ignore it.
 *
 * Must never depend on anything but the unit indices (no clock, no randomness, no waiting).
 */

import { defineProcessor } from '../../lib/processors/define.ts'

/** The synthetic hosts' input (bench/scale/ipc.ts); only the instant, never-failing case is accepted. */
export interface InstantInput {
  runMs: 0
  failPermille?: 0
}

export interface InstantState {
  /** Next unit the state expects: [start, next) were stepped through once each. */
  next: number
  units: number
}

export const INSTANT_PROCESSOR = 'instant'

export default defineProcessor<InstantInput, InstantState, number>({
  name: INSTANT_PROCESSOR,
  validateInput(input: unknown): asserts input is InstantInput {
    const o = input as Record<string, unknown> | null
    if (typeof o !== 'object' || o === null || o.runMs !== 0 || (o.failPermille !== undefined && o.failPermille !== 0)) {
      throw new TypeError(`instant input must be { runMs: 0, failPermille: 0 } (shares finish at once and never fail; got ${JSON.stringify(input)})`)
    }
  },
  init: (_input, [from]) => ({ next: from, units: 0 }),
  step: (state, from, to) => {
    if (from !== state.next) throw new Error(`instant: step [${from}, ${to}) does not continue the state, which expects unit ${state.next} next`)
    state.units += to - from
    state.next = to
    return state
  },
  result: (state) => state.units,
  merge: (a, b) => a + b,
})
