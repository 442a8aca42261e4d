/**
 * The state one balancing cycle plans against (`policy.ts` runs the steps in `steps/`): per host the
 * slots, memory, loads and migrations in flight as the plan so far leaves them, the actions and
 * reasons gathered, and the one way each kind of action changes that state (`take`, `migrate`).
 * The steps read and change the plan only through it, so each sees what the earlier ones took.
 *
 * Questions a step asks per share are asked per class (`share-table.ts`): whether a host qualifies
 * is memoised per eligibility class and host, and the spread caps per job, so no hot loop calls
 * `qualifies` or looks up a string per share (issue 12).
 *
 * Must never import NATS, timers or the clock, nor call Math.random.
 */

import { objectArray } from './arrays.ts'
import type { Action, ClusterView, HostView, Knobs, MoveReason, ShareView } from './cluster-view.ts'
import { qualifies, spreadCap } from './eligibility.ts'
import { buildLoadModel, contention, estimateRate, stdDev, type LoadModel } from './load-model.ts'
import { Scratch } from './scratch.ts'
import { SPREAD, type ShareClass, type ShareTable } from './share-table.ts'

export const EPS = 1e-9

/** Above this many eligibility classes the per-host answers are not memoised (memory: classes × hosts bytes). */
const MAX_MEMO_CLASSES = 4096

export function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : String(x)
}

/** Orders two shares by id (the tie-break that makes every plan deterministic). */
export function cmpId(a: ShareView, b: ShareView): number {
  return a.shareId < b.shareId ? -1 : a.shareId > b.shareId ? 1 : 0
}

export class PlanState {
  readonly view: ClusterView
  readonly knobs: Knobs
  readonly now: number
  readonly m: LoadModel
  readonly t: ShareTable
  readonly hosts: readonly HostView[]
  readonly shares: readonly ShareView[]
  readonly H: number
  /** Rank of each host by hostId, for tie-breaks. */
  readonly rank: Int32Array
  readonly live: Uint8Array
  readonly load: Float64Array
  readonly sd: Float64Array
  readonly free: Int32Array
  readonly mem: Float64Array
  readonly inflight: Int32Array
  /** Shares that already have an action this cycle. */
  readonly used: Uint8Array
  /** Shares per job, split tails planned this cycle included (the spread cap's numerator). */
  readonly jobTotal: Int32Array
  /** Per spread job: its running and planned shares per host (allocated on first use). */
  readonly spreadCount: (Int32Array | undefined)[]
  /** Jobs with a running spread share, in order of the first such share in the view. */
  readonly spreadJobs: number[] = []
  /** Per such job, its first running share (processor and tags are the job's); −1 for others. */
  readonly spreadProbe: Int32Array
  /** Running spread shares on hosts in the view, in view order. */
  readonly spreadShares: number[] = []
  /** Live hosts per eligibility class (−1: not counted yet). */
  readonly eligibleCounts: Int32Array
  /** Per eligibility class and host: 0 not asked yet, 1 does not qualify, 2 qualifies. */
  readonly qualMemo: (Uint8Array | undefined)[]
  /**
   * Σ and Σ² of the live hosts' loads, as the plan so far leaves them, kept in a typed array: as
   * fields they start as small integers (0) and turn to doubles during the first call, which
   * changes the object's hidden class and sends every function compiled against the old one
   * (most of the steps) back to the interpreter in the second call (`--trace-deopt`: "wrong map").
   */
  readonly #sums = new Float64Array(2)
  n = 0
  moves = 0
  readonly actions: Action[] = objectArray<Action>()
  readonly reasons: string[] = []
  readonly waiting: Record<string, string> = {}
  readonly initialLoads: Record<string, number> = {}
  readonly initialNoise: Record<string, number> = {}
  readonly sigma0: number
  readonly maxMoves: number
  readonly maxConc: number

  /** Per-share arrays for this cycle's steps, reused across cycles. */
  readonly scratch: Scratch

