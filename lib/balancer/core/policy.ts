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
 * Must never import NATS, timers or the clock, nor call Math.random.
 */

import type { Action, ClusterView, HostView, Knobs, MoveReason, Plan, ShareView } from './cluster-view.ts'
import { minGoodness, toleratedImbalance, toleratedLoadGap } from './drs-threshold.ts'
import { qualifies, spreadCap } from './eligibility.ts'
import { Heap, HostHeap } from './heap.ts'
import {
  buildLoadModel,
  contention,
  DEFAULT_STUN_BASE_MS,
  estimateRate,
  expectedStunMs,
  hostThroughput,
  shareDemand,
  stdDev,
  type LoadModel,
} from './load-model.ts'

export type { Action, ClusterView, HostView, Knobs, MoveReason, Plan, ShareView } from './cluster-view.ts'
export { drsPriority, minGoodness, toleratedImbalance, toleratedLoadGap } from './drs-threshold.ts'

/** Split fractions are kept within these bounds. */
export const SPLIT_FRACTION_MIN = 0.1
export const SPLIT_FRACTION_MAX = 0.9
/** Placement key weight of one share of a spread job already on a host (above any speed difference). */
const SPREAD_WEIGHT = 1e6
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
/** A host with less than this fraction of its memory free is under memory pressure. */
export const MEM_PRESSURE_FREE = 0.05
/** A split's tail must add at least this part of its own throughput to its host's Shoal throughput. */
export const MIN_SPLIT_GAIN = 0.5
/** A balancing move must win back this many times the work its stun loses. */
export const MOVE_PAYBACK = 2

const EPS = 1e-9

/** A balancing strategy as a function type (the shell depends on this, tests may pass another). */
export type BalancingPolicy = (view: ClusterView, knobs: Knobs, now: number, rng?: () => number) => Plan

/**
 * Plans one balancing cycle. Pure and deterministic; `rng` is accepted for strategies that need one
 * and unused here (ties are broken by id).
 */
export function decide(view: ClusterView, knobs: Knobs, now: number, _rng?: () => number): Plan {
  return new Planner(view, knobs, now).run()
}

/** Expected finish-time-equalising tail fraction for source and target speeds (units/s), unclamped. */
export function equalisingFraction(sourceRate: number, targetRate: number): number {
  return targetRate / (sourceRate + targetRate)
}

const tagKeys = new WeakMap<object, string>()
function tagsKey(tags: Readonly<Record<string, string>> | undefined): string {
  if (!tags) return ''
  let k = tagKeys.get(tags)
  if (k === undefined) {
    k = Object.entries(tags)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([a, b]) => `${a}=${b}`)
      .join('\u0002')
    tagKeys.set(tags, k)
  }
  return k
}

/** Same required tags (same object, or the same keys and values): cheaper than building their key. */
function sameTags(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>> | undefined): boolean {
  if (a === b) return true
  if (!a || !b) return false
  let n = 0
  for (const k in a) {
    if (a[k] !== b[k]) return false
    n++
  }
  for (const _ in b) n--
  return n === 0
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : String(x)
}

class Planner {
  readonly view: ClusterView
  readonly knobs: Knobs
  readonly now: number
  readonly m: LoadModel
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
  readonly used: Uint8Array
  readonly jobTotal: Map<string, number>
  /** Per spread job: its running and planned shares per host. */
  readonly spreadCount = new Map<string, Int32Array>()
  /** Per spread job: one of its running shares (processor and tags are the job's). */
  readonly spreadProbe = new Map<string, ShareView>()
  readonly eligibleCountCache = new Map<string, number>()
  readonly classKeys: (string | undefined)[]
  readonly jobEligible = new Map<string, { processor: string; tags: ShareView['requiredTags']; count: number }>()
  readonly jobClass = new Map<string, { processor: string; tags: ShareView['requiredTags']; memoryBytes: number | undefined; spread: boolean | undefined; key: string }>()
  sum = 0
  sumSq = 0
  n = 0
  moves = 0
  readonly actions: Action[] = []
  readonly reasons: string[] = []
  readonly waiting: Record<string, string> = {}
  readonly initialLoads: Record<string, number> = {}
  readonly initialNoise: Record<string, number> = {}
  readonly sigma0: number
  readonly maxMoves: number
  readonly maxConc: number

