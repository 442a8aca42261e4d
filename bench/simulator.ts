/**
 * Simulator benchmark: the real balancing policy (`lib/balancer/core/policy.ts`) driving a
 * deterministic discrete-event model of an uneven pool (`bench/sim/`), against static placement
 * on the same scenario.
 *
 * Figures per scenario: makespan ÷ ideal makespan (the fluid lower bound of `bench/sim/ideal.ts`)
 * with the policy and with static placement (threshold 1 and no splits: shares are placed, queued
 * and re-placed after a failure, never moved or split), migrations per share (migrations ÷ shares
 * ever created, split tails included), splits, units redone after a failure, and the wall-clock
 * time of each `decide` call (p50/p99/max), measured around the call, outside the model: the
 * interval passes (`decideMs`, the decision cycle) and the kick passes a freed slot triggers
 * between intervals (`kickDecideMs`; see bench/sim/model.ts). Because a simulated pool's view
 * shrinks as shares finish, `decide` is also timed on its own on fixed 1,000 × 100,000 views
 * (`bench/sim/big-view.ts`: a submission burst, a busy pool with a queue, everything running). Full mode
 * runs a 48-host pool with and without a failure and a 1,000-host pool with ~100,000 shares;
 * smoke runs a 6-host pool and a 50-host pool with 2,000 shares.
 *
 * Noise (issue 9): hosts may carry stray background load that jitters with bursts
 * (`bench/sim/noise.ts`); their heartbeats report it as real hosts do and the policy sees it
 * smoothed (`LoadHistory`). Full mode runs the 48-host pool again at 0.05, 0.1 and 0.2 core of
 * noise, and an even pool (identical hosts, one job filling every slot) with noise and nothing
 * else, where every balancing migration is thrash; smoke runs a noisy 6-host pool and an even
 * 8-host pool at 0.2.
 *
 * Targets (reported, not enforced): makespan ≤ 1.05 × ideal with < 1 migration per share at every
 * noise level; 0 balancing migrations in the even pools; decide p99 ≤ 60 ms at 1,000 hosts ×
 * 100,000 shares and ≤ 1 s at 10,000 × 1,000,000 (issue 12; full mode only). Must never tune a scenario or the model to
 * meet them: the policy's knobs are the balancer's defaults unless a row says otherwise.
 */

import { performance } from 'node:perf_hooks'
import { decide, type Knobs } from '../lib/balancer/core/policy.ts'
import { timeDecide } from './sim/time-decide.ts'
import { bigView, type BigViewState } from './sim/big-view.ts'
import { idealMakespanMs } from './sim/ideal.ts'
import { simulate, type SimResult } from './sim/model.ts'
import { buildScenario, defaultParams, type Scenario, type ScenarioOptions } from './sim/scenarios.ts'
import { machine, round, summarize, type BenchContext, type Figures } from './support/bench.ts'

export const description = 'policy-driven simulator: makespan vs ideal and vs static placement on uneven hosts, migrations per share, decide() time at 1,000 hosts × 100,000 shares'

/** The balancer's configuration defaults (lib/config/schema.ts). */
export const DEFAULT_KNOBS: Knobs = { migrationThreshold: 3, minResidencyMs: 10_000, maxMovesPerCycle: 8, maxConcurrentMigrationsPerHost: 2, splitMinUnits: 1000 }
/** Static placement: only mandatory moves and placements, never a split. */
export const STATIC_KNOBS: Knobs = { ...DEFAULT_KNOBS, migrationThreshold: 1, splitMinUnits: Number.POSITIVE_INFINITY }

interface Row {
  options: ScenarioOptions
  /** Extra rows with other knobs, labelled, to show a knob's effect (never replacing the default row). */
  variants?: Array<{ label: string; knobs: Partial<Knobs> }>
}

