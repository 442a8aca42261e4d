/**
 * Worked example of a processor (docs/PROCESSORS.md): estimates π by Monte Carlo. Unit `i` throws
 * `samplesPerUnit` darts at the unit square from a generator seeded with `i`, so a unit gives the
 * same darts on any host and after any resume: the estimate is exact whatever moves or fails.
 */
import { defineProcessor } from 'shoal/processor'

export type Input = { samplesPerUnit: number }
export type Tally = { inside: number; samples: number }
export type Result = Tally & { pi: number }

/** mulberry32: a small, fast generator whose whole state is one 32-bit number (the unit index). */
function darts(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const withPi = (t: Tally): Result => ({ ...t, pi: t.samples === 0 ? 0 : (4 * t.inside) / t.samples })

export default defineProcessor<Input, Tally, Result>({
  name: 'monte-carlo-pi',
  validateInput(input: unknown): asserts input is Input {
    const n = (input as Input | null)?.samplesPerUnit
    if (!Number.isInteger(n) || n! < 1 || n! > 1e7) throw new Error('input.samplesPerUnit must be an integer from 1 to 10,000,000')
  },
  init: () => ({ inside: 0, samples: 0 }),
  step(state, from, to, input) {
    for (let unit = from; unit < to; unit++) {
      const next = darts(unit)
      for (let k = 0; k < input.samplesPerUnit; k++) {
        const x = next()
        const y = next()
        if (x * x + y * y <= 1) state.inside++
      }
      state.samples += input.samplesPerUnit
    }
    return state
  },
  result: withPi,
  merge: (a, b) => withPi({ inside: a.inside + b.inside, samples: a.samples + b.samples }),
})
