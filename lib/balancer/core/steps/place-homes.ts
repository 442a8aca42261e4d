/**
 * Where placement (`place.ts`) puts the next pending share of a class: among the hosts it fits, the
 * one with the least key (−speed of a new share there, load after placing it, rank; a spread job's
 * shares first to the hosts with the fewest of its shares, SPREAD_WEIGHT per share).
 *
 * Two ways to find that host, with the same answer:
 *
 * - Shared heaps, the usual case. A class that declares no memory differs from another only in the
 *   hosts it qualifies for (processor, tags) and, for a spread job, its count per host. Hosts that
 *   qualify for exactly the same classes form a group; each group keeps one heap of its hosts with
 *   their exact keys, re-keyed when a host takes a share: one sift per placement, however many
 *   classes there are. A class's host is the least of the tops of the groups it may run on. A
 *   spread class takes the first host in that order with none of its job's shares: a host with one
 *   weighs SPREAD_WEIGHT more, so while one with none fits it comes first.
 * - A lazy heap per class: for a class that declares memory (a host it no longer fits may still fit
 *   others), a spread job that is on every host of its groups or finds such hosts only deep in the
 *   order (past FIRST_ZERO_BUDGET), and a pool whose hosts form more than MAX_GROUPS groups. Keys
 *   only grow while placing, so a stale entry surfaces no later than it should and is re-keyed in
 *   place. Every class used to keep one: a host that took a share went stale in every other class's
 *   heap, and at 1,000 hosts × 100,000 pending shares the re-keys (≈ 125,000 a call, 87,000 of them
 *   in spread jobs' heaps) were a third of `decide` at submit (issue 12).
 *
 * Both find the least key among the hosts that fit, and keys are unique (the rank), so the host is
 * the same; the shared heaps are used only where that holds exactly: keys finite, and core speeds
 * far below SPREAD_WEIGHT (so that a host with a share of the job never comes before one without).
 *
 * Must never import NATS, timers or the clock.
 */

import { HostHeap } from '../heap.ts'
import { IndexedHostHeap, OVER_BUDGET } from '../indexed-heap.ts'
import { type PlanState } from '../plan-state.ts'
import { AVOIDS, BUSY, PENDING, type ShareClass } from '../share-table.ts'

/** Placement key weight of one share of a spread job already on a host (above any speed difference). */
export const SPREAD_WEIGHT = 1e6
/** Shared heaps only while every core speed is at most this (far below SPREAD_WEIGHT). */
const MAX_SHARED_SPEED = 1e5
/** Above this many groups of hosts (or 30 eligibility classes) every class keeps its own heap. */
const MAX_GROUPS = 64
/** Hosts with a share of its job a spread class may pass over in the shared order before it takes a heap of its own. */
const FIRST_ZERO_BUDGET = 32

const UNSET = 0
const SHARED = 1
const LAZY = 2

export class Homes {
  readonly #st: PlanState
  /** Per class: UNSET, SHARED or LAZY. */
  readonly #mode: Uint8Array
  /** Per class in LAZY mode: its own heap, built on first use. */
  readonly #lazy: (HostHeap | undefined)[]
  /** Per class: found no host once, so it never will this cycle (hosts only fill). */
  readonly #full: Uint8Array
  readonly #groups: Groups | undefined

  constructor(st: PlanState) {
    this.#st = st
    const C = st.t.classes.length
    this.#mode = new Uint8Array(C)
    // Filled at birth, so every call's array is of one kind (see `PlanState.spreadCount`).
    this.#lazy = new Array<HostHeap | undefined>(C).fill(undefined)
    this.#full = new Uint8Array(C)
    this.#groups = buildGroups(st)
  }