  constructor(view: ClusterView, knobs: Knobs, now: number) {
    this.view = view
    this.knobs = knobs
    this.now = now
    this.hosts = view.hosts
    this.shares = view.shares
    this.H = view.hosts.length
    this.m = buildLoadModel(view)
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
    for (let h = 0; h < H; h++) {
      const host = this.hosts[h]!
      this.live[h] = host.draining ? 0 : 1
      this.free[h] = Math.floor(host.slots) - this.m.running[h]!
      this.mem[h] = host.memFreeBytes
      if (!host.draining) {
        const l = this.load[h]!
        this.sum += l
        this.sumSq += l * l
        this.n++
        this.initialLoads[host.hostId] = l
        this.initialNoise[host.hostId] = this.m.noise[h]!
      }
    }
    this.sigma0 = stdDev(this.sum, this.sumSq, this.n)
    this.used = new Uint8Array(this.shares.length)
    this.classKeys = new Array(this.shares.length)
    this.jobTotal = new Map(this.m.jobShares)
    for (let i = 0; i < this.shares.length; i++) {
      const s = this.shares[i]!
      if (!s.spread || s.status !== 'running' || s.host === null) continue
      const h = this.m.hostIndex.get(s.host)
      if (h === undefined) continue
      this.spreadCounts(s.jobId)[h]! += 1
      if (!this.spreadProbe.has(s.jobId)) this.spreadProbe.set(s.jobId, s)
    }
  }

  run(): Plan {
    const T = this.knobs.migrationThreshold
    this.mandatory()
    this.place()
    this.split()
    if (T >= 2) this.balance()
    else this.reasons.push('threshold 1: no balancing moves (mandatory moves, placements and splits only)')
    if (this.m.orphans > 0) this.reasons.push(`${this.m.orphans} running shares name a host that is not in the view (ignored)`)
    const coreSpeeds: Record<string, number> = {}
    for (let h = 0; h < this.H; h++) {
      const hv = this.hosts[h]!
      // Measured this cycle: a speed that is only the view's hint is not reported back as news.
      if (this.m.speedKnown[h] && !(hv.coreSpeed !== undefined && this.m.coreSpeed[h] === hv.coreSpeed)) coreSpeeds[hv.hostId] = this.m.coreSpeed[h]!
    }
    return {
      actions: this.actions,
      normalisedLoads: this.initialLoads,
      loadNoise: this.initialNoise,
      coreSpeeds,
      imbalance: this.sigma0,
      toleratedImbalance: toleratedImbalance(T, this.n),
      projectedImbalance: stdDev(this.sum, this.sumSq, this.n),
      reasons: this.reasons,
      waiting: this.waiting,
    }
  }

  // ------------------------------------------------------------------ helpers

  spreadCounts(jobId: string): Int32Array {
    let c = this.spreadCount.get(jobId)
    if (!c) {
      c = new Int32Array(this.H)
      this.spreadCount.set(jobId, c)
    }
    return c
  }

  /** May host `h` ever run `s` (processor and tags), ignoring drain, slots and memory? */
  qualifies(h: number, s: ShareView): boolean {
    const host = this.hosts[h]!
    return qualifies(host, s)
  }

  eligible(h: number, s: ShareView): boolean {
    return this.live[h] === 1 && this.qualifies(h, s)
  }

  /** Live hosts that qualify for `s`: the divisor of the spread cap. */
  eligibleCount(s: ShareView): number {
    // Per job first (no string to build), then by processor and tags across jobs.
    const mine = this.jobEligible.get(s.jobId)
    if (mine && mine.processor === s.processor && sameTags(mine.tags, s.requiredTags)) return mine.count
    const key = `${s.processor}\u0001${tagsKey(s.requiredTags)}`
    let c = this.eligibleCountCache.get(key)
    if (c === undefined) {
      c = 0
      for (let h = 0; h < this.H; h++) if (this.eligible(h, s)) c++
      this.eligibleCountCache.set(key, c)
    }
    this.jobEligible.set(s.jobId, { processor: s.processor, tags: s.requiredTags, count: c })
    return c
  }

  /** Most shares of a spread job per host; `extra` counts shares about to be created. */
  spreadCap(s: ShareView, extra = 0): number {
    return spreadCap((this.jobTotal.get(s.jobId) ?? 0) + extra, this.eligibleCount(s))
  }