  constructor(view: ClusterView, knobs: Knobs, now: number, scratch: Scratch = new Scratch()) {
    this.scratch = scratch
    this.view = view
    this.knobs = knobs
    this.now = now
    this.hosts = view.hosts
    this.shares = view.shares
    this.H = view.hosts.length
    this.m = buildLoadModel(view, scratch)
    this.t = this.m.table
    this.maxMoves = Math.max(0, Math.floor(knobs.maxMovesPerCycle))
    this.maxConc = Math.max(0, Math.floor(knobs.maxConcurrentMigrationsPerHost))
    const H = this.H
    const order = Array.from({ length: H }, (_, i) => i).sort((a, b) => {
      const x = this.hosts[a]!.hostId
      const y = this.hosts[b]!.hostId
      return x < y ? -1 : x > y ? 1 : a - b
    })
    this.rank = new Int32Array(H)
    order.forEach((h, r) => (this.rank[h] = r))
    this.live = new Uint8Array(H)
    this.load = Float64Array.from(this.m.load)
    this.sd = Float64Array.from(this.m.shoalDemand)
    this.free = new Int32Array(H)
    this.mem = new Float64Array(H)
    this.inflight = Int32Array.from(this.m.busy)
    this.#readHosts()
    this.sigma0 = stdDev(this.sum, this.sumSq, this.n)
    const S = this.shares.length
    this.used = scratch.uint8('used', S).fill(0)
    const J = this.t.jobIds.length
    this.jobTotal = Int32Array.from(this.t.jobCount)
    // Arrays of objects are filled with undefined at birth: a fresh `new Array(n)` is an array of
    // small integers until its first object arrives, and code compiled after that would meet the
    // next call's fresh one as an array of another kind and drop back to the interpreter.
    this.spreadCount = new Array<Int32Array | undefined>(J).fill(undefined)
    this.spreadProbe = new Int32Array(J).fill(-1)
    this.#readSpread()
    const E = this.t.eligibility.length
    this.eligibleCounts = new Int32Array(E).fill(-1)
    this.qualMemo = new Array<Uint8Array | undefined>(E <= MAX_MEMO_CLASSES ? E : 0).fill(undefined)
  }

  // The two loops of the constructor are methods with nothing after the loop: V8 keeps the code it
  // compiles for a long loop during the first call, and code after it that had not run yet then
  // sends every later call back to the interpreter there (see `readShares` in `share-table.ts`).

