/**
 * A deterministic discrete-event model of a Shoal pool, driven by the real balancing policy.
 *
 * Hosts have cores, worker slots, a per-core speed, and background (non-Shoal) CPU demand that can
 * change over time; a host may fail. Jobs have a known number of units and a cost per unit (core-ms
 * on a core of speed 1), are split into shares at submission (all at t = 0, the balancer's
 * `splitRange`) and the shares run, migrate, split and fail over as the policy decides.
 *
 * CPU model (fair time-sharing): on a host with n running shares (one thread each, wanting a
 * core) and background demand of e cores, each thread gets min(1, cores / (n + e)) of a core. A
 * share then advances at speed × cpu × 1000 / msPerUnit units per second; rates are piecewise
 * constant between events, positions are settled lazily.
 *
 * Balancer loop, every `intervalMs` of model time (an interval pass): every running share checkpoints (its
 * position becomes its durable checkpoint); the model builds the `ClusterView` a real shell would
 * from heartbeats — rates measured over the last tick (with multiplicative noise), cpuDemand 1 for
 * a running CPU-bound share (worker busy fraction), externalLoad the background CPU the host
 * actually got (not what it wanted), stun cost as learned means, and as `coreSpeed` the last
 * speed the policy reported for the host (`Plan.coreSpeeds`) — calls the policy, and applies its
 * plan:
 *   place   → the share starts on the host after `assignDelayMs`;
 *   migrate → the share pauses at its next safe point and resumes on the target after a stun of
 *             safePointMs + stunBaseMs + stunMsPerMiB × checkpoint MiB (± stunJitter), no work lost;
 *             while in flight it shows as busy on its target;
 *   split   → at the next safe point the unprocessed tail (the share-runtime's rule:
 *             mid = pos + ceil(remaining × (1 − fraction)), at least one unit each side) becomes a
 *             new share that starts on the target after `assignDelayMs`.
 * Between intervals a freed slot triggers a kick pass (`kickDelayMs` later, coalesced), as the
 * real balancer's `kick()` places pending shares at once: same policy, fresh positions, the rates
 * and loads of the last interval, and only its `place` and `split` actions are applied.
 * Failure: a failed host's shares stop; after `hostDeadMs` they are pending again at their last
 * checkpoint (the units done since are redone); until then the host is still in the view (silent).
 *
 * The model never reads the wall clock; only the time spent inside the policy is measured, by
 * the caller-supplied `clock`, around each call. Must never tune the model to the policy's
 * estimates: the policy sees measurements, not the model's parameters.
 */

import { actionsFor, recordsCoreSpeeds } from '../../lib/balancer/core/pass-rules.ts'
import { Heap } from '../../lib/balancer/core/heap.ts'
import type { Action, BalancingPolicy, ClusterView, HostView, Knobs, ShareView } from '../../lib/balancer/core/policy.ts'
import { LoadHistory, type ReportedShare } from '../../lib/balancer/core/load-history.ts'
import { splitRange } from '../../lib/balancer/core/split-range.ts'
import { hostCapacity } from './ideal.ts'
import { heartbeatPhaseMs, NoiseSource, noiseSeed } from './noise.ts'
import { seededRng } from './rng.ts'

const MiB = 2 ** 20

export interface HostSpec {
  id: string
  cores: number
  slots: number
  /** Work per core-ms relative to the reference core. */
  speed: number
  tags?: Record<string, string>
  /** Background CPU demand in cores from `atMs` on (a list of changes; none = 0). */
  hog?: ReadonlyArray<{ atMs: number; cores: number }>
  /**
   * Stray background load that jitters like a real host's, in cores on average (`noise.ts`): drawn
   * afresh every heartbeat, with bursts. It takes CPU like any background load; the ideal makespan
   * counts its mean.
   */
  noise?: number
  failAtMs?: number
}

export interface JobSpec {
  id: string
  units: number
  /** Core-ms of work per unit on a core of speed 1. */
  msPerUnit: number
  checkpointBytes: number
  /** Shares the job is split into at submission. */
  shares: number
  spread?: boolean
}

export interface SimParams {
  intervalMs: number
  hostDeadMs: number
  assignDelayMs: number
  safePointMs: number
  stunBaseMs: number
  stunMsPerMiB: number
  /** Relative jitter of a migration's stun (uniform ±). */
  stunJitter: number
  /** Relative noise of measured rates and external load (uniform ±). */
  measureNoise: number
  /**
   * Hosts report their CPU figures this often (staggered); the shell smooths them over
   * `loadWindowMs` (`LoadHistory`, as the balancer does) before the policy sees them.
   */
  heartbeatMs: number
  loadWindowMs: number
  /**
   * A freed slot (a share done, a host declared dead) triggers a pass soon after, as the real
   * balancer's `kick()` does: this long after the first trigger (later ones coalesce), the policy
   * runs on a fresh view and its `place` and `split` actions are applied (migrations wait for the
   * interval). 0 disables kicks.
   */
  kickDelayMs: number
  /** Give up (completed: false) past this model time. */
  maxSimMs: number
  seed: number
}