  /** The host for the next pending share of class `k` (not avoiding hosts), or −1 when none fits. */
  best(k: number): number {
    if (this.#full[k]) return -1
    const c = this.#st.t.classes[k]!
    let mode = this.#mode[k]!
    if (mode === UNSET) this.#mode[k] = mode = this.#groups && c.memoryBytes === 0 ? SHARED : LAZY
    let h = -1
    if (mode === SHARED) {
      const groups = this.#groups!
      h = c.spreadJob < 0 ? groups.best(c.elig) : groups.bestWithout(c.elig, this.#st.spreadCounts(c.spreadJob))
      // A spread job on every host left in its groups (or whose hosts without a share lie deep in
      // the order) takes a heap of its own from here on, of those hosts: no other host fits it.
      if (h < 0 && c.spreadJob >= 0 && !groups.empty(c.elig)) {
        this.#mode[k] = mode = LAZY
        this.#lazy[k] = spreadHeap(this.#st, groups, c)
      }
    }
    if (mode === LAZY) h = this.#lazyBest(k, c)
    if (h < 0) this.#full[k] = 1
    return h
  }

  /** Host `h` took a share of class `k` (`avoiding`: chosen by a scan, not by `best`). */
  took(h: number, k: number, avoiding: boolean): void {
    const st = this.#st
    if (!avoiding && this.#mode[k] === LAZY) {
      // `h` is the top of the class's heap.
      const heap = this.#lazy[k]!
      const c = st.t.classes[k]!
      if (st.free[h]! > 0) heap.replaceTop(h, keyA(st, h, c), keyB(st, h), st.rank[h]!)
      else heap.pop()
    }
    this.#groups?.took(h)
  }

  #lazyBest(k: number, c: ShareClass): number {
    const st = this.#st
    let heap = this.#lazy[k]
    if (!heap) {
      heap = new HostHeap(st.H)
      for (let h = 0; h < st.H; h++) if (st.eligible(h, c.elig)) heap.push(h, keyA(st, h, c), keyB(st, h), st.rank[h]!)
      this.#lazy[k] = heap
    }
    return lazyBest(st, heap, c)
  }
}

/** The top of a class's lazy heap once it fits and is at its current key, or −1. */
function lazyBest(st: PlanState, heap: HostHeap, c: ShareClass): number {
  while (heap.size > 0) {
    const h = heap.topId
    // Slots, memory and spread room only shrink during placement: a host that cannot take this
    // class now never will this cycle.
    if (!st.fits(h, c)) {
      heap.pop()
      continue
    }
    const a = keyA(st, h, c)
    const b = keyB(st, h)
    if (heap.topA !== a || heap.topB !== b) {
      heap.replaceTop(h, a, b, st.rank[h]!)
      continue
    }
    return h
  }
  return -1
}

/**
 * The lazy heap a spread class takes over from the shared ones. A function of its own because of
 * its closure: a function that makes a closure allocates the variables it captures on every call,
 * even when it does not make it (`best` runs once per pending share: 4.7 MB a call at submit).
 */
function spreadHeap(st: PlanState, groups: Groups, c: ShareClass): HostHeap {
  return groups.heapOf(c.elig, (x) => keyA(st, x, c))
}

// A spread job's shares go first to the hosts with the fewest of its shares (then fastest…), so
// they spread as evenly as the hosts allow rather than only staying under the cap.
function keyA(st: PlanState, h: number, c: ShareClass): number {
  return (c.spreadJob >= 0 ? SPREAD_WEIGHT * st.spreadCounts(c.spreadJob)[h]! : 0) - st.newShareSpeed(h, 1)
}

/** `keyA` of a class that does not spread (the same expression, so the same number). */
function plainKeyA(st: PlanState, h: number): number {
  return 0 - st.newShareSpeed(h, 1)
}

function keyB(st: PlanState, h: number): number {
  return st.load[h]! + 1 / st.m.cores[h]!
}

/**
 * The shared heaps: one per group of hosts that qualify for the same eligibility classes, holding
 * the live hosts with a free slot and memory not overdrawn (all a class without declared memory
 * needs besides qualifying), each at its exact key.
 */
class Groups {
  readonly #st: PlanState
  readonly #heaps: IndexedHostHeap[]
  /** Per host: its group, −1 for none. */
  readonly #groupOf: Int32Array
  /** Per eligibility class: the groups that qualify for it. */
  readonly #of: (number[] | undefined)[]
  /** Room for `firstZero`'s frontier. */
  readonly #frontier = new Int32Array(FIRST_ZERO_BUDGET + 2)

  constructor(st: PlanState, heaps: IndexedHostHeap[], groupOf: Int32Array, of: (number[] | undefined)[]) {
    this.#st = st
    this.#heaps = heaps
    this.#groupOf = groupOf
    this.#of = of
  }

  /** The least-key host qualifying for eligibility class `e`, or −1. */
  best(e: number): number {
    const gs = this.#of[e]
    if (!gs) return -1
    let best: IndexedHostHeap | undefined
    for (const g of gs) {
      const heap = this.#heaps[g]!
      if (heap.size > 0 && (!best || before(heap, best))) best = heap
    }
    return best ? best.topId : -1
  }

