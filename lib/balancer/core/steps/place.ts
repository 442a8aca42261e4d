/**
 * Step 2 of a cycle (`policy.ts` has the rules): pending shares, oldest first as given, each to the
 * eligible host where a new share would run fastest, then the least loaded, then the lowest hostId
 * (`place-homes.ts` finds that host; a share that avoids hosts is placed by a scan of its own).
 *
 * Must never import NATS, timers or the clock.
 */

import { type PlanState } from '../plan-state.ts'
import { AVOIDS, BUSY, PENDING, describeTags } from '../share-table.ts'
import { Homes } from './place-homes.ts'

export function place(st: PlanState): void {
  const waits = new Waits(st)
  const placed = placeAll(st, new Homes(st), waits)
  if (placed) st.reasons.push(`${placed} pending shares placed`)
  waits.report()
}

/**
 * The pass over the pending shares; returns how many were placed. Alone in its function with
 * nothing after the loop: see `readShares` in `share-table.ts`.
 */
function placeAll(st: PlanState, homes: Homes, waits: Waits): number {
  const { flags, cls, demand } = st.t
  const S = flags.length
  let placed = 0
  for (let i = 0; i < S; i++) {
    const f = flags[i]!
    if ((f & (PENDING | BUSY)) !== PENDING) continue
    const k = cls[i]!
    // A share that avoids hosts is rare (a retry after a processor failure): a scan of the hosts.
    const avoiding = (f & AVOIDS) !== 0
    const h = avoiding ? homeAvoiding(st, i) : homes.best(k)
    if (h < 0) {
      if (avoiding) waits.avoiding(i)
      else waits.note(i)
      continue
    }
    st.used[i] = 1
    st.take(h, i, demand[i]!)
    homes.took(h, k, avoiding)
    st.actions.push({ kind: 'place', shareId: st.shares[i]!.shareId, hostId: st.hosts[h]!.hostId, reason: 'place' })
    placed++
  }
  return placed
}

/** Why shares wait, counted per distinct reason in the order first met (as reasons are printed), and the first reason per job. */
class Waits {
  readonly #st: PlanState
  /** Per class: the index of its reason (−1: not worked out yet). */
  readonly #ofClass: Int32Array
  readonly #index = new Map<string, number>()
  readonly #text: string[] = []
  readonly #count: number[] = []
  readonly #waited: Uint8Array

  constructor(st: PlanState) {
    this.#st = st
    this.#ofClass = new Int32Array(st.t.classes.length).fill(-1)
    this.#waited = new Uint8Array(st.t.jobIds.length)
  }

  /** Share `i` (of a class) found no host. */
  note(i: number): void {
    const k = this.#st.t.cls[i]!
    let w = this.#ofClass[k]!
    if (w < 0) this.#ofClass[k] = w = this.#reason(this.#why(i))
    this.#add(w, i)
  }

  /** Share `i`, which avoids some hosts, found no host. */
  avoiding(i: number): void {
    const st = this.#st
    const s = st.shares[i]!
    this.#add(this.#reason(st.eligibleCount(st.classOf(i).elig) === 0 ? `no live host runs processor '${s.processor}'` : 'no eligible host has a free slot and memory'), i)
  }

  report(): void {
    for (let w = 0; w < this.#text.length; w++) this.#st.reasons.push(`${this.#count[w]} pending shares wait: ${this.#text[w]}`)
  }

  #why(i: number): string {
    const st = this.#st
    const s = st.shares[i]!
    return st.eligibleCount(st.classOf(i).elig) === 0
      ? `no live host runs processor '${s.processor}'${s.requiredTags && Object.keys(s.requiredTags).length ? ` with tags ${describeTags(s.requiredTags)}` : ''}`
      : 'no eligible host has a free slot and memory'
  }

  #reason(why: string): number {
    let w = this.#index.get(why)
    if (w === undefined) {
      this.#index.set(why, (w = this.#text.length))
      this.#text.push(why)
      this.#count.push(0)
    }
    return w
  }

  #add(w: number, i: number): void {
    this.#count[w]! += 1
    const job = this.#st.t.jobOf[i]!
    if (!this.#waited[job]) {
      this.#waited[job] = 1
      this.#st.waiting[this.#st.t.jobIds[job]!] ??= this.#text[w]!
    }
  }
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
