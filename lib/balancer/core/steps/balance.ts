/**
 * Step 4 of a cycle (`policy.ts` has the rules), threshold ≥ 2 only: greedy balancing moves while
 * the loads are further apart than the threshold tolerates, each the one that lowers σ most among
 * the moves from the most loaded host that can give a share and that pay for their stun, re-chosen
 * after every move, within the move budgets.
 *
 * Must never import NATS, timers or the clock.
 */

import { minGoodness, toleratedImbalance, toleratedLoadGap } from '../drs-threshold.ts'
import { contention, expectedStunMs, hostThroughput, stdDev } from '../load-model.ts'
import { EPS, type PlanState, cmpId, fmt } from '../plan-state.ts'
import { BUSY } from '../share-table.ts'

/**
 * Least rise of the pool's Shoal throughput a balancing move must bring, as a part of what the
 * share gets now, with the loads shaded by their noise: a floor for a silent pool, where any
 * positive gain would pass.
 */
export const MIN_MOVE_GAIN = 0.05
/** Noise-σ by which a balancing move's source is read lighter and its target heavier. */
export const NOISE_Z = 2
/** How far past its cores a balancing move may fill a target with Shoal demand (demand readings). */
export const TARGET_HEADROOM = 0.1
/** A balancing move must win back this many times the work its stun loses. */
export const MOVE_PAYBACK = 2

export function balance(st: PlanState): void {
  const T = st.knobs.migrationThreshold
  const tol = toleratedImbalance(T, st.n)
  const gapTol = toleratedLoadGap(T)
  if (st.n < 2) return
  let balanceMoves = 0
  let residency = 0
  let hostLimit = 0
  let noTarget = 0
  let noGain = 0
  let unknownRate = 0
  let targetFull = 0
  let stopped = ''
  const live: number[] = []
  for (let h = 0; h < st.H; h++) if (st.live[h] === 1) live.push(h)
  for (;;) {
    const sigma = stdDev(st.sum, st.sumSq, st.n)
    let maxL = -Infinity
    let minL = Infinity
    for (const h of live) {
      maxL = Math.max(maxL, st.load[h]!)
      minL = Math.min(minL, st.load[h]!)
    }
    const gap = maxL - minL
    const minG = minGoodness(T, st.n, sigma)
    if (!(sigma > tol + EPS || gap > gapTol + EPS)) {
      stopped = `balanced: σ ${fmt(sigma)} ≤ tolerated ${fmt(tol)} and load gap ${fmt(gap)} ≤ ${fmt(gapTol)}`
      break
    }
    if (st.moves >= st.maxMoves) {
      stopped = `σ ${fmt(sigma)} (tolerated ${fmt(tol)}, load gap ${fmt(gap)}): move budget (maxMovesPerCycle ${st.maxMoves}) used up`
      break
    }
    const mean = st.sum / st.n
    const targets = live.filter((h) => st.free[h]! > 0 && st.inflight[h]! < st.maxConc).sort((a, b) => st.load[a]! - st.load[b]! || st.rank[a]! - st.rank[b]!)
    if (targets.length === 0) {
      stopped = `σ ${fmt(sigma)} (tolerated ${fmt(tol)}): no host with a free slot can take a migration`
      break
    }
    let fastestTarget = 0
    for (const h of targets) if (st.m.speedKnown[h]) fastestTarget = Math.max(fastestTarget, st.m.coreSpeed[h]!)
    const sources = live.filter((h) => st.load[h]! > mean + EPS && st.m.onStart[h + 1]! > st.m.onStart[h]!).sort((a, b) => st.load[b]! - st.load[a]! || st.rank[a]! - st.rank[b]!)
    // Per class of share, two target lists: the least loaded hosts it fits (best for σ) and the
    // ones where it would run fastest (best for throughput); two of each, so one is not the source.
    const targetOf = new Map<number, number[]>()
    const fastest = [...targets].sort((a, b) => (st.betterHome(a, b, 1) ? -1 : st.betterHome(b, a, 1) ? 1 : 0))
    let best: { i: number; src: number; t: number; goodness: number; cost: number } | undefined
    for (const src of sources) {
      if (st.inflight[src]! >= st.maxConc) {
        hostLimit++
        continue
      }
      // Nothing to win from a host whose shares get all the CPU they want, unless a target is faster.
      if (st.load[src]! - NOISE_Z * st.m.noise[src]! <= 1 + EPS && st.m.coreSpeed[src]! >= fastestTarget - EPS) {
        noGain++
        continue
      }
      for (let k = st.m.onStart[src]!; k < st.m.onStart[src + 1]!; k++) {
        const i = st.m.onList[k]!
        const s = st.shares[i]!
        if (st.t.flags[i]! & BUSY || st.used[i]) continue
        if (s.lastMovedAt !== null && st.now - s.lastMovedAt < st.knobs.minResidencyMs) {
          residency++
          continue
        }
        const key = st.t.cls[i]!
        let cands = targetOf.get(key)
        if (cands === undefined) {
          const c = st.t.classes[key]!
          cands = [...firstFits(targets, (h) => st.fits(h, c), 2), ...firstFits(fastest, (h) => st.fits(h, c), 2)]
          targetOf.set(key, cands)
        }
        let any = false
        let refusal: Refusal | null = null
        for (const t of new Set(cands)) {
          if (t === src) continue
          any = true
          const cand = evaluate(st, i, src, t, minG)
          if (typeof cand === 'string') {
            refusal ??= cand
            continue
          }
          refusal = null
          if (!best || cand.goodness > best.goodness + EPS || (Math.abs(cand.goodness - best.goodness) <= EPS && (cand.cost < best.cost - EPS || (Math.abs(cand.cost - best.cost) <= EPS && (cmpId(s, st.shares[best.i]!) < 0 || (best.i === i && st.rank[t]! < st.rank[best.t]!)))))) {
            best = { i, src, t, goodness: cand.goodness, cost: cand.cost }
          }
        }
        if (!any) noTarget++
        else if (refusal === 'unknown-rate') unknownRate++
        else if (refusal === 'target-full') targetFull++
        else if (!best || best.i !== i) noGain++
      }
      if (best) break
    }
    if (!best) {
      const why: string[] = []
      if (residency) why.push(`${residency} shares migrated within minResidencyMs`)
      if (targetFull) why.push(`${targetFull} candidates whose target would get more Shoal demand than ${1 + TARGET_HEADROOM} × its cores`)
      if (hostLimit) why.push(`${hostLimit} hosts at maxConcurrentMigrationsPerHost`)
      if (noTarget) why.push(`${noTarget} shares with no eligible target that has a free slot`)
      if (noGain) why.push(`${noGain} candidates whose move would not pay (goodness, cost or throughput)`)
      if (unknownRate) why.push(`${unknownRate} shares with no known rate`)
      stopped = `σ ${fmt(sigma)} (tolerated ${fmt(tol)}, load gap ${fmt(gap)}): no balancing move pays${why.length ? ` (${why.join('; ')})` : ''}`
      break
    }
    st.migrate(best.i, best.src, best.t, 'imbalance', best.goodness, best.cost)
    balanceMoves++
  }
  if (balanceMoves) st.reasons.push(`${balanceMoves} balancing moves (σ ${fmt(st.sigma0)} → ${fmt(stdDev(st.sum, st.sumSq, st.n))})`)
  if (stopped) st.reasons.push(stopped)
}