function rows(smoke: boolean): Row[] {
  if (smoke) {
    return [
      { options: { name: 'tiny', hosts: 6, coreChoices: [2, 4, 8], jobs: 2, sharesPerJob: 'auto', targetIdealMs: 20_000, hogs: 1, failure: true, seed: 1 } },
      { options: { name: 'tiny-noise-0.2', hosts: 6, coreChoices: [2, 4, 8], jobs: 2, sharesPerJob: 'auto', targetIdealMs: 20_000, hogs: 1, failure: false, noise: 0.2, seed: 1 } },
      { options: { name: 'even-noise-0.2', hosts: 8, coreChoices: [2], jobs: 1, sharesPerJob: 'auto', targetIdealMs: 20_000, hogs: 0, failure: false, noise: 0.2, even: true, seed: 3 } },
      { options: { name: 'timing-50x2000', hosts: 50, coreChoices: [2, 4, 8, 16], jobs: 2, sharesPerJob: 1000, targetIdealMs: 20_000, hogs: 2, failure: false, seed: 2 } },
    ]
  }
  // The noise rows (issue 9): the uneven pool again with stray load on every host, and an even
  // pool with noise and nothing else, where every balancing migration is thrash.
  const noisy = [0.05, 0.1, 0.2].map((noise): Row => ({
    options: { name: `uneven-48-noise-${noise}`, hosts: 48, coreChoices: [2, 4, 8, 16], jobs: 4, sharesPerJob: 'auto', targetIdealMs: 120_000, hogs: 2, failure: false, noise, seed: 11 },
  }))
  const even = [0.05, 0.1, 0.2].map((noise): Row => ({
    options: { name: `even-16-noise-${noise}`, hosts: 16, coreChoices: [4], jobs: 1, sharesPerJob: 'auto', targetIdealMs: 120_000, hogs: 0, failure: false, noise, even: true, seed: 14 },
  }))
  return [
    {
      options: { name: 'uneven-48', hosts: 48, coreChoices: [2, 4, 8, 16], jobs: 4, sharesPerJob: 'auto', targetIdealMs: 120_000, hogs: 2, failure: false, seed: 11 },
      variants: [
        { label: 'maxMovesPerCycle 64', knobs: { maxMovesPerCycle: 64 } },
        { label: 'splits off (balancing moves only)', knobs: { splitMinUnits: Number.POSITIVE_INFINITY } },
      ],
    },
    {
      options: { name: 'uneven-48-failure', hosts: 48, coreChoices: [2, 4, 8, 16], jobs: 4, sharesPerJob: 'auto', targetIdealMs: 120_000, hogs: 2, failure: true, seed: 12 },
      variants: [{ label: 'splits off (balancing moves only)', knobs: { splitMinUnits: Number.POSITIVE_INFINITY } }],
    },
    {
      options: { name: 'large-1000', hosts: 1000, coreChoices: [4, 8, 16, 32], jobs: 100, sharesPerJob: 'auto', targetIdealMs: 120_000, hogs: 10, failure: true, seed: 13 },
      variants: [{ label: 'maxMovesPerCycle 64', knobs: { maxMovesPerCycle: 64 } }],
    },
    ...noisy,
    ...even,
  ]
}

/**
 * `decide` alone on fixed views of `hosts` × `shares` in each state: one cold call (the first on
 * that view, JIT included), then `repeats` timed calls.
 */
async function timeFixedViews(hosts: number, shares: number, repeats: number, log: (line: string) => void): Promise<Figures> {
  const out: Figures = {}
  for (const state of ['submit', 'queue', 'running'] as BigViewState[]) {
    const view = bigView(state, hosts, shares, 7)
    const { coldMs: cold, actions, samples } = await timeDecide(view, DEFAULT_KNOBS, repeats)
    const running = view.shares.filter((s) => s.status === 'running').length
    const stats = summarize(samples)
    log(`simulator: decide on a fixed ${hosts} × ${shares} view (${state}: ${running} running, ${actions} actions): cold ${cold.toFixed(1)} ms, p50 ${stats.p50} ms, p99 ${stats.p99} ms, max ${stats.max} ms`)
    out[state] = { runningShares: running, actions, coldMs: round(cold), ...stats }
  }
  return out
}

function runOnce(sc: Scenario, knobs: Knobs, maxSimMs: number, seed: number): SimResult {
  return simulate({ hosts: sc.hosts, jobs: sc.jobs, knobs, params: defaultParams(seed, maxSimMs), policy: decide, clock: () => performance.now() })
}

function figuresOf(r: SimResult, idealMs: number): Figures {
  return {
    completed: r.completed,
    makespanS: round(r.makespanMs / 1000),
    makespanRatio: round(r.makespanMs / idealMs),
    migrations: r.migrations,
    migrationsByReason: r.migrationsByReason,
    sharesCreated: r.sharesCreated,
    migrationsPerShare: round(r.migrations / r.sharesCreated, 4),
    splits: r.splits,
    placements: r.placements,
    unitsRedone: Math.round(r.unitsRedone),
    rejectedActions: r.rejected,
    cycles: r.cycles,
    kickPasses: r.kicks,
  }
}

