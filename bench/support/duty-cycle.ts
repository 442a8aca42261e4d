/**
 * A child process that keeps `FRACTION` of one CPU busy, as stray background load for benchmarks
 * (`background.ts` starts one per CPU, pinned with taskset): in every PERIOD_MS it spins for
 * FRACTION × PERIOD_MS, then sleeps the rest. The period is short against the hosts' 250 ms load
 * samples, so each sample reads the fraction, give or take the kernel's 10 ms accounting ticks.
 *
 *   node bench/support/duty-cycle.ts FRACTION [PERIOD_MS]
 *
 * The fraction is what it asks for, not what it gets: on a contended CPU its spins are descheduled
 * too, so `background.ts` measures what it used from /proc. Prints `ready` once it starts spinning,
 * then nothing; runs until killed and must never exit on its own.
 */

import { performance } from 'node:perf_hooks'

const fraction = Number(process.argv[2])
const periodMs = Number(process.argv[3] ?? 20)
if (!(fraction > 0 && fraction <= 1) || !(periodMs >= 2 && periodMs <= 1000)) {
  process.stderr.write(`duty-cycle: FRACTION must be in (0, 1] and PERIOD_MS in [2, 1000] (got ${process.argv[2]}, ${process.argv[3]})\n`)
  process.exit(2)
}

// Periods are counted from the start, so a late wake-up shortens the next sleep instead of
// lowering the load.
const start = performance.now()
let n = 0
let sink = 0
function cycle(): void {
  const periodStart = start + n * periodMs
  const busyUntil = periodStart + fraction * periodMs
  while (performance.now() < busyUntil) sink = (sink + 1) % 1_000_003
  n++
  const next = start + n * periodMs
  setTimeout(cycle, Math.max(0, next - performance.now()))
}
process.stdout.write('ready\n')
cycle()
process.on('SIGTERM', () => process.exit(sink >= 0 ? 0 : 1))