  /**
   * The least-key host qualifying for `e` whose `counts` entry is 0; −1 when there is none or it
   * lies deeper than FIRST_ZERO_BUDGET hosts with a count in some group.
   */
  bestWithout(e: number, counts: Int32Array): number {
    const gs = this.#of[e]
    if (!gs) return -1
    let best = -1
    for (const g of gs) {
      const h = this.#heaps[g]!.firstZero(counts, FIRST_ZERO_BUDGET, this.#frontier)
      if (h === OVER_BUDGET) return -1
      if (h >= 0 && (best < 0 || this.#sooner(h, best))) best = h
    }
    return best
  }

  /** No host qualifying for `e` is left. */
  empty(e: number): boolean {
    for (const g of this.#of[e] ?? []) if (this.#heaps[g]!.size > 0) return false
    return true
  }

  /** A lazy heap of the hosts left that qualify for `e`, at keys (`keyA(h)`, keyB, rank). */
  heapOf(e: number, keyA: (h: number) => number): HostHeap {
    const st = this.#st
    const heap = new HostHeap(st.H)
    for (const g of this.#of[e] ?? []) this.#heaps[g]!.forEach((h) => heap.push(h, keyA(h), keyB(st, h), st.rank[h]!))
    return heap
  }

  /** Host `h` took a share: a new key, or out when it has no slot or memory left. */
  took(h: number): void {
    const g = this.#groupOf[h]!
    if (g < 0) return
    const heap = this.#heaps[g]!
    if (!heap.has(h)) return
    const st = this.#st
    if (st.free[h]! <= 0 || 0 > st.mem[h]!) heap.remove(h)
    else heap.update(h, plainKeyA(st, h), keyB(st, h), st.rank[h]!)
  }

  /** Does host `x` come before `y` (keys computed afresh: both are at their exact keys)? */
  #sooner(x: number, y: number): boolean {
    const st = this.#st
    const ax = plainKeyA(st, x)
    const ay = plainKeyA(st, y)
    if (ax !== ay) return ax < ay
    const bx = keyB(st, x)
    const by = keyB(st, y)
    if (bx !== by) return bx < by
    return st.rank[x]! < st.rank[y]!
  }
}

/** Does the top of `x` come before the top of `y`? */
function before(x: IndexedHostHeap, y: IndexedHostHeap): boolean {
  return x.topA !== y.topA ? x.topA < y.topA : x.topB !== y.topB ? x.topB < y.topB : x.topC < y.topC
}

/**
 * The shared heaps for the eligibility classes of pending shares that declare no memory, or
 * undefined when every class should keep its own heap (none such, too many groups, or keys for
 * which the two ways could differ).
 */
function buildGroups(st: PlanState): Groups | undefined {
  const need = neededEligibility(st)
  if (need.length === 0 || need.length > 30) return undefined
  const H = st.H
  const groupOf = new Int32Array(H).fill(-1)
  const maskGroup = new Map<number, number>()
  const members: number[][] = []
  const masks: number[] = []
  for (let h = 0; h < H; h++) {
    if (st.live[h] === 0 || st.free[h]! <= 0 || 0 > st.mem[h]!) continue
    let mask = 0
    for (let b = 0; b < need.length; b++) if (st.qualifies(h, need[b]!)) mask |= 1 << b
    if (mask === 0) continue
    if (!(st.m.coreSpeed[h]! <= MAX_SHARED_SPEED) || !Number.isFinite(plainKeyA(st, h)) || !Number.isFinite(keyB(st, h))) return undefined
    let g = maskGroup.get(mask)
    if (g === undefined) {
      if (members.length === MAX_GROUPS) return undefined
      maskGroup.set(mask, (g = members.length))
      members.push([])
      masks.push(mask)
    }
    groupOf[h] = g
    members[g]!.push(h)
  }
  const pos = new Int32Array(H).fill(-1)
  // Pushed, not `members.map(…)`: map's result is an array of another kind when it runs compiled,
  // and code that read the first calls' arrays would drop back to the interpreter on it.
  const heaps: IndexedHostHeap[] = []
  for (const hs of members) {
    const heap = new IndexedHostHeap(pos, hs.length)
    for (const h of hs) heap.push(h, plainKeyA(st, h), keyB(st, h), st.rank[h]!)
    heaps.push(heap)
  }
  const of = new Array<number[] | undefined>(st.t.eligibility.length).fill(undefined)
  need.forEach((e, b) => {
    const gs: number[] = []
    masks.forEach((mask, g) => {
      if (mask & (1 << b)) gs.push(g)
    })
    of[e] = gs
  })
  return new Groups(st, heaps, groupOf, of)
}

/**
 * Eligibility classes of the classes without declared memory that have a pending share placement
 * will look at (not busy, avoiding no host).
 */
function neededEligibility(st: PlanState): number[] {
  const { classes } = st.t
  const pending = pendingClasses(st)
  const seen = new Uint8Array(st.t.eligibility.length)
  const need: number[] = []
  for (let k = 0; k < classes.length; k++) {
    const c = classes[k]!
    if (!pending[k] || c.memoryBytes !== 0 || seen[c.elig]) continue
    seen[c.elig] = 1
    need.push(c.elig)
  }
  return need
}

/**
 * Per class, whether placement will look at one of its shares. The loop is alone in its function
 * and takes no branch only a few shares take (see `readShares` in `share-table.ts`).
 */
function pendingClasses(st: PlanState): Uint8Array {
  const { flags, cls } = st.t
  const pending = new Uint8Array(st.t.classes.length)
  for (let i = 0; i < flags.length; i++) if ((flags[i]! & (PENDING | BUSY | AVOIDS)) === PENDING) pending[cls[i]!] = 1
  return pending
}