  /** Could `s` (or a new share of its job) go to `h` now: eligible, free slot, memory, spread. */
  fits(h: number, s: ShareView, extraShares = 0): boolean {
    if (this.free[h]! <= 0 || !this.eligible(h, s)) return false
    if ((s.memoryBytes ?? 0) > this.mem[h]!) return false
    if (s.spread && this.spreadCounts(s.jobId)[h]! >= this.spreadCap(s, extraShares)) return false
    return true
  }

  /** Hosts that may run the same shares: processor, tags, memory need and (spread) job. */
  classKey(i: number): string {
    let k = this.classKeys[i]
    if (k === undefined) {
      const s = this.shares[i]!
      // Shares of one job almost always carry the same fields: reuse the job's last key when they
      // match (100,000 fresh strings a cycle are most of the garbage a large view makes).
      const last = this.jobClass.get(s.jobId)
      if (last && last.processor === s.processor && sameTags(last.tags, s.requiredTags) && last.memoryBytes === s.memoryBytes && last.spread === s.spread) k = last.key
      else {
        k = `${s.processor}\u0001${tagsKey(s.requiredTags)}\u0001${s.memoryBytes ?? 0}${s.spread ? `\u0001${s.jobId}` : ''}`
        this.jobClass.set(s.jobId, { processor: s.processor, tags: s.requiredTags, memoryBytes: s.memoryBytes, spread: s.spread, key: k })
      }
      this.classKeys[i] = k
    }
    return k
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
    const s = this.shares[i]!
    if (s.unitsPerSec > 0) return s.unitsPerSec
    return estimateRate(this.m, s.jobId, h, this.load[h]!)
  }

  /** Adds a share of `demand` cores to host `t` in the planner's accounting. */
  take(t: number, s: ShareView, demand: number): void {
    this.free[t]! -= 1
    this.mem[t]! -= s.memoryBytes ?? 0
    this.shiftLoad(t, demand)
    if (s.spread) this.spreadCounts(s.jobId)[t]! += 1
  }

  shiftLoad(h: number, demand: number): void {
    const before = this.load[h]!
    const after = before + demand / this.m.cores[h]!
    this.load[h] = after
    this.sd[h]! += demand
    if (this.live[h] === 1) {
      this.sum += after - before
      this.sumSq += after * after - before * before
    }
  }

  migrate(i: number, src: number, t: number, reason: MoveReason, goodness: number, cost: number): void {
    const s = this.shares[i]!
    const d = shareDemand(s)
    this.used[i] = 1
    this.take(t, s, d)
    this.shiftLoad(src, -d)
    if (s.spread) this.spreadCounts(s.jobId)[src]! -= 1
    this.inflight[src]! += 1
    this.inflight[t]! += 1
    this.moves++
    this.actions.push({ kind: 'migrate', shareId: s.shareId, fromHost: this.hosts[src]!.hostId, toHost: this.hosts[t]!.hostId, reason, goodness, cost })
  }

  // ------------------------------------------------------------------ 1. mandatory moves

