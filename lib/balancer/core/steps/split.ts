/**
 * Step 3 of a cycle (`policy.ts` has the rules): each idle slot left, fastest host first, takes the
 * tail of the running share with the most expected remaining time that it may run, when that
 * brings the share's finish forward.
 *
 * Candidates are numbers in typed arrays read from the share table, grouped by job (a job's shares
 * share processor, tags and memory, so one fit check per job at its longest share): at 10,000
 * hosts × 1,000,000 shares an object per candidate, and its garbage, were a third of `decide`
 * (issue 12).
 *
 * Must never import NATS, timers or the clock.
 */

import { DEFAULT_STUN_BASE_MS, contention, hostThroughput } from '../load-model.ts'
import { Heap } from '../heap.ts'
import { EPS, type PlanState, cmpId } from '../plan-state.ts'
import { BUSY } from '../share-table.ts'

/** Split fractions are kept within these bounds. */
export const SPLIT_FRACTION_MIN = 0.1
export const SPLIT_FRACTION_MAX = 0.9
/** A split's tail must add at least this part of its own throughput to its host's Shoal throughput. */
export const MIN_SPLIT_GAIN = 0.5

/** Expected finish-time-equalising tail fraction for source and target speeds (units/s), unclamped. */
export function equalisingFraction(sourceRate: number, targetRate: number): number {
  return targetRate / (sourceRate + targetRate)
}

interface Candidate {
  i: number
  src: number
  rate: number
}

export function split(st: PlanState): void {
  if (idleSlots(st) === 0) return
  const minUnits = Math.max(1, st.knobs.splitMinUnits)
  const overheadSec = (2 * (st.view.stunBaseMs ?? DEFAULT_STUN_BASE_MS)) / 1000
  const { flags, remaining: remainingOf, jobOf, cls, classes, demand, hostOf } = st.t
  const S = hostOf.length

  // Candidates, grouped by job, longest first.
  const N = st.m.onList.length
  const cI = st.scratch.int32('split.i', N)
  const cSrc = st.scratch.int32('split.src', N)
  const cRate = st.scratch.float64('split.rate', N)
  const cRem = st.scratch.float64('split.rem', N)
  const longer = (a: number, b: number): boolean => cRem[a]! > cRem[b]! || (cRem[a] === cRem[b] && cmpId(st.shares[cI[a]!]!, st.shares[cI[b]!]!) < 0)
  const byJob: (number[] | undefined)[] = new Array(st.t.jobIds.length).fill(undefined)
  const jobOrder: number[] = []
  let n = 0
  let unknownRate = 0
  // In view order (the arrays front to back): which candidate comes out of a job's heap depends only
  // on (remaining time, shareId), never on the order they went in.
  for (let i = 0; i < S; i++) {
    const h = hostOf[i]!
    if (h < 0 || st.live[h] === 0 || flags[i]! & BUSY || st.used[i]) continue
    const remaining = remainingOf[i]!
    if (!(remaining >= 2 * minUnits)) continue
    const rate = st.rateOn(i, h)
    if (!(rate > 0)) {
      unknownRate++
      continue
    }
    const j = jobOf[i]!
    let list = byJob[j]
    if (!list) {
      byJob[j] = list = []
      jobOrder.push(j)
    }
    cI[n] = i
    cSrc[n] = h
    cRate[n] = rate
    cRem[n] = remaining / rate
    list.push(n++)
  }
  interface JobQ { heap: Heap<number> }
  const jobBefore = (a: JobQ, b: JobQ): boolean => longer(a.heap.peek()!, b.heap.peek()!)
  const jobs = new Heap<JobQ>(jobBefore, jobOrder.map((j) => ({ heap: new Heap(longer, byJob[j]!) })))

  interface Idle { h: number; speed: number }
  const idleBefore = (a: Idle, b: Idle): boolean => (Math.abs(a.speed - b.speed) > EPS ? a.speed > b.speed : st.rank[a.h]! < st.rank[b.h]!)
  const idle: Idle[] = []
  for (let h = 0; h < st.H; h++) if (st.live[h] === 1 && st.free[h]! > 0) idle.push({ h, speed: st.newShareSpeed(h, 1) })
  const idleQ = new Heap(idleBefore, idle)

  let splits = 0
  let notWorth = 0
  let nothing = 0
  while (idleQ.size > 0) {
    const top = idleQ.pop()!
    const t = top.h
    if (st.free[t]! <= 0) continue
    const speedNow = st.newShareSpeed(t, 1)
    if (speedNow !== top.speed) {
      idleQ.push({ h: t, speed: speedNow })
      continue
    }
    // The longest share this host may take a tail of.
    const aside: JobQ[] = []
    let pick: JobQ | undefined
    while (jobs.size > 0) {
      const q = jobs.pop()!
      const c = q.heap.peek()!
      if (st.fits(t, classes[cls[cI[c]!]!]!, 1)) {
        pick = q
        break
      }
      aside.push(q)
    }
    for (const q of aside) jobs.push(q)
    if (!pick) {
      nothing++
      continue
    }
    const head = pick.heap.peek()!
    const c = { i: cI[head]!, src: cSrc[head]!, rate: cRate[head]! }
    const plan = splitPlan(st, c, t, minUnits, overheadSec)
    if (!plan) {
      // The longest share would not finish sooner: shorter ones gain even less here.
      jobs.push(pick)
      notWorth++
      continue
    }
    pick.heap.pop()
    if (pick.heap.size > 0) jobs.push(pick)
    const s = st.shares[c.i]!
    st.used[c.i] = 1
    st.jobTotal[jobOf[c.i]!]! += 1
    st.take(t, c.i, demand[c.i]!)
    splits++
    st.actions.push({ kind: 'split', shareId: s.shareId, hostId: st.hosts[c.src]!.hostId, toHost: st.hosts[t]!.hostId, fraction: plan.fraction, reason: 'split' })
    if (st.free[t]! > 0) idleQ.push({ h: t, speed: st.newShareSpeed(t, 1) })
  }
  if (splits) st.reasons.push(`${splits} splits into idle slots`)
  const left = idleSlots(st)
  if (left > 0) {
    const why: string[] = []
    if (nothing) why.push(`${nothing} hosts find no share to take a tail of (eligible, ≥ 2 × splitMinUnits = ${2 * minUnits} units left, not already split this cycle)`)
    if (notWorth) why.push(`${notWorth} hosts would not bring any finish forward`)
    if (unknownRate) why.push(`${unknownRate} shares of unmeasured jobs skipped`)
    st.reasons.push(`${left} idle slots left${why.length ? `: ${why.join('; ')}` : ''}`)
  }
}