/** Goodness and cost of moving share `i` from `src` to `t`, or why the move does not pay. */
function evaluate(st: PlanState, i: number, src: number, t: number, minG: number): { goodness: number; cost: number } | Refusal {
  const s = st.shares[i]!
  const d = st.t.demand[i]!
  const cs = st.m.cores[src]!
  const ct = st.m.cores[t]!
  const ls = st.load[src]!
  const lt = st.load[t]!
  const ls2 = ls - d / cs
  const lt2 = lt + d / ct
  if ((st.sd[t]! + d) / ct > 1 + TARGET_HEADROOM + EPS) return 'target-full'
  const sigma = stdDev(st.sum, st.sumSq, st.n)
  const sigma2 = stdDev(st.sum - d / cs + d / ct, st.sumSq - ls * ls + ls2 * ls2 - lt * lt + lt2 * lt2, st.n)
  const goodness = sigma - sigma2
  if (!(goodness >= minG) || !(goodness > EPS)) return 'no-gain'
  const rate = st.rateOn(i, src)
  if (!(rate > 0)) return 'unknown-rate'
  const remainingSec = st.t.remaining[i]! / rate
  const stunSec = expectedStunMs(s.checkpointBytes, st.view) / 1000
  const cost = (stunSec / remainingSec) * (d / cs)
  if (!(goodness > cost)) return 'no-gain'
  const ks = st.m.coreSpeed[src]!
  const kt = st.speedFor(t, src)
  // Throughput with the figures shaded by their noise: the source lighter, the target heavier.
  const lsP = Math.max(0, ls - NOISE_Z * st.m.noise[src]!)
  const ltP = lt + NOISE_Z * st.m.noise[t]!
  const ls2P = Math.max(0, lsP - d / cs)
  const lt2P = ltP + d / ct
  const gain =
    hostThroughput(ks, st.sd[src]! - d, ls2P) + hostThroughput(kt, st.sd[t]! + d, lt2P) - hostThroughput(ks, st.sd[src]!, lsP) - hostThroughput(kt, st.sd[t]!, ltP)
  // The pool must do materially more work, not just swap which host carries the imbalance (seen
  // in bench/uneven before noise shading: a lone share moved between two idle hosts on 0.5 % of
  // stray load).
  if (!(gain >= MIN_MOVE_GAIN * d * ks * contention(lsP))) return 'no-gain'
  const rateOnTarget = (rate / (ks * contention(ls))) * kt * contention(lt2P)
  const horizonSec = st.t.remaining[i]! / rateOnTarget
  const lostWork = stunSec * d * ks * contention(lsP)
  if (!(gain * horizonSec > MOVE_PAYBACK * lostWork)) return 'no-gain'
  return { goodness, cost }
}

/** Why a balancing move was refused: no room under the load cap, no measured rate, or it does not pay. */
type Refusal = 'target-full' | 'unknown-rate' | 'no-gain'

/** The first `n` items of `ordered` that satisfy `ok`. */
function firstFits(ordered: readonly number[], ok: (h: number) => boolean, n: number): number[] {
  const out: number[] = []
  for (const h of ordered) {
    if (out.length >= n) break
    if (ok(h)) out.push(h)
  }
  return out
}
