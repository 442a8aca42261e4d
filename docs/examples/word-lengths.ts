/**
 * Worked example of a processor (see docs/PROCESSORS.md): over a list of words given as input,
 * counts how many words have each length. The job's range is a range over the list's indices.
 */
import { defineProcessor } from 'shoal/processor'

type Input = { words: string[] }
type State = { histogram: Record<number, number> }
type Result = Record<number, number>

export default defineProcessor<Input, State, Result>({
  name: 'word-lengths',
  validateInput(input: unknown): asserts input is Input {
    const words = (input as Input | null)?.words
    if (!Array.isArray(words) || !words.every((w) => typeof w === 'string')) {
      throw new Error('input.words must be an array of strings')
    }
  },
  init: () => ({ histogram: {} }),
  step(state, from, to, input) {
    for (let i = from; i < to; i++) {
      const n = input.words[i]!.length
      state.histogram[n] = (state.histogram[n] ?? 0) + 1
    }
    return state
  },
  result: (state) => state.histogram,
  merge(a, b) {
    const out: Result = { ...a }
    for (const [k, v] of Object.entries(b)) out[Number(k)] = (out[Number(k)] ?? 0) + v
    return out
  },
})
