/**
 * Step 1 of a cycle (`policy.ts` has the rules): the moves that do not wait for imbalance — running
 * shares on a draining host (`drain`), on a host that no longer qualifies for them, above a spread
 * job's cap, or on a host under memory pressure (`constraint`) — each to the best host for a new
 * share, within the move budgets.
 *
 * Speed (issue 12): a pool that lost a tag or a spread cap can have tens of thousands of such
 * shares while the budget lets eight move, so the candidates are only bucketed by source host, and
 * a host's bucket is sorted by id only when the budget reaches it; the rest are just counted. The
 * order is the one a full sort by (drain first, source hostId, shareId) gives.
 *
 * Must never import NATS, timers or the clock.
 */

import { type PlanState, cmpId, fmt } from '../plan-state.ts'
import { BUSY } from '../share-table.ts'

/** A host with less than this fraction of its memory free is under memory pressure. */
export const MEM_PRESSURE_FREE = 0.05

/** Candidates as two parallel lists, in the order they were found. */
interface Cands {
  i: number[]
  src: number[]
}

export function mandatory(st: PlanState): void {
  const cands: Cands = { i: [], src: [] }
  unfit(st, cands)
  const { cls, classes } = st.t
  spreadExcess(st, cands)
  memoryPressure(st, cands)
  if (cands.i.length === 0) return

  const noRoom = new Set<number>()
  const nowhere = new Set<number>()
  let waiting = 0
  let budget = 0
  let hostLimit = 0
  const order = bySource(st, cands)
  const group: number[] = []
  for (let g = 0; g < order.length; ) {
    if (st.moves >= st.maxMoves) {
      budget += order.length - g
      break
    }
    // One source host's candidates (they all share a reason), by id.
    const src = cands.src[order[g]!]!
    group.length = 0
    while (g < order.length && cands.src[order[g]!] === src) group.push(cands.i[order[g++]!]!)
    if (group.length > 1) group.sort((a, b) => cmpId(st.shares[a]!, st.shares[b]!))
    const reason = st.live[src] === 1 ? 'constraint' : 'drain'
    for (const i of group) {
      if (st.moves >= st.maxMoves) {
        budget++
        continue
      }
      if (st.inflight[src]! >= st.maxConc) {
        hostLimit++
        continue
      }
      const key = cls[i]!
      if (noRoom.has(key)) {
        waiting++
        continue
      }
      const c = classes[key]!
      if (nowhere.has(key)) {
        waiting++
        continue
      }
      const d = st.t.demand[i]!
      let best = -1
      for (let t = 0; t < st.H; t++) {
        if (t === src || st.inflight[t]! >= st.maxConc || !st.fits(t, c)) continue
        if (best < 0 || st.betterHome(t, best, d)) best = t
      }
      if (best < 0) {
        if (c.spreadJob < 0) noRoom.add(key)
        // No host at all, the source included, can take this class until a move changes a spread
        // count: slots, memory and migration room only shrink here. Without this a full pool
        // scanned every host for each of thousands of over-cap spread shares (issue 12).
        else if (st.inflight[src]! >= st.maxConc || !st.fits(src, c)) nowhere.add(key)
        waiting++
        continue
      }
      st.migrate(i, src, best, reason, 0, 0)
      nowhere.clear()
    }
  }
  const planned = st.actions.length
  if (planned) st.reasons.push(`${planned} mandatory moves (drain/constraint)`)
  if (waiting) st.reasons.push(`${waiting} shares that must move (drain/constraint) wait: no eligible host has a free slot and memory`)
  if (budget) st.reasons.push(`${budget} mandatory moves wait for the move budget (maxMovesPerCycle ${st.maxMoves})`)
  if (hostLimit) st.reasons.push(`${hostLimit} mandatory moves wait: source host at maxConcurrentMigrationsPerHost (${st.maxConc})`)
}

/**
 * Adds the running shares on a draining host (`drain`) or on a live one they no longer qualify for.
 * In view order, not host by host: the same candidates in the same order within each host (all
 * that `bySource` keeps), read from the arrays front to back instead of a cache miss per share.
 * The loop is alone in its function: see `readShares` in `share-table.ts`.
 */
function unfit(st: PlanState, cands: Cands): void {
  const { flags, cls, classes, hostOf } = st.t
  const S = hostOf.length
  for (let i = 0; i < S; i++) {
    const h = hostOf[i]!
    if (h < 0 || flags[i]! & BUSY) continue
    if (st.live[h] === 0 || !st.qualifies(h, classes[cls[i]!]!.elig)) {
      cands.i.push(i)
      cands.src.push(h)
    }
  }
}

/**
 * Positions in `cands` ordered by source: draining hosts first, then by hostId; within a host in
 * the order found (a stable counting sort, as the full sort it replaces was stable).
 */