  mandatory(): void {
    const cands: Array<{ i: number; src: number; reason: MoveReason }> = []
    for (let h = 0; h < this.H; h++) {
      for (const i of this.m.sharesOn[h]!) {
        const s = this.shares[i]!
        if (s.busy) continue
        if (this.live[h] === 0) cands.push({ i, src: h, reason: 'drain' })
        else if (!this.qualifies(h, s)) cands.push({ i, src: h, reason: 'constraint' })
      }
    }
    // Spread: the shares above the cap on a live host, cheapest to move first.
    for (const [jobId, counts] of this.spreadCount) {
      const probe = this.spreadProbe.get(jobId)
      if (!probe) continue
      const cap = this.spreadCap(probe)
      for (let h = 0; h < this.H; h++) {
        if (this.live[h] === 0 || counts[h]! <= cap) continue
        const excess = counts[h]! - cap
        this.m.sharesOn[h]!
          .filter((i) => this.shares[i]!.jobId === jobId && !this.shares[i]!.busy && this.qualifies(h, this.shares[i]!))
          .sort((a, b) => this.shares[a]!.checkpointBytes - this.shares[b]!.checkpointBytes || (this.shares[a]!.shareId < this.shares[b]!.shareId ? -1 : 1))
          .slice(0, excess)
          .forEach((i) => cands.push({ i, src: h, reason: 'constraint' }))
      }
    }
    this.memoryPressure(cands)
    if (cands.length === 0) return
    cands.sort((a, b) => (a.reason === b.reason ? this.rank[a.src]! - this.rank[b.src]! || cmpId(this.shares[a.i]!, this.shares[b.i]!) : a.reason === 'drain' ? -1 : 1))

    const noRoom = new Set<string>()
    let waiting = 0
    let budget = 0
    let hostLimit = 0
    for (const { i, src, reason } of cands) {
      if (this.moves >= this.maxMoves) {
        budget++
        continue
      }
      if (this.inflight[src]! >= this.maxConc) {
        hostLimit++
        continue
      }
      const key = this.classKey(i)
      if (noRoom.has(key)) {
        waiting++
        continue
      }
      const s = this.shares[i]!
      const d = shareDemand(s)
      let best = -1
      for (let t = 0; t < this.H; t++) {
        if (t === src || this.inflight[t]! >= this.maxConc || !this.fits(t, s)) continue
        if (best < 0 || this.betterHome(t, best, d)) best = t
      }
      if (best < 0) {
        if (!s.spread) noRoom.add(key)
        waiting++
        continue
      }
      this.migrate(i, src, best, reason, 0, 0)
    }
    const planned = this.actions.length
    if (planned) this.reasons.push(`${planned} mandatory moves (drain/constraint)`)
    if (waiting) this.reasons.push(`${waiting} shares that must move (drain/constraint) wait: no eligible host has a free slot and memory`)
    if (budget) this.reasons.push(`${budget} mandatory moves wait for the move budget (maxMovesPerCycle ${this.maxMoves})`)
    if (hostLimit) this.reasons.push(`${hostLimit} mandatory moves wait: source host at maxConcurrentMigrationsPerHost (${this.maxConc})`)
  }

  /** Adds the shares that hosts under memory pressure shed (not already candidates) to `cands`. */
  memoryPressure(cands: Array<{ i: number; src: number; reason: MoveReason }>): void {
    const already = new Set(cands.map((c) => c.i))
    for (let h = 0; h < this.H; h++) {
      const host = this.hosts[h]!
      if (this.live[h] === 0 || !(host.memTotalBytes! > 0)) continue
      let short = MEM_PRESSURE_FREE * host.memTotalBytes! - host.memFreeBytes
      if (!(short > 0)) continue
      const holders = this.m.sharesOn[h]!
        .filter((i) => !already.has(i) && !this.shares[i]!.busy && (this.shares[i]!.memoryBytes ?? 0) > 0)
        .sort((a, b) => this.shares[b]!.memoryBytes! - this.shares[a]!.memoryBytes! || cmpId(this.shares[a]!, this.shares[b]!))
      let shed = 0
      for (const i of holders) {
        if (!(short > 0)) break
        cands.push({ i, src: h, reason: 'constraint' })
        short -= this.shares[i]!.memoryBytes!
        shed++
      }
      this.reasons.push(`${host.hostId} under memory pressure (${fmt(host.memFreeBytes / host.memTotalBytes!)} of its memory free): ${shed ? `${shed} shares with declared memory to move` : 'no share with declared memory to move'}`)
    }
  }

  // ------------------------------------------------------------------ 2. placement

