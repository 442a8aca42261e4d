/**
 * Step 2 of a cycle (`policy.ts` has the rules): pending shares, oldest first as given, each to the
 * eligible host where a new share would run fastest, then the least loaded, then the lowest hostId.
 *
 * One lazy heap of hosts per class of share (`share-table.ts`), keyed (−speed of a new share, load
 * after, rank). Keys only grow while placing (loads and spread counts only rise), so a stale entry
 * surfaces no later than it should and is re-keyed in place; the host taken is always the one with
 * the least current key among those that fit, whatever the heap's shape.
 *
 * Must never import NATS, timers or the clock.
 */

import { HostHeap } from '../heap.ts'
import { type PlanState } from '../plan-state.ts'
import { AVOIDS, BUSY, PENDING, describeTags, type ShareClass } from '../share-table.ts'

/** Placement key weight of one share of a spread job already on a host (above any speed difference). */
const SPREAD_WEIGHT = 1e6

export function place(st: PlanState): void {
  const { flags, cls, classes, jobOf, demand } = st.t
  const heaps: (HostHeap | undefined)[] = new Array(classes.length)
  // A spread job's shares go first to the hosts with the fewest of its shares (then fastest…), so
  // they spread as evenly as the hosts allow rather than only staying under the cap.
  const keyA = (h: number, c: ShareClass) => (c.spreadJob >= 0 ? SPREAD_WEIGHT * st.spreadCounts(c.spreadJob)[h]! : 0) - st.newShareSpeed(h, 1)
  const keyB = (h: number) => st.load[h]! + 1 / st.m.cores[h]!
  // Why shares wait, counted per distinct reason in the order first met (as reasons are printed).
  const whyOfClass = new Array<string | undefined>(classes.length)
  const whyIndex = new Map<string, number>()
  const whyCount: number[] = []
  const noteUnplaced = (job: number, why: string) => {
    let w = whyIndex.get(why)
    if (w === undefined) {
      whyIndex.set(why, (w = whyCount.length))
      whyCount.push(0)
    }
    whyCount[w]! += 1
    if (!waited[job]) {
      waited[job] = 1
      st.waiting[st.t.jobIds[job]!] ??= why
    }
  }
  const waited = new Uint8Array(st.t.jobIds.length)
  let placed = 0
  const S = st.shares.length
  for (let i = 0; i < S; i++) {
    if ((flags[i]! & (PENDING | BUSY)) !== PENDING) continue
    const key = cls[i]!
    const c = classes[key]!
    if (flags[i]! & AVOIDS) {
      // Rare (a retry after a processor failure): a scan of the hosts, outside the class heaps.
      const h = homeAvoiding(st, i)
      if (h >= 0) {
        st.used[i] = 1
        st.take(h, i, demand[i]!)
        st.actions.push({ kind: 'place', shareId: st.shares[i]!.shareId, hostId: st.hosts[h]!.hostId, reason: 'place' })
        placed++
      } else {
        const s = st.shares[i]!
        noteUnplaced(jobOf[i]!, st.eligibleCount(c.elig) === 0 ? `no live host runs processor '${s.processor}'` : 'no eligible host has a free slot and memory')
      }
      continue
    }
    let heap = heaps[key]
    if (!heap) {
      heap = new HostHeap(st.H)
      for (let h = 0; h < st.H; h++) if (st.eligible(h, c.elig)) heap.push(h, keyA(h, c), keyB(h), st.rank[h]!)
      heaps[key] = heap
    }
    let chosen = -1
    while (heap.size > 0) {
      const h = heap.topId
      // Slots, memory and spread room only shrink during placement: a host that cannot take this
      // class now never will this cycle.
      if (!st.fits(h, c)) {
        heap.pop()
        continue
      }
      const a = keyA(h, c)
      const b = keyB(h)
      if (heap.topA !== a || heap.topB !== b) {
        heap.replaceTop(h, a, b, st.rank[h]!)
        continue
      }
      chosen = h
      break
    }
    if (chosen < 0) {
      let why = whyOfClass[key]
      if (why === undefined) {
        const s = st.shares[i]!
        why = st.eligibleCount(c.elig) === 0
          ? `no live host runs processor '${s.processor}'${s.requiredTags && Object.keys(s.requiredTags).length ? ` with tags ${describeTags(s.requiredTags)}` : ''}`
          : 'no eligible host has a free slot and memory'
        whyOfClass[key] = why
      }
      noteUnplaced(jobOf[i]!, why)
      continue
    }
    st.used[i] = 1
    st.take(chosen, i, demand[i]!)
    if (st.free[chosen]! > 0) heap.replaceTop(chosen, keyA(chosen, c), keyB(chosen), st.rank[chosen]!)
    else heap.pop()
    st.actions.push({ kind: 'place', shareId: st.shares[i]!.shareId, hostId: st.hosts[chosen]!.hostId, reason: 'place' })
    placed++
  }
  if (placed) st.reasons.push(`${placed} pending shares placed`)
  for (const [why, w] of whyIndex) st.reasons.push(`${whyCount[w]} pending shares wait: ${why}`)
}

/**
 * The best home for a pending share that avoids some hosts: among the hosts it fits, those it
 * does not avoid; the avoided ones only when no live host it does not avoid qualifies at all.
 */
function homeAvoiding(st: PlanState, i: number): number {
  const s = st.shares[i]!
  const c = st.classOf(i)
  const avoid = new Set(s.avoidHosts)
  let others = false
  for (let h = 0; h < st.H; h++) if (st.eligible(h, c.elig) && !avoid.has(st.hosts[h]!.hostId)) others = true
  const d = st.t.demand[i]!
  let best = -1
  for (let h = 0; h < st.H; h++) {
    if ((others && avoid.has(st.hosts[h]!.hostId)) || !st.fits(h, c)) continue
    if (best < 0 || st.betterHome(h, best, d)) best = h
  }
  return best
}