  /** Per host: live, free slots, free memory; the live hosts' loads, their sums and initial figures. */
  #readHosts(): void {
    for (let h = 0; h < this.H; h++) {
      const host = this.hosts[h]!
      this.live[h] = host.draining ? 0 : 1
      this.free[h] = Math.floor(host.slots) - this.m.running[h]!
      this.mem[h] = host.memFreeBytes
      if (!host.draining) {
        const l = this.load[h]!
        this.#sums[0]! += l
        this.#sums[1]! += l * l
        this.n++
        this.initialLoads[host.hostId] = l
        this.initialNoise[host.hostId] = this.m.noise[h]!
      }
    }
  }

  /** Running spread shares: their counts per job and host, the list, and each job's first share. */
  #readSpread(): void {
    const { flags, hostOf, jobOf } = this.t
    const S = hostOf.length
    for (let i = 0; i < S; i++) {
      const h = hostOf[i]!
      if (!(flags[i]! & SPREAD) || h < 0) continue
      const j = jobOf[i]!
      this.spreadCounts(j)[h]! += 1
      this.spreadShares.push(i)
      if (this.spreadProbe[j]! < 0) {
        this.spreadProbe[j] = i
        this.spreadJobs.push(j)
      }
    }
  }

  get sum(): number {
    return this.#sums[0]!
  }

  get sumSq(): number {
    return this.#sums[1]!
  }

  spreadCounts(job: number): Int32Array {
    let c = this.spreadCount[job]
    if (!c) {
      c = new Int32Array(this.H)
      this.spreadCount[job] = c
    }
    return c
  }

  classOf(i: number): ShareClass {
    return this.t.classes[this.t.cls[i]!]!
  }

  /** May host `h` ever run shares of eligibility class `e` (processor and tags), ignoring drain, slots and memory? */
  qualifies(h: number, e: number): boolean {
    if (e >= this.qualMemo.length) return qualifies(this.hosts[h]!, this.t.eligibility[e]!)
    let row = this.qualMemo[e]
    if (!row) this.qualMemo[e] = row = new Uint8Array(this.H)
    let q = row[h]!
    if (q === 0) row[h] = q = qualifies(this.hosts[h]!, this.t.eligibility[e]!) ? 2 : 1
    return q === 2
  }

  eligible(h: number, e: number): boolean {
    return this.live[h] === 1 && this.qualifies(h, e)
  }

  /** Live hosts that qualify for eligibility class `e`: the divisor of the spread cap. */
  eligibleCount(e: number): number {
    let c = this.eligibleCounts[e]!
    if (c < 0) {
      c = 0
      for (let h = 0; h < this.H; h++) if (this.eligible(h, e)) c++
      this.eligibleCounts[e] = c
    }
    return c
  }

  /** Most shares of spread job `job` (eligibility class `e`) per host; `extra` counts shares about to be created. */
  spreadCap(job: number, e: number, extra = 0): number {
    return spreadCap(this.jobTotal[job]! + extra, this.eligibleCount(e))
  }

  /** Could a share of class `c` (or a new share of its job) go to `h` now: eligible, free slot, memory, spread. */
  fits(h: number, c: ShareClass, extraShares = 0): boolean {
    if (this.free[h]! <= 0 || !this.eligible(h, c.elig)) return false
    if (c.memoryBytes > this.mem[h]!) return false
    if (c.spreadJob >= 0 && this.spreadCounts(c.spreadJob)[h]! >= this.spreadCap(c.spreadJob, c.elig, extraShares)) return false
    return true
  }

  /** Expected units/s of a new one-core share on `h`, relative (core speed × contention after). */
  newShareSpeed(h: number, demand: number): number {
    return this.m.coreSpeed[h]! * contention(this.load[h]! + demand / this.m.cores[h]!)
  }

  /** Is host `a` a better home than `b` for a new share of `demand` (faster, less loaded, id)? */
  betterHome(a: number, b: number, demand: number): boolean {
    const sa = this.newShareSpeed(a, demand)
    const sb = this.newShareSpeed(b, demand)
    if (Math.abs(sa - sb) > EPS) return sa > sb
    const la = this.load[a]! + demand / this.m.cores[a]!
    const lb = this.load[b]! + demand / this.m.cores[b]!
    if (Math.abs(la - lb) > EPS) return la < lb
    return this.rank[a]! < this.rank[b]!
  }

  /**
   * Core speed of `t` for moving or splitting work from `src`: its known speed, or the source's
   * when unknown (an idle host shows no speed; assume it no faster than where the work is).
   */
  speedFor(t: number, src: number): number {
    return this.m.speedKnown[t] ? this.m.coreSpeed[t]! : this.m.coreSpeed[src]!
  }

  /** Units/s of running share `i` on host `h`: measured, else estimated (0 when unknown). */
  rateOn(i: number, h: number): number {
    const u = this.t.unitsPerSec[i]!
    if (u > 0) return u
    return estimateRate(this.m, this.t.jobOf[i]!, h, this.load[h]!)
  }

  /** Adds share `i` (or a new share of its job), of `demand` cores, to host `t` in the plan's accounting. */
  take(t: number, i: number, demand: number): void {
    this.free[t]! -= 1
    this.mem[t]! -= this.shares[i]!.memoryBytes ?? 0
    this.shiftLoad(t, demand)
    if (this.t.flags[i]! & SPREAD) this.spreadCounts(this.t.jobOf[i]!)[t]! += 1
  }

  shiftLoad(h: number, demand: number): void {
    const before = this.load[h]!
    const after = before + demand / this.m.cores[h]!
    this.load[h] = after
    this.sd[h]! += demand
    if (this.live[h] === 1) {
      this.#sums[0]! += after - before
      this.#sums[1]! += after * after - before * before
    }
  }

  migrate(i: number, src: number, t: number, reason: MoveReason, goodness: number, cost: number): void {
    const s = this.shares[i]!
    const d = this.t.demand[i]!
    this.used[i] = 1
    this.take(t, i, d)
    this.shiftLoad(src, -d)
    if (this.t.flags[i]! & SPREAD) this.spreadCounts(this.t.jobOf[i]!)[src]! -= 1
    this.inflight[src]! += 1
    this.inflight[t]! += 1
    this.moves++
    this.actions.push({ kind: 'migrate', shareId: s.shareId, fromHost: this.hosts[src]!.hostId, toHost: this.hosts[t]!.hostId, reason, goodness, cost })
  }
}