  place(): void {
    // One lazy heap of hosts per class of share, keyed (−speed of a new share, load after, rank):
    // the fastest home first, then the least loaded, then the lowest hostId.
    const heaps = new Map<string, HostHeap>()
    // A spread job's shares go first to the hosts with the fewest of its shares (then fastest…), so
    // they spread as evenly as the hosts allow rather than only staying under the cap.
    const keyA = (h: number, s: ShareView) => (s.spread ? SPREAD_WEIGHT * this.spreadCounts(s.jobId)[h]! : 0) - this.newShareSpeed(h, 1)
    const push = (heap: HostHeap, h: number, s: ShareView) => heap.push(h, keyA(h, s), this.load[h]! + 1 / this.m.cores[h]!, this.rank[h]!)
    const unplacedWhy = new Map<string, string>()
    let placed = 0
    const unplaced = new Map<string, number>()
    for (let i = 0; i < this.shares.length; i++) {
      const s = this.shares[i]!
      if (s.status !== 'pending' || s.busy) continue
      const key = this.classKey(i)
      if (s.avoidHosts?.length) {
        // Rare (a retry after a processor failure): a scan of the hosts, outside the class heaps.
        const h = this.homeAvoiding(s)
        if (h >= 0) {
          this.used[i] = 1
          this.take(h, s, shareDemand(s))
          this.actions.push({ kind: 'place', shareId: s.shareId, hostId: this.hosts[h]!.hostId, reason: 'place' })
          placed++
        } else {
          const why = this.eligibleCount(s) === 0 ? `no live host runs processor '${s.processor}'` : 'no eligible host has a free slot and memory'
          unplaced.set(why, (unplaced.get(why) ?? 0) + 1)
          this.waiting[s.jobId] ??= why
        }
        continue
      }
      let heap = heaps.get(key)
      if (!heap) {
        heap = new HostHeap(this.H)
        for (let h = 0; h < this.H; h++) if (this.eligible(h, s)) push(heap, h, s)
        heaps.set(key, heap)
      }
      let chosen = -1
      while (heap.size > 0) {
        const h = heap.topId
        // Slots, memory and spread room only shrink during placement: a host that cannot take this
        // class now never will this cycle.
        if (!this.fits(h, s)) {
          heap.pop()
          continue
        }
        if (heap.topA !== keyA(h, s) || heap.topB !== this.load[h]! + 1 / this.m.cores[h]!) {
          heap.pop()
          push(heap, h, s)
          continue
        }
        chosen = h
        heap.pop()
        break
      }
      if (chosen < 0) {
        let why = unplacedWhy.get(key)
        if (why === undefined) {
          why = this.eligibleCount(s) === 0
            ? `no live host runs processor '${s.processor}'${s.requiredTags && Object.keys(s.requiredTags).length ? ` with tags ${tagsKey(s.requiredTags).replaceAll('\u0002', ',')}` : ''}`
            : 'no eligible host has a free slot and memory'
          unplacedWhy.set(key, why)
        }
        unplaced.set(why, (unplaced.get(why) ?? 0) + 1)
        this.waiting[s.jobId] ??= why
        continue
      }
      this.used[i] = 1
      this.take(chosen, s, shareDemand(s))
      if (this.free[chosen]! > 0) push(heap, chosen, s)
      this.actions.push({ kind: 'place', shareId: s.shareId, hostId: this.hosts[chosen]!.hostId, reason: 'place' })
      placed++
    }
    if (placed) this.reasons.push(`${placed} pending shares placed`)
    for (const [why, count] of unplaced) this.reasons.push(`${count} pending shares wait: ${why}`)
  }

  /**
   * The best home for a pending share that avoids some hosts: among the hosts it fits, those it
   * does not avoid; the avoided ones only when no live host it does not avoid qualifies at all.
   */
  homeAvoiding(s: ShareView): number {
    const avoid = new Set(s.avoidHosts)
    let others = false
    for (let h = 0; h < this.H; h++) if (this.eligible(h, s) && !avoid.has(this.hosts[h]!.hostId)) others = true
    const d = shareDemand(s)
    let best = -1
    for (let h = 0; h < this.H; h++) {
      if ((others && avoid.has(this.hosts[h]!.hostId)) || !this.fits(h, s)) continue
      if (best < 0 || this.betterHome(h, best, d)) best = h
    }
    return best
  }

  // ------------------------------------------------------------------ 3. dynamic split