export interface SimInput {
  hosts: readonly HostSpec[]
  jobs: readonly JobSpec[]
  knobs: Knobs
  params: SimParams
  policy: BalancingPolicy
  /** Wall clock in ms, used only around policy calls (performance.now). */
  clock: () => number
  /** Called at every tick before the policy, for tracing a run. */
  onTick?: (t: TickStats) => void
}

export interface TickStats {
  atMs: number
  /** Work the pool does per ms right now (core-ms of speed 1), and what it could do with all slots busy. */
  used: number
  capacity: number
  pending: number
  idleSlots: number
  running: number
}

export interface SimResult {
  completed: boolean
  makespanMs: number
  migrations: number
  migrationsByReason: Record<string, number>
  splits: number
  placements: number
  sharesCreated: number
  unitsRedone: number
  /** Actions the model could not carry out (target or source gone, share already elsewhere). */
  rejected: number
  cycles: number
  /** Kick passes (between intervals). */
  kicks: number
  /** Wall-clock ms of each policy call at an interval. */
  decideMs: number[]
  /** Shares in the view of each interval call (parallel to `decideMs`). */
  decideViewShares: number[]
  /** Wall-clock ms of each policy call in a kick pass. */
  kickDecideMs: number[]
  /** Most shares in one view and hosts in it. */
  maxViewShares: number
  maxViewHosts: number
}

type State = 'pending' | 'starting' | 'running' | 'stunned' | 'lost' | 'done'

interface SimJob {
  spec: JobSpec
  left: number
}

interface SimHost {
  spec: HostSpec
  alive: boolean
  detected: boolean
  hogCores: number
  /** Stray background load in cores right now (0 without `spec.noise`). */
  noiseCores: number
  noise: NoiseSource | null
  running: Set<SimShare>
  /** Per-thread CPU share currently applied to its running shares. */
  cpu: number
  view: HostView
}

interface SimShare {
  job: SimJob
  from: number
  to: number
  pos: number
  t0: number
  rate: number
  state: State
  host: SimHost | null
  ckPos: number
  mPos: number
  mTime: number
  measured: number
  lastMovedAt: number | null
  busyUntil: number
  gen: number
  view: ShareView
}

type NoSeq<E> = E extends unknown ? Omit<E, 'seq'> : never

type Ev =
  | { t: number; seq: number; kind: 'tick' | 'kick' }
  | { t: number; seq: number; kind: 'done' | 'arrive'; share: SimShare; gen: number }
  | { t: number; seq: number; kind: 'hog'; host: SimHost; cores: number }
  | { t: number; seq: number; kind: 'fail' | 'detect' | 'hb'; host: SimHost }

