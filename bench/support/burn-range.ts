/**
 * A child process for the uneven benchmark (`bench/uneven.ts`): runs the `cpu-burn` processor's own
 * `init`, `step`, `result` and `merge` outside Shoal, so a benchmark can measure what one CPU does
 * with no Shoal runtime in the way, and check a job's checksum against one computed without Shoal.
 * The parent pins it to a CPU with taskset.
 *
 *   node --import tsx bench/support/burn-range.ts range FROM TO WORK   checksum of units [FROM, TO)
 *   node --import tsx bench/support/burn-range.ts timed MS WORK        units from 0 for MS ms (after a warm-up)
 *
 * Prints one JSON line `{ checksum, units, ms }` (ms: time spent burning, node start excluded).
 *
 * Must never compute anything but the processor's functions (called as the share runtime calls
 * them: steps of a few milliseconds, inside functions, so V8 compiles them as it does in a worker),
 * and must never run longer than asked. The loops are synchronous on purpose: `await` on each step
 * in a loop was measured here to halve the rate after ≈ 5 s (14.5k → 7k units/s, Node 20.20), which
 * the share runtime does not suffer, so an awaiting loop would make the ideal far too slow.
 */

import { performance } from 'node:perf_hooks'
import cpuBurn, { type CpuBurnInput } from '../../lib/processors/cpu-burn.ts'

/** Units per step: ≈ 5 ms at ≈ 14k units/s, the share runtime's default step target. */
const STEP_UNITS = 64

function int(s: string | undefined, what: string): number {
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`burn-range: ${what} must be a non-negative integer (got ${String(s)})\n`)
    process.exit(2)
  }
  return n
}

interface Out {
  checksum: number
  units: number
  ms: number
}

type State = ReturnType<typeof cpuBurn.init>

/** cpu-burn's step, which is synchronous (see the header for why it is not awaited). */
function step(state: State, from: number, to: number, input: CpuBurnInput): State {
  const next = cpuBurn.step(state, from, to, input)
  if (next instanceof Promise) throw new Error('burn-range: cpu-burn step returned a promise; this runner expects it synchronous')
  return next
}

/** The checksum of [from, to), stepped as a share would be (the result of one share over the range). */
function range(from: number, to: number, input: CpuBurnInput): Out {
  const t0 = performance.now()
  let state = cpuBurn.init(input, [from, to])
  for (let p = from; p < to; p += STEP_UNITS) state = step(state, p, Math.min(to, p + STEP_UNITS), input)
  return { checksum: cpuBurn.result(state, input), units: to - from, ms: performance.now() - t0 }
}

/** Untimed steps before a timed run, so V8 has optimised `step` (a share runs long enough to be). */
const WARM_UP_MS = 200

/** Steps from unit 0 until `ms` have passed (after WARM_UP_MS of untimed steps). */
function timed(ms: number, input: CpuBurnInput): Out {
  let state = cpuBurn.init(input, [0, Number.MAX_SAFE_INTEGER])
  const w0 = performance.now()
  for (let w = 0; performance.now() - w0 < WARM_UP_MS; w += STEP_UNITS) state = step(state, w, w + STEP_UNITS, input)
  state = cpuBurn.init(input, [0, Number.MAX_SAFE_INTEGER])
  const t0 = performance.now()
  let p = 0
  while (performance.now() - t0 < ms) {
    state = step(state, p, p + STEP_UNITS, input)
    p += STEP_UNITS
  }
  return { checksum: cpuBurn.result(state, input), units: p, ms: performance.now() - t0 }
}

const [mode, a, b, c] = process.argv.slice(2)
let out: Out
if (mode === 'range') out = range(int(a, 'FROM'), int(b, 'TO'), { workPerUnit: int(c, 'WORK') })
else if (mode === 'timed') out = timed(int(a, 'MS'), { workPerUnit: int(b, 'WORK') })
else {
  process.stderr.write('usage: burn-range.ts range FROM TO WORK | timed MS WORK\n')
  process.exit(2)
}
process.stdout.write(JSON.stringify(out) + '\n')