  split(): void {
    if (this.idleSlots() === 0) return
    const minUnits = Math.max(1, this.knobs.splitMinUnits)
    const overheadSec = (2 * (this.view.stunBaseMs ?? DEFAULT_STUN_BASE_MS)) / 1000

    // Candidates, grouped by job (a job's shares share processor, tags and memory), longest first.
    // Numbers in typed arrays, not an object per share: at 10,000 hosts × 1,000,000 shares the
    // objects (and their garbage) were a third of decide's time (issue 12).
    let N = 0
    for (let h = 0; h < this.H; h++) N += this.m.sharesOn[h]!.length
    const cI = new Int32Array(N)
    const cSrc = new Int32Array(N)
    const cRate = new Float64Array(N)
    const cRem = new Float64Array(N)
    const longer = (a: number, b: number): boolean => cRem[a]! > cRem[b]! || (cRem[a] === cRem[b] && cmpId(this.shares[cI[a]!]!, this.shares[cI[b]!]!) < 0)
    const byJob = new Map<string, number[]>()
    let lastJob = ''
    let lastList: number[] | undefined
    let n = 0
    let unknownRate = 0
    for (let h = 0; h < this.H; h++) {
      if (this.live[h] === 0) continue
      for (const i of this.m.sharesOn[h]!) {
        const s = this.shares[i]!
        if (s.busy || this.used[i]) continue
        const remaining = s.to - s.position
        if (!(remaining >= 2 * minUnits)) continue
        const rate = this.rateOn(i, h)
        if (!(rate > 0)) {
          unknownRate++
          continue
        }
        let list = s.jobId === lastJob ? lastList : byJob.get(s.jobId)
        if (!list) byJob.set(s.jobId, (list = []))
        lastJob = s.jobId
        lastList = list
        cI[n] = i
        cSrc[n] = h
        cRate[n] = rate
        cRem[n] = remaining / rate
        list.push(n++)
      }
    }
    interface JobQ { heap: Heap<number> }
    const jobBefore = (a: JobQ, b: JobQ): boolean => longer(a.heap.peek()!, b.heap.peek()!)
    const jobs = new Heap<JobQ>(jobBefore, [...byJob.values()].map((list) => ({ heap: new Heap(longer, list) })))

    interface Idle { h: number; speed: number }
    const idleBefore = (a: Idle, b: Idle): boolean => (Math.abs(a.speed - b.speed) > EPS ? a.speed > b.speed : this.rank[a.h]! < this.rank[b.h]!)
    const idle: Idle[] = []
    for (let h = 0; h < this.H; h++) if (this.live[h] === 1 && this.free[h]! > 0) idle.push({ h, speed: this.newShareSpeed(h, 1) })
    const idleQ = new Heap(idleBefore, idle)

    let splits = 0
    let notWorth = 0
    let nothing = 0
    while (idleQ.size > 0) {
      const top = idleQ.pop()!
      const t = top.h
      if (this.free[t]! <= 0) continue
      const speedNow = this.newShareSpeed(t, 1)
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
        if (this.fits(t, this.shares[cI[c]!]!, 1)) {
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
      const plan = this.splitPlan(c, t, minUnits, overheadSec)
      if (!plan) {
        // The longest share would not finish sooner: shorter ones gain even less here.
        jobs.push(pick)
        notWorth++
        continue
      }
      pick.heap.pop()
      if (pick.heap.size > 0) jobs.push(pick)
      const s = this.shares[c.i]!
      this.used[c.i] = 1
      this.jobTotal.set(s.jobId, (this.jobTotal.get(s.jobId) ?? 0) + 1)
      this.take(t, s, shareDemand(s))
      splits++
      this.actions.push({ kind: 'split', shareId: s.shareId, hostId: this.hosts[c.src]!.hostId, toHost: this.hosts[t]!.hostId, fraction: plan.fraction, reason: 'split' })
      if (this.free[t]! > 0) idleQ.push({ h: t, speed: this.newShareSpeed(t, 1) })
    }
    if (splits) this.reasons.push(`${splits} splits into idle slots`)
    const left = this.idleSlots()
    if (left > 0) {
      const why: string[] = []
      if (nothing) why.push(`${nothing} hosts find no share to take a tail of (eligible, ≥ 2 × splitMinUnits = ${2 * minUnits} units left, not already split this cycle)`)
      if (notWorth) why.push(`${notWorth} hosts would not bring any finish forward`)
      if (unknownRate) why.push(`${unknownRate} shares of unmeasured jobs skipped`)
      this.reasons.push(`${left} idle slots left${why.length ? `: ${why.join('; ')}` : ''}`)
    }
  }

  idleSlots(): number {
    let n = 0
    for (let h = 0; h < this.H; h++) if (this.live[h] === 1 && this.free[h]! > 0) n += this.free[h]!
    return n
  }

  /** The tail fraction for splitting candidate `c` onto host `t`, or null if the split does not pay. */
  splitPlan(c: { i: number; src: number; rate: number }, t: number, minUnits: number, overheadSec: number): { fraction: number } | null {
    const s = this.shares[c.i]!
    const remaining = s.to - s.position
    const d = shareDemand(s)
    const loadAfter = this.load[t]! + d / this.m.cores[t]!
    const srcK = this.m.coreSpeed[c.src]! * contention(this.load[c.src]!)
    const perSpeed = c.rate / srcK // the share's own uncontended rate on a core of speed 1
    const vt = perSpeed * this.speedFor(t, c.src) * contention(loadAfter)
    const vs = t === c.src ? vt : c.rate
    if (!(vt > 0) || !(vs > 0)) return null
    // A free slot is idle capacity only if the tail adds work there rather than taking CPU from the
    // Shoal shares already running on that host (slots above cores on a busy host are not idle).
    const kt = this.speedFor(t, c.src)
    const gain = hostThroughput(kt, this.sd[t]! + d, loadAfter) - hostThroughput(kt, this.sd[t]!, this.load[t]!)
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

  // ------------------------------------------------------------------ 4. balancing moves

  balance(): void {
    const T = this.knobs.migrationThreshold
    const tol = toleratedImbalance(T, this.n)
    const gapTol = toleratedLoadGap(T)
    if (this.n < 2) return
    let balanceMoves = 0
    let residency = 0
    let hostLimit = 0
    let noTarget = 0
    let noGain = 0
    let unknownRate = 0
    let targetFull = 0
    let stopped = ''
    const live: number[] = []
    for (let h = 0; h < this.H; h++) if (this.live[h] === 1) live.push(h)
    for (;;) {
      const sigma = stdDev(this.sum, this.sumSq, this.n)
      let maxL = -Infinity
      let minL = Infinity
      for (const h of live) {
        maxL = Math.max(maxL, this.load[h]!)
        minL = Math.min(minL, this.load[h]!)
      }
      const gap = maxL - minL
      const minG = minGoodness(T, this.n, sigma)
      if (!(sigma > tol + EPS || gap > gapTol + EPS)) {
        stopped = `balanced: σ ${fmt(sigma)} ≤ tolerated ${fmt(tol)} and load gap ${fmt(gap)} ≤ ${fmt(gapTol)}`
        break
      }
      if (this.moves >= this.maxMoves) {
        stopped = `σ ${fmt(sigma)} (tolerated ${fmt(tol)}, load gap ${fmt(gap)}): move budget (maxMovesPerCycle ${this.maxMoves}) used up`
        break
      }
      const mean = this.sum / this.n
      const targets = live.filter((h) => this.free[h]! > 0 && this.inflight[h]! < this.maxConc).sort((a, b) => this.load[a]! - this.load[b]! || this.rank[a]! - this.rank[b]!)
      if (targets.length === 0) {
        stopped = `σ ${fmt(sigma)} (tolerated ${fmt(tol)}): no host with a free slot can take a migration`
        break
      }
      let fastestTarget = 0
      for (const h of targets) if (this.m.speedKnown[h]) fastestTarget = Math.max(fastestTarget, this.m.coreSpeed[h]!)
      const sources = live.filter((h) => this.load[h]! > mean + EPS && this.m.sharesOn[h]!.length > 0).sort((a, b) => this.load[b]! - this.load[a]! || this.rank[a]! - this.rank[b]!)
      // Per class of share, two target lists: the least loaded hosts it fits (best for σ) and the
      // ones where it would run fastest (best for throughput); two of each, so one is not the source.
      const targetOf = new Map<string, number[]>()
      const fastest = [...targets].sort((a, b) => (this.betterHome(a, b, 1) ? -1 : this.betterHome(b, a, 1) ? 1 : 0))
      let best: { i: number; src: number; t: number; goodness: number; cost: number } | undefined
      for (const src of sources) {
        if (this.inflight[src]! >= this.maxConc) {
          hostLimit++
          continue
        }
        // Nothing to win from a host whose shares get all the CPU they want, unless a target is faster.
        if (this.load[src]! - NOISE_Z * this.m.noise[src]! <= 1 + EPS && this.m.coreSpeed[src]! >= fastestTarget - EPS) {
          noGain++
          continue
        }
        for (const i of this.m.sharesOn[src]!) {
          const s = this.shares[i]!
          if (s.busy || this.used[i]) continue
          if (s.lastMovedAt !== null && this.now - s.lastMovedAt < this.knobs.minResidencyMs) {
            residency++
            continue
          }
          const key = this.classKey(i)
          let cands = targetOf.get(key)
          if (cands === undefined) {
            cands = [...firstFits(targets, (h) => this.fits(h, s), 2), ...firstFits(fastest, (h) => this.fits(h, s), 2)]
            targetOf.set(key, cands)
          }
          let any = false
          let refusal: Refusal | null = null
          for (const t of new Set(cands)) {
            if (t === src) continue
            any = true
            const cand = this.evaluate(i, src, t, minG)
            if (typeof cand === 'string') {
              refusal ??= cand
              continue
            }
            refusal = null
            if (!best || cand.goodness > best.goodness + EPS || (Math.abs(cand.goodness - best.goodness) <= EPS && (cand.cost < best.cost - EPS || (Math.abs(cand.cost - best.cost) <= EPS && (cmpId(s, this.shares[best.i]!) < 0 || (best.i === i && this.rank[t]! < this.rank[best.t]!)))))) {
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
      this.migrate(best.i, best.src, best.t, 'imbalance', best.goodness, best.cost)
      balanceMoves++
    }
    if (balanceMoves) this.reasons.push(`${balanceMoves} balancing moves (σ ${fmt(this.sigma0)} → ${fmt(stdDev(this.sum, this.sumSq, this.n))})`)
    if (stopped) this.reasons.push(stopped)
  }

  /** Goodness and cost of moving share `i` from `src` to `t`, or null if the move does not pay. */
  evaluate(i: number, src: number, t: number, minG: number): { goodness: number; cost: number } | Refusal {
    const s = this.shares[i]!
    const d = shareDemand(s)
    const cs = this.m.cores[src]!
    const ct = this.m.cores[t]!
    const ls = this.load[src]!
    const lt = this.load[t]!
    const ls2 = ls - d / cs
    const lt2 = lt + d / ct
    if ((this.sd[t]! + d) / ct > 1 + TARGET_HEADROOM + EPS) return 'target-full'
    const sigma = stdDev(this.sum, this.sumSq, this.n)
    const sigma2 = stdDev(this.sum - d / cs + d / ct, this.sumSq - ls * ls + ls2 * ls2 - lt * lt + lt2 * lt2, this.n)
    const goodness = sigma - sigma2
    if (!(goodness >= minG) || !(goodness > EPS)) return 'no-gain'
    const rate = this.rateOn(i, src)
    if (!(rate > 0)) return 'unknown-rate'
    const remainingSec = (s.to - s.position) / rate
    const stunSec = expectedStunMs(s.checkpointBytes, this.view) / 1000
    const cost = (stunSec / remainingSec) * (d / cs)
    if (!(goodness > cost)) return 'no-gain'
    const ks = this.m.coreSpeed[src]!
    const kt = this.speedFor(t, src)
    // Throughput with the figures shaded by their noise: the source lighter, the target heavier.
    const lsP = Math.max(0, ls - NOISE_Z * this.m.noise[src]!)
    const ltP = lt + NOISE_Z * this.m.noise[t]!
    const ls2P = Math.max(0, lsP - d / cs)
    const lt2P = ltP + d / ct
    const gain =
      hostThroughput(ks, this.sd[src]! - d, ls2P) + hostThroughput(kt, this.sd[t]! + d, lt2P) - hostThroughput(ks, this.sd[src]!, lsP) - hostThroughput(kt, this.sd[t]!, ltP)
    // The pool must do materially more work, not just swap which host carries the imbalance (seen
    // in bench/uneven before noise shading: a lone share moved between two idle hosts on 0.5 % of
    // stray load).
    if (!(gain >= MIN_MOVE_GAIN * d * ks * contention(lsP))) return 'no-gain'
    const rateOnTarget = (rate / (ks * contention(ls))) * kt * contention(lt2P)
    const horizonSec = (s.to - s.position) / rateOnTarget
    const lostWork = stunSec * d * ks * contention(lsP)
    if (!(gain * horizonSec > MOVE_PAYBACK * lostWork)) return 'no-gain'
    return { goodness, cost }
  }
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

function cmpId(a: ShareView, b: ShareView): number {
  return a.shareId < b.shareId ? -1 : a.shareId > b.shareId ? 1 : 0
}