export function simulate(input: SimInput): SimResult {
  const { params: P, knobs, policy, clock } = input
  const rng = seededRng(P.seed)
  const noisy = (x: number, rel: number) => x * (1 + (rng() * 2 - 1) * rel)
  let seq = 0
  const events = new Heap<Ev>((a, b) => a.t < b.t || (a.t === b.t && a.seq < b.seq))
  const at = (e: NoSeq<Ev>) => events.push({ ...e, seq: seq++ } as Ev)

  const loads = new LoadHistory(P.loadWindowMs)
  const hosts: SimHost[] = input.hosts.map((spec, i) => ({
    spec,
    alive: true,
    detected: false,
    hogCores: 0,
    noiseCores: 0,
    noise: spec.noise ? new NoiseSource(spec.noise, seededRng(noiseSeed(P.seed, i))) : null,
    running: new Set(),
    cpu: 1,
    view: {
      hostId: spec.id,
      slots: spec.slots,
      cores: spec.cores,
      memFreeBytes: 64 * 2 ** 30,
      tags: spec.tags ?? {},
      processors: new Set(['burn']),
      draining: false,
      externalLoad: 0,
    },
  }))
  const byId = new Map(hosts.map((h) => [h.spec.id, h]))
  const shares: SimShare[] = []
  const jobs: SimJob[] = []
  let sharesLeft = 0

  function newShare(job: SimJob, from: number, to: number, at0: number): SimShare {
    const id = `${job.spec.id}-s${shares.length}`
    const s: SimShare = {
      job, from, to, pos: from, t0: at0, rate: 0, state: 'pending', host: null, ckPos: from, mPos: from, mTime: at0, measured: 0,
      lastMovedAt: null, busyUntil: 0, gen: 0,
      view: {
        shareId: id, jobId: job.spec.id, processor: 'burn', spread: job.spec.spread ?? false, status: 'pending', host: null,
        position: from, to, unitsPerSec: 0, cpuDemand: 0, checkpointBytes: job.spec.checkpointBytes, lastMovedAt: null, busy: false,
      },
    }
    shares.push(s)
    job.left++
    sharesLeft++
    return s
  }

  for (const spec of input.jobs) {
    const job: SimJob = { spec, left: 0 }
    jobs.push(job)
    for (const [from, to] of splitRange(0, spec.units, spec.shares)) newShare(job, from, to, 0)
  }
  for (const h of hosts) {
    for (const c of h.spec.hog ?? []) at({ t: c.atMs, kind: 'hog', host: h, cores: c.cores })
    if (h.spec.failAtMs !== undefined) at({ t: h.spec.failAtMs, kind: 'fail', host: h })
  }
  // Heartbeats, staggered over one period as independent hosts' are.
  hosts.forEach((h, i) => at({ t: heartbeatPhaseMs(i, hosts.length, P.heartbeatMs), kind: 'hb', host: h }))
  at({ t: 0, kind: 'tick' })

  const result: SimResult = {
    completed: false, makespanMs: Number.NaN, migrations: 0, migrationsByReason: {}, splits: 0, placements: 0,
    sharesCreated: 0, unitsRedone: 0, rejected: 0, cycles: 0, kicks: 0, decideMs: [], decideViewShares: [], kickDecideMs: [], maxViewShares: 0, maxViewHosts: 0,
  }

  const settle = (s: SimShare, now: number) => {
    if (s.state === 'running') s.pos = Math.min(s.to, s.pos + (s.rate * (now - s.t0)) / 1000)
    s.t0 = now
  }
  const schedule = (s: SimShare, now: number, h: SimHost) => {
    s.rate = (h.spec.speed * h.cpu * 1000) / s.job.spec.msPerUnit
    s.gen++
    at({ t: now + ((s.to - s.pos) / s.rate) * 1000, kind: 'done', share: s, gen: s.gen })
  }
  /** Re-applies fair sharing on `h` after its running set or background changed. */
  const hostChanged = (h: SimHost, now: number, added?: SimShare) => {
    const n = h.running.size
    const bg = h.hogCores + h.noiseCores
    const cpu = n + bg <= h.spec.cores ? 1 : h.spec.cores / (n + bg)
    if (cpu !== h.cpu) {
      for (const s of h.running) settle(s, now)
      h.cpu = cpu
      for (const s of h.running) schedule(s, now, h)
    } else if (added) {
      schedule(added, now, h)
    }
  }
  const leave = (s: SimShare, now: number) => {
    const h = s.host
    if (h && s.state === 'running') {
      settle(s, now)
      h.running.delete(s)
      s.gen++
      hostChanged(h, now)
    }
  }

  let kickPending = false
  const kick = (now: number) => {
    if (P.kickDelayMs <= 0 || kickPending) return
    kickPending = true
    at({ t: now + P.kickDelayMs, kind: 'kick' })
  }

  /** A balancer pass; at an interval (`full`) shares also measure rates and checkpoint. */
  function tick(now: number, full: boolean): void {
    // Measure, checkpoint, and refresh the view objects.
    const viewShares: ShareView[] = []
    for (const s of shares) {
      if (s.state === 'done') continue
      const v = s.view
      if (s.state === 'lost') {
        viewShares.push(v) // a silent host: its last heartbeat stands
        continue
      }
      settle(s, now)
      if (full && s.state === 'running') {
        const win = now - s.mTime
        s.measured = win >= 250 ? noisy(((s.pos - s.mPos) / win) * 1000, P.measureNoise) : 0
        s.mPos = s.pos
        s.mTime = now
        s.ckPos = s.pos
      }
      v.status = s.state === 'pending' ? 'pending' : 'running'
      v.host = s.state === 'pending' ? null : s.host!.spec.id
      v.position = s.pos
      v.to = s.to
      v.unitsPerSec = s.state === 'running' ? s.measured : 0
      v.cpuDemand = s.state === 'running' ? 1 : 0
      v.lastMovedAt = s.lastMovedAt
      v.busy = s.state === 'stunned' || s.busyUntil > now
      viewShares.push(v)
    }
    const viewHosts: HostView[] = []
    for (const h of hosts) {
      if (h.detected) continue
      const ext = loads.external(h.spec.id)
      if (ext) {
        h.view.externalLoad = ext.level
        h.view.externalNoise = ext.noise
      }
      viewHosts.push(h.view)
    }
    if (input.onTick && full) {
      let used = 0
      let capacity = 0
      let idleSlots = 0
      let running = 0
      for (const h of hosts) {
        if (!h.alive) continue
        used += h.spec.speed * h.cpu * h.running.size
        capacity += hostCapacity(h.spec, h.hogCores)
        idleSlots += Math.max(0, h.spec.slots - h.running.size)
        running += h.running.size
      }
      input.onTick({ atMs: now, used, capacity, pending: viewShares.filter((v) => v.status === 'pending').length, idleSlots, running })
    }
    const view: ClusterView = { hosts: viewHosts, shares: viewShares, stunBaseMs: P.stunBaseMs + P.safePointMs, stunMsPerMiB: P.stunMsPerMiB }
    result.maxViewShares = Math.max(result.maxViewShares, viewShares.length)
    result.maxViewHosts = Math.max(result.maxViewHosts, viewHosts.length)
    const t0 = clock()
    const plan = policy(view, knobs, now)
    const elapsed = clock() - t0
    // The balancer's own pass rules (lib/balancer/core/pass-rules.ts): what a pass of this kind
    // applies, and whether it remembers the core speeds it measured.
    const kind = full ? 'interval' : 'kick'
    if (recordsCoreSpeeds(kind)) for (const [id, k] of Object.entries(plan.coreSpeeds)) byId.get(id)!.view.coreSpeed = k
    ;(full ? result.decideMs : result.kickDecideMs).push(elapsed)
    if (full) result.decideViewShares.push(viewShares.length)
    if (full) result.cycles++
    else result.kicks++
    const actions = actionsFor(kind, plan.actions)
    const shareById = new Map<string, SimShare>()
    for (const a of actions) shareById.set(a.shareId, undefined as unknown as SimShare)
    for (const s of shares) if (s.state !== 'done' && shareById.has(s.view.shareId)) shareById.set(s.view.shareId, s)
    for (const a of actions) apply(a, shareById.get(a.shareId), now)
  }

  function apply(a: Action, s: SimShare | undefined, now: number): void {
    const target = byId.get(a.kind === 'place' ? a.hostId : a.toHost)
    if (!s || !target || target.detected) {
      result.rejected++
      return
    }
    if (a.kind === 'place') {
      if (s.state !== 'pending') return void result.rejected++
      s.state = 'starting'
      s.host = target
      s.t0 = now
      s.gen++
      result.placements++
      at({ t: now + P.assignDelayMs, kind: 'arrive', share: s, gen: s.gen })
      return
    }
    if (s.host?.spec.id !== (a.kind === 'migrate' ? a.fromHost : a.hostId) || !(s.state === 'running' || s.state === 'starting') || !s.host.alive) {
      result.rejected++
      return
    }
    if (a.kind === 'migrate') {
      leave(s, now)
      s.state = 'stunned'
      s.host = target
      s.lastMovedAt = now
      s.gen++
      const stun = P.safePointMs + noisy(P.stunBaseMs + (P.stunMsPerMiB * s.job.spec.checkpointBytes) / MiB, P.stunJitter)
      result.migrations++
      result.migrationsByReason[a.reason] = (result.migrationsByReason[a.reason] ?? 0) + 1
      at({ t: now + stun, kind: 'arrive', share: s, gen: s.gen })
      return
    }
    // split: cut at the next safe point, the tail starts on the target after an assignment.
    settle(s, now)
    const cutPos = s.state === 'running' ? Math.min(s.to, s.pos + (s.rate * P.safePointMs) / 1000) : s.pos
    const remaining = s.to - cutPos
    if (remaining < 2) return void result.rejected++
    const mid = Math.min(s.to - 1, Math.max(cutPos + 1, Math.ceil(cutPos + remaining * (1 - a.fraction))))
    const tail = newShare(s.job, mid, s.to, now)
    s.to = mid
    s.view.to = mid
    s.busyUntil = now + P.safePointMs
    if (s.state === 'running') {
      s.gen++
      at({ t: now + ((s.to - s.pos) / s.rate) * 1000, kind: 'done', share: s, gen: s.gen })
    }
    tail.state = 'starting'
    tail.host = target
    tail.gen++
    result.splits++
    at({ t: now + P.safePointMs + P.assignDelayMs, kind: 'arrive', share: tail, gen: tail.gen })
  }

  /**
   * What the host's heartbeat reports of the period now ending, as the real host measures it: its
   * CPUs' busy fraction and its own (fair time-sharing between its running shares and the
   * background), each off by up to ±measureNoise, fed to the load history.
   */
  function heartbeat(h: SimHost, now: number): void {
    const cores = h.spec.cores
    const n = h.running.size
    const bg = h.hogCores + h.noiseCores
    const g = n + bg <= cores ? 1 : cores / (n + bg)
    const shoal = Math.min(1, (n * g) / cores)
    const other = Math.max(0, noisy((bg * g) / cores, P.measureNoise))
    const reported: ReportedShare[] = []
    for (const s of h.running) reported.push({ shareId: s.view.shareId, epoch: 0, busy: 1 })
    loads.observe(now, h.spec.id, cores, { cpuMachine: Math.min(1, shoal + other), cpuShoal: shoal }, reported)
  }

  function toPending(s: SimShare, pos: number): void {
    s.state = 'pending'
    s.host = null
    s.pos = pos
    s.ckPos = pos
    s.rate = 0
    s.gen++
  }

  let now = 0
  while (events.size > 0) {
    const e = events.pop()!
    now = e.t
    if (now > P.maxSimMs) break
    switch (e.kind) {
      case 'tick':
        tick(now, true)
        if (sharesLeft > 0) at({ t: now + P.intervalMs, kind: 'tick' })
        break
      case 'kick':
        kickPending = false
        tick(now, false)
        break
      case 'done': {
        const s = e.share
        if (e.gen !== s.gen || s.state !== 'running') break
        const h = s.host!
        s.pos = s.to
        s.state = 'done'
        h.running.delete(s)
        hostChanged(h, now)
        sharesLeft--
        s.job.left--
        kick(now)
        if (sharesLeft === 0) {
          result.completed = true
          result.makespanMs = now
        }
        break
      }
      case 'arrive': {
        const s = e.share
        if (e.gen !== s.gen) break
        const h = s.host!
        if (!h.alive) {
          if (h.detected) toPending(s, s.pos)
          else {
            s.state = 'lost'
            s.ckPos = s.pos // handed over: nothing since the hand-over to lose
          }
          break
        }
        s.state = 'running'
        s.t0 = now
        s.mPos = s.pos
        s.mTime = now
        h.running.add(s)
        hostChanged(h, now, s)
        break
      }
      case 'hog': {
        const h = e.host
        if (!h.alive) break
        for (const s of h.running) settle(s, now)
        h.hogCores = e.cores
        h.cpu = Number.NaN // force a reschedule of every share on it
        hostChanged(h, now)
        break
      }
      case 'hb': {
        const h = e.host
        if (!h.alive) break
        heartbeat(h, now)
        if (h.noise) {
          const next = h.noise.next()
          if (next !== h.noiseCores) {
            for (const s of h.running) settle(s, now)
            h.noiseCores = next
            h.cpu = Number.NaN
            hostChanged(h, now)
          }
        }
        at({ t: now + P.heartbeatMs, kind: 'hb', host: h })
        break
      }
      case 'fail': {
        const h = e.host
        for (const s of h.running) {
          settle(s, now)
          s.state = 'lost'
          s.gen++
        }
        for (const s of shares) if (s.host === h && s.state === 'starting') s.state = 'lost'
        h.running.clear()
        h.alive = false
        at({ t: now + P.hostDeadMs, kind: 'detect', host: h })
        break
      }
      case 'detect': {
        const h = e.host
        h.detected = true
        for (const s of shares) {
          if (s.host !== h || s.state !== 'lost') continue
          result.unitsRedone += s.pos - s.ckPos
          toPending(s, s.ckPos)
        }
        kick(now)
        break
      }
    }
    if (result.completed) break
  }
  result.sharesCreated = shares.length
  if (result.completed) checkExactlyOnce(jobs, shares)
  return result
}

/** Every job's done shares must tile its range exactly: nothing lost, nothing counted twice. */
function checkExactlyOnce(jobs: readonly SimJob[], shares: readonly SimShare[]): void {
  for (const job of jobs) {
    const ranges = shares.filter((s) => s.job === job).map((s) => [s.from, s.to] as const).sort((a, b) => a[0] - b[0])
    let at = 0
    for (const [from, to] of ranges) {
      if (from !== at || !(to > from)) throw new Error(`simulator: job ${job.spec.id} ranges do not tile [0, ${job.spec.units}) at ${at} (got [${from}, ${to}))`)
      at = to
    }
    if (at !== job.spec.units) throw new Error(`simulator: job ${job.spec.id} covers [0, ${at}) of [0, ${job.spec.units})`)
  }
}