function idleSlots(st: PlanState): number {
  let n = 0
  for (let h = 0; h < st.H; h++) if (st.live[h] === 1 && st.free[h]! > 0) n += st.free[h]!
  return n
}

/** The tail fraction for splitting candidate `c` onto host `t`, or null if the split does not pay. */
function splitPlan(st: PlanState, c: Candidate, t: number, minUnits: number, overheadSec: number): { fraction: number } | null {
  const remaining = st.t.remaining[c.i]!
  const d = st.t.demand[c.i]!
  const loadAfter = st.load[t]! + d / st.m.cores[t]!
  const srcK = st.m.coreSpeed[c.src]! * contention(st.load[c.src]!)
  const perSpeed = c.rate / srcK // the share's own uncontended rate on a core of speed 1
  const vt = perSpeed * st.speedFor(t, c.src) * contention(loadAfter)
  const vs = t === c.src ? vt : c.rate
  if (!(vt > 0) || !(vs > 0)) return null
  // A free slot is idle capacity only if the tail adds work there rather than taking CPU from the
  // Shoal shares already running on that host (slots above cores on a busy host are not idle).
  const kt = st.speedFor(t, c.src)
  const gain = hostThroughput(kt, st.sd[t]! + d, loadAfter) - hostThroughput(kt, st.sd[t]!, st.load[t]!)
  if (!(gain >= MIN_SPLIT_GAIN * d * kt * contention(loadAfter))) return null
  const lo = Math.max(SPLIT_FRACTION_MIN, minUnits / remaining)
  const hi = Math.min(SPLIT_FRACTION_MAX, 1 - minUnits / remaining)
  if (lo > hi) return null
  const f = Math.min(hi, Math.max(lo, equalisingFraction(vs, vt)))
  const before = remaining / c.rate
  const after = Math.max(((1 - f) * remaining) / vs, (f * remaining) / vt + overheadSec)
  if (!(before - after >= 2 * overheadSec)) return null
  return { fraction: f }
}