export async function run(ctx: BenchContext): Promise<Figures> {
  const scenarios: Figures[] = []
  let largest: ({ scenario: string; hosts: number; shares: number; decideMs: ReturnType<typeof summarize>; kickDecideMs: ReturnType<typeof summarize> } & Figures) | undefined
  for (const row of rows(ctx.smoke)) {
    const sc = buildScenario(row.options)
    // The same noise the runs will draw (both runs of a row use the row's seed).
    const base = defaultParams(row.options.seed, 0)
    const idealMs = idealMakespanMs(sc.hosts, sc.jobs, { seed: row.options.seed, heartbeatMs: base.heartbeatMs })
    const maxSimMs = idealMs * 10
    ctx.log(`simulator: ${sc.name}: ${sc.description}; ideal makespan ${(idealMs / 1000).toFixed(1)} s`)
    const t0 = performance.now()
    const policy = runOnce(sc, DEFAULT_KNOBS, maxSimMs, row.options.seed)
    const decideMs = summarize(policy.decideMs)
    const kickDecideMs = summarize(policy.kickDecideMs)
    ctx.log(`simulator: ${sc.name}: policy makespan ${(policy.makespanMs / idealMs).toFixed(3)} × ideal, ${policy.migrations} migrations, ${policy.splits} splits, decide p50 ${decideMs.p50} ms p99 ${decideMs.p99} ms (${((performance.now() - t0) / 1000).toFixed(1)} s wall)`)
    await new Promise((r) => setImmediate(r))
    const stat = runOnce(sc, STATIC_KNOBS, maxSimMs, row.options.seed)
    ctx.log(`simulator: ${sc.name}: static makespan ${(stat.makespanMs / idealMs).toFixed(3)} × ideal`)
    const variants: Figures[] = []
    for (const v of row.variants ?? []) {
      await new Promise((r) => setImmediate(r))
      const r = runOnce(sc, { ...DEFAULT_KNOBS, ...v.knobs }, maxSimMs, row.options.seed)
      ctx.log(`simulator: ${sc.name} [${v.label}]: makespan ${(r.makespanMs / idealMs).toFixed(3)} × ideal, ${r.migrations} migrations, ${r.splits} splits`)
      variants.push({ knobs: v.label, ...figuresOf(r, idealMs) })
    }
    scenarios.push({
      scenario: sc.name,
      description: sc.description,
      noiseCores: row.options.noise ?? 0,
      even: row.options.even ?? false,
      hosts: sc.hosts.length,
      slots: sc.hosts.reduce((n, h) => n + h.slots, 0),
      initialShares: sc.jobs.reduce((n, j) => n + j.shares, 0),
      idealMakespanS: round(idealMs / 1000),
      policy: { ...figuresOf(policy, idealMs), decideMs, kickDecideMs },
      static: figuresOf(stat, idealMs),
      ...(variants.length ? { variants } : {}),
    })
    if (!largest || policy.maxViewShares > largest.shares) {
      const floor = ctx.smoke ? 2000 : 100_000
      const big = policy.decideMs.filter((_, i) => policy.decideViewShares[i]! >= floor)
      largest = { scenario: sc.name, hosts: policy.maxViewHosts, shares: policy.maxViewShares, decideMs, [`decideMsWithAtLeast${floor}Shares`]: summarize(big), kickDecideMs }
    }
  }
  const [fixedHosts, fixedShares] = ctx.smoke ? [50, 2000] : [1000, 100_000]
  const fixed = await timeFixedViews(fixedHosts, fixedShares, ctx.smoke ? 5 : 30, ctx.log)
  const fixedP99 = Math.max(...Object.values(fixed).map((f) => (f as { p99: number }).p99))
  // Issue 12's scale: 10,000 hosts × 1,000,000 shares (full mode only: a view takes seconds to build).
  const atScale = ctx.smoke ? undefined : await timeFixedViews(10_000, 1_000_000, 10, ctx.log)
  const atScaleP99 = atScale ? Math.max(...Object.values(atScale).map((f) => (f as { p99: number }).p99)) : undefined
  const main = scenarios
  const ratios = main.map((s) => (s.policy as Figures).makespanRatio as number)
  const perShare = main.map((s) => (s.policy as Figures).migrationsPerShare as number)
  // Balancing migrations where nothing needs balancing (even pools, noise only): each one is thrash.
  const thrash = main.filter((s) => s.even).map((s) => ({ scenario: s.scenario, imbalanceMigrations: ((s.policy as Figures).migrationsByReason as Record<string, number>).imbalance ?? 0 }))
  return {
    mode: ctx.smoke ? 'smoke' : 'full',
    knobs: DEFAULT_KNOBS,
    scenarios,
    decideInSimulation: largest,
    decideOnFixedViews: { hosts: fixedHosts, shares: fixedShares, ...fixed },
    ...(atScale ? { decideAtScale: { hosts: 10_000, shares: 1_000_000, ...atScale } } : {}),
    targets: {
      makespanRatioMax: 1.05,
      makespanRatioWorst: round(Math.max(...ratios)),
      makespanMet: ratios.every((r) => r <= 1.05),
      migrationsPerShareMax: 1,
      migrationsPerShareWorst: Math.max(...perShare),
      migrationsMet: perShare.every((m) => m < 1),
      thrashMigrationsMax: 0,
      thrash,
      thrashMet: thrash.every((t) => t.imbalanceMigrations === 0),
      // Issue 12 tightened 100 ms to 60 ms here, and asks ≤ 1 s at 10,000 × 1,000,000.
      decideMsMax: 60,
      decideMsAt: `${fixedHosts} hosts × ${fixedShares} shares (fixed views, worst state)`,
      decideMsP99: fixedP99,
      decideMet: ctx.smoke ? undefined : fixedP99 <= 60,
      decideAtScaleMsMax: 1000,
      decideAtScaleP99: atScaleP99,
      decideAtScaleMet: atScaleP99 === undefined ? undefined : atScaleP99 <= 1000,
    },
    machine: machine(),
  }
}