function bySource(st: PlanState, cands: Cands): Int32Array {
  const N = cands.i.length
  const H = st.H
  const start = new Int32Array(2 * H + 1)
  const keyOf = (src: number) => (st.live[src] === 1 ? H : 0) + st.rank[src]!
  for (let x = 0; x < N; x++) start[keyOf(cands.src[x]!) + 1]! += 1
  for (let k = 0; k < 2 * H; k++) start[k + 1]! += start[k]!
  const order = new Int32Array(N)
  for (let x = 0; x < N; x++) order[start[keyOf(cands.src[x]!)]!++] = x
  return order
}

/** `items` stably sorted by `keyOf` (an integer from 0 to `keys` − 1). */
function countingSort(items: ArrayLike<number>, keys: number, keyOf: (x: number) => number): Int32Array {
  const start = new Int32Array(keys + 1)
  for (let x = 0; x < items.length; x++) start[keyOf(items[x]!) + 1]! += 1
  for (let k = 0; k < keys; k++) start[k + 1]! += start[k]!
  const out = new Int32Array(items.length)
  for (let x = 0; x < items.length; x++) out[start[keyOf(items[x]!)]!++] = items[x]!
  return out
}

/** Adds the shares above their spread job's cap on a live host, cheapest to move first. */
function spreadExcess(st: PlanState, cands: Cands): void {
  const { flags, cls, classes, jobOf, hostOf } = st.t
  const caps = new Int32Array(st.t.jobIds.length)
  let over = false
  for (const j of st.spreadJobs) {
    const probe = st.spreadProbe[j]!
    caps[j] = st.spreadCap(j, classes[cls[probe]!]!.elig)
    const counts = st.spreadCount[j]!
    for (let h = 0; h < st.H && !over; h++) if (st.live[h] === 1 && counts[h]! > caps[j]!) over = true
  }
  if (!over) return
  // The running spread shares grouped by (job in `spreadJobs` order, host), view order within.
  const slot = new Int32Array(st.t.jobIds.length)
  st.spreadJobs.forEach((j, k) => (slot[j] = k))
  // Two stable counting sorts (host, then job slot) of a list in view order: (job, host, view order).
  const byHost = countingSort(st.spreadShares, st.H, (i) => hostOf[i]!)
  const list = countingSort(byHost, st.spreadJobs.length, (i) => slot[jobOf[i]!]!)
  const group: number[] = []
  // Made once, not per group: a closure made in a loop is an allocation per pass (and under tsx, which
  // names every function it makes, a property definition too).
  const cheaper = (a: number, b: number) => st.shares[a]!.checkpointBytes - st.shares[b]!.checkpointBytes || (st.shares[a]!.shareId < st.shares[b]!.shareId ? -1 : 1)
  for (let x = 0; x < list.length; ) {
    const j = jobOf[list[x]!]!
    const h = hostOf[list[x]!]!
    const end = x + st.spreadCount[j]![h]!
    const excess = st.spreadCount[j]![h]! - caps[j]!
    if (st.live[h] === 0 || excess <= 0) {
      x = end
      continue
    }
    group.length = 0
    for (; x < end; x++) {
      const i = list[x]!
      if (!(flags[i]! & BUSY) && st.qualifies(h, classes[cls[i]!]!.elig)) group.push(i)
    }
    // Most groups hold one or two shares, and a call to sort costs more than the sorting: by hand
    // for two (the second goes first only when it compares below the first, as V8's insertion sort
    // of a short array decides).
    if (group.length === 2) {
      if (cheaper(group[1]!, group[0]!) < 0) group.reverse()
    } else if (group.length > 2) group.sort(cheaper)
    for (let k = 0; k < excess && k < group.length; k++) {
      cands.i.push(group[k]!)
      cands.src.push(h)
    }
  }
}

/** Adds the shares that hosts under memory pressure shed (not already candidates). */
function memoryPressure(st: PlanState, cands: Cands): void {
  let already: Uint8Array | undefined
  for (let h = 0; h < st.H; h++) {
    const host = st.hosts[h]!
    if (st.live[h] === 0 || !(host.memTotalBytes! > 0)) continue
    let short = MEM_PRESSURE_FREE * host.memTotalBytes! - host.memFreeBytes
    if (!(short > 0)) continue
    if (!already) {
      already = new Uint8Array(st.shares.length)
      for (const i of cands.i) already[i] = 1
    }
    const holders: number[] = []
    for (let k = st.m.onStart[h]!; k < st.m.onStart[h + 1]!; k++) {
      const i = st.m.onList[k]!
      if (!already[i] && !(st.t.flags[i]! & BUSY) && (st.shares[i]!.memoryBytes ?? 0) > 0) holders.push(i)
    }
    holders.sort((a, b) => st.shares[b]!.memoryBytes! - st.shares[a]!.memoryBytes! || cmpId(st.shares[a]!, st.shares[b]!))
    let shed = 0
    for (const i of holders) {
      if (!(short > 0)) break
      cands.i.push(i)
      cands.src.push(h)
      short -= st.shares[i]!.memoryBytes!
      shed++
    }
    st.reasons.push(`${host.hostId} under memory pressure (${fmt(host.memFreeBytes / host.memTotalBytes!)} of its memory free): ${shed ? `${shed} shares with declared memory to move` : 'no share with declared memory to move'}`)
  }
}
