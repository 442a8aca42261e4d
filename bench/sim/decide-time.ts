/**
 * Times `decide` alone on the fixed `big-view.ts` views, one state at a time, as the simulator's
 * full mode does but at any scale (10,000 × 1,000,000 needs `--max-old-space-size=8000`), so two
 * versions of the core can be compared in the same minute (issue 12).
 *
 *   node --max-old-space-size=8000 --import tsx bench/sim/decide-time.ts HOSTS SHARES [REPEATS] [STATES]
 *
 * STATES is a comma list of submit,queue,running (default all). Per state: one cold call (the first
 * on that view, JIT included), then REPEATS (default 10) timed calls; prints cold, p50, p99 and max
 * (nearest rank, as the simulator's figures: with 10 samples p99 is the slowest).
 * Must never change a view to flatter a figure: seed 7, the simulator's, and the default knobs.
 */

import { performance } from 'node:perf_hooks'
import type { Knobs } from '../../lib/balancer/core/policy.ts'
import { timeDecide } from './time-decide.ts'
import { percentile } from '../support/bench.ts'
import { bigView, type BigViewState } from './big-view.ts'

const KNOBS: Knobs = { migrationThreshold: 3, minResidencyMs: 10_000, maxMovesPerCycle: 8, maxConcurrentMigrationsPerHost: 2, splitMinUnits: 1000 }

async function main(): Promise<void> {
  const [hostsArg, sharesArg, repeatsArg, statesArg] = process.argv.slice(2)
  const hosts = Number(hostsArg ?? 1000)
  const shares = Number(sharesArg ?? 100_000)
  const repeats = Number(repeatsArg ?? 10)
  const states = (statesArg ?? 'submit,queue,running').split(',') as BigViewState[]
  for (const state of states) {
    const { coldMs: cold, actions, samples } = await timeDecide(bigView(state, hosts, shares, 7), KNOBS, repeats)
    const f = (x: number) => x.toFixed(1)
    console.log(`${hosts}x${shares} ${state}: actions ${actions} cold ${f(cold)} p50 ${f(percentile(samples, 50))} p99 ${f(percentile(samples, 99))} max ${f(Math.max(...samples))} ms (n=${samples.length})`)
  }
}

await main()
