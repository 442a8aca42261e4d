/**
 * The balancing policy: `decide(view, knobs, now) → Plan`, a pure, deterministic function run every
 * balancer interval (DESIGN "Balancing policy", flow 5 "Dynamic split"). The shell builds the view
 * and applies the plan; this file never touches NATS, timers, the clock or randomness, and breaks
 * every tie by id, so the same input always gives the same plan.
 *
 * Load model (`load-model.ts`): per host, demand = Σ cpuDemand of its running shares +
 * externalLoad × cores, normalised load L = demand / cores; imbalance σ = standard deviation of L
 * over the hosts that are not draining. Above L = 1 shares time-share the CPU and each runs at 1/L
 * of its speed.
 *
 * One cycle, in this order (each step sees the slots, memory and loads the earlier ones took):
 *
 * 1. Mandatory moves, at every threshold: running shares on a draining host (`drain`), and on a host
 *    that no longer qualifies — processor gone, a required tag changed, or more shares of a
 *    `spread` job than ceil(shares of job / eligible hosts) (`constraint`) — or that is under memory
 *    pressure: less than MEM_PRESSURE_FREE of its memory free, so it sheds shares that declared
 *    memory, largest first, until what they hold would lift it above that line (`constraint`). Target: the best host
 *    for a new share (below). Within the move budgets; `minResidencyMs` does not apply.
 * 2. Placement of pending shares, oldest first as given: eligibility as in `placement.ts`
 *    (processor, tags, not draining, a free slot, enough free memory; hosts in `avoidHosts` only
 *    when no other live host qualifies) plus the spread cap (a spread job's share goes to a host
 *    with the fewest of its shares first); among
 *    eligible hosts the one where a new share would run fastest (core speed × contention after
 *    placing it), then the least loaded after placing, then the lowest hostId.
 * 3. Dynamic split, at every threshold: a split interrupts nothing (the share keeps running where it
 *    is, only its tail is handed to a new slot, with no checkpoint to carry), so like placement it
 *    only fills capacity that would otherwise idle — which is why even threshold 1 splits. Each
 *    idle slot left after steps 1–2 (fastest host first) takes the tail of the running share with
 *    the most expected remaining time (remaining units ÷ its measured rate, or the model's estimate
 *    when not measured yet; shares of never-measured jobs are skipped) among those it may run with
 *    at least 2 × splitMinUnits remaining. The fraction given away equalises the two parts' expected
 *    finish times, f = v_target / (v_source + v_target), clamped to [0.1, 0.9] and so that both
 *    parts keep splitMinUnits; the split is taken only if it brings the share's expected finish
 *    forward by at least twice the split overhead (2 × stunBaseMs: cut at a safe point, assign the
 *    tail), and only if at least half of what the tail will run at there is new work for the host
 *    (MIN_SPLIT_GAIN: a free slot on a host whose CPU its shares already fill is not idle).
 *    One split per idle slot and per share per cycle. Like placements, splits are not budgeted by
 *    maxMovesPerCycle or the per-host migration limit: nothing is paused or transferred, and
 *    throttling them leaves capacity idle (in the simulator at 1,000 hosts a budget of 8 splits a
 *    cycle cost 5 % of makespan against 1 % with 64).
 * 4. Balancing moves, threshold ≥ 2, while σ > (5 − T)·0.1/√H or the most and least loaded hosts
 *    differ by more than 30/20/10/5 % (T = 2..5; `drs-threshold.ts`). Greedy, re-evaluated after
 *    each chosen move: from the most loaded host that can give a share, the non-busy share whose
 *    move reduces σ most, to a host eligible for it with a free slot — the least loaded one, or the
 *    one where it would run fastest (core speed × contention) when that one passes and the least
 *    loaded does not (on uneven hosts the least loaded is often a slow one) — taken only if
 *      - goodness (σ before − σ after) ≥ the threshold's minimum goodness, and
 *      - goodness > cost, where cost = expected stun ÷ the share's expected remaining time × its
 *        demand ÷ source cores: the stun, spread over the rest of the share's life, in load units
 *        of the source (expected stun = stunBaseMs + stunMsPerMiB × checkpoint MiB), and
 *      - the move makes the cluster do more work even if the loads are off by their noise: with
 *        the source's load read NOISE_Z noise-σ lighter and the target's NOISE_Z noise-σ heavier
 *        (`LoadModel.noise`: each host's smoothed load carries the measured noise of one reading),
 *        the Shoal throughput of source and target (demand × core speed × contention) rises by at
 *        least MIN_MOVE_GAIN of what the share gets now, and by enough that over the share's
 *        remaining time it wins back at least twice the work lost to the stun. Shoal's shares are
 *        throughput work, so unlike a VM a share that already gets all the CPU it wants gains
 *        nothing by moving: without this test a cluster at L = 1 next to an idle host would churn
 *        for no speed-up. The noise shading is what keeps a quiet pool still when loads jitter
 *        (a move that pays only on a lucky reading does not pay), while a target that is idle
 *        apart from steady stray load stays a target: that load costs the move only what it
 *        takes from the share's speed there (issue 9; until then a fixed cap of 1.1 on the
 *        target's total load refused every move onto a one-core host reading 0.1 of stray load).
 *    A target never gets more Shoal demand than its cores × (1 + TARGET_HEADROOM) (a CPU-bound
 *    share reads as up to one core; the slack is for demand readings, not a licence to overpack), a
 *    share moved less than minResidencyMs ago is not moved, and budgets hold: maxMovesPerCycle in all,
 *    maxConcurrentMigrationsPerHost per source and per target, counting busy shares on the host.
 *
 * A share appears in at most one action; slots freed by moves out are reused only next cycle.
 * Complexity: O(H + S) to build the model, heaps for placement and splits, and O(H log H + shares
 * on the sources tried) per balancing move; never hosts × shares.
 *
 * Layout: this file runs the steps and assembles the plan; each step is its own file under
 * `steps/` (mandatory, place, split, balance), all working on one `PlanState` (`plan-state.ts`),
 * which reads the view once through the share table (`share-table.ts`) and the load model.
 *
 * Must never import NATS, timers or the clock, nor call Math.random.
 */

import type { ClusterView, Knobs, Plan } from './cluster-view.ts'
import { toleratedImbalance } from './drs-threshold.ts'
import { stdDev } from './load-model.ts'
import { PlanState } from './plan-state.ts'
import { Scratch } from './scratch.ts'
import { balance } from './steps/balance.ts'
import { mandatory } from './steps/mandatory.ts'
import { place } from './steps/place.ts'
import { split } from './steps/split.ts'

export type { Action, ClusterView, HostView, Knobs, MoveReason, Plan, ShareView } from './cluster-view.ts'
export { drsPriority, minGoodness, toleratedImbalance, toleratedLoadGap } from './drs-threshold.ts'
export { MIN_MOVE_GAIN, MOVE_PAYBACK, NOISE_Z, TARGET_HEADROOM } from './steps/balance.ts'
export { MEM_PRESSURE_FREE } from './steps/mandatory.ts'
export { equalisingFraction, MIN_SPLIT_GAIN, SPLIT_FRACTION_MAX, SPLIT_FRACTION_MIN } from './steps/split.ts'

/** A balancing strategy as a function type (the shell depends on this, tests may pass another). */
export type BalancingPolicy = (view: ClusterView, knobs: Knobs, now: number, rng?: () => number) => Plan

/** Per-share arrays lent to each call in turn (`scratch.ts`: not reallocated every cycle). */
const scratch = new Scratch()

/**
 * Plans one balancing cycle. Pure and deterministic; `rng` is accepted for strategies that need one
 * and unused here (ties are broken by id).
 */
export function decide(view: ClusterView, knobs: Knobs, now: number, _rng?: () => number): Plan {
  const st = new PlanState(view, knobs, now, scratch)
  const T = knobs.migrationThreshold
  mandatory(st)
  place(st)
  split(st)
  if (T >= 2) balance(st)
  else st.reasons.push('threshold 1: no balancing moves (mandatory moves, placements and splits only)')
  if (st.m.orphans > 0) st.reasons.push(`${st.m.orphans} running shares name a host that is not in the view (ignored)`)
  const coreSpeeds: Record<string, number> = {}
  for (let h = 0; h < st.H; h++) {
    const hv = st.hosts[h]!
    // Measured this cycle: a speed that is only the view's hint is not reported back as news.
    if (st.m.speedKnown[h] && !(hv.coreSpeed !== undefined && st.m.coreSpeed[h] === hv.coreSpeed)) coreSpeeds[hv.hostId] = st.m.coreSpeed[h]!
  }
  return {
    actions: st.actions,
    normalisedLoads: st.initialLoads,
    loadNoise: st.initialNoise,
    coreSpeeds,
    imbalance: st.sigma0,
    toleratedImbalance: toleratedImbalance(T, st.n),
    projectedImbalance: stdDev(st.sum, st.sumSq, st.n),
    reasons: st.reasons,
    waiting: st.waiting,
  }
}
