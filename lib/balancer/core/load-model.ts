/**
 * The load model the balancing policy reasons with, built from a `ClusterView` in one pass over
 * its shares (indexes by host, per-host aggregates), so that `decide` never loops hosts × shares.
 *
 * Load. For each host, demand = Σ cpuDemand of its running shares + externalLoad × cores (a share
 * whose cpuDemand is unknown, 0, counts as one core: a just-started CPU-bound share), and
 * normalised load L = demand / cores. Both figures arrive smoothed, with their noise (the standard
 * deviation of one reading, `load-history.ts`); L's noise combines them as independent. L above 1 means the runnable work wants more CPU than the
 * host has; the model then assumes fair time-sharing, so each share runs at 1/L of its
 * uncontended speed (`contention`). Imbalance σ = standard deviation of L over the hosts that are
 * not draining.
 *
 * Speed. Hosts differ in per-core speed and jobs in work per unit, so rates are only comparable
 * within a job. From every running share with a measured rate r on host h the model takes its
 * uncontended rate u = r / contention(L_h) and fits u ≈ jobRate_j × k_h (k_h: the host's relative
 * core speed) by a few rounds of alternating averages — jobRate_j = mean of u / k_h over the job's
 * shares, k_h = mean of u / jobRate_j over the host's — starting from the view's `coreSpeed` hints
 * (else 1), which anchors the scale across cycles. A host with no measured share keeps its hint;
 * without one its speed is unknown: taken as 1 for ranking, but as the source's own speed wherever
 * the policy would move or split work on the strength of it (a host that went idle must not look
 * fast just because nothing runs there to show it is slow).
 * A share of job j on host h at load L is expected to run at jobRate_j × k_h × contention(L).
 *
 * Migration cost. Expected stun = stunBaseMs + stunMsPerMiB × checkpoint MiB (defaults 5 ms and
 * 40 ms/MiB until the shell has learned better from measured migrations).
 *
 * Must never import NATS, timers or the clock.
 */

import type { ClusterView, HostView } from './cluster-view.ts'
import { MAX_EXTERNAL_DEMAND } from './external-demand.ts'
import { Scratch } from './scratch.ts'
import { BUSY, buildShareTable, noiseOf, shareDemand, type ShareTable } from './share-table.ts'

export const MiB = 2 ** 20
export const DEFAULT_STUN_BASE_MS = 5
export const DEFAULT_STUN_MS_PER_MIB = 40
/** Rounds of the alternating fit of job rates and host core speeds. */
const SPEED_FIT_ROUNDS = 10

export interface LoadModel {
  readonly hostIndex: ReadonlyMap<string, number>
  /** The view's shares as typed arrays (`share-table.ts`). */
  readonly table: ShareTable
  /** Cores per host, at least a tiny positive number so loads stay finite. */
  readonly cores: Float64Array
  /** Σ demand of the host's running shares (cores). */
  readonly shoalDemand: Float64Array
  /** Normalised load per host (draining hosts included). */
  readonly load: Float64Array
  /**
   * Noise of `load`: the standard deviation of one reading, from the host's external noise and its
   * shares' demand noise, taken as independent.
   */
  readonly noise: Float64Array
  /** Running shares per host, busy ones included. */
  readonly running: Int32Array
  /** Busy (migrating or splitting) shares per host. */
  readonly busy: Int32Array
  /**
   * Indexes into `view.shares` of each host's running shares, in view order: those of host h are
   * `onList[onStart[h] .. onStart[h + 1])` (one array for all hosts, not an array per host).
   */
  readonly onStart: Int32Array
  readonly onList: Int32Array
  /** Relative per-core speed per host (1 when unknown). */
  readonly coreSpeed: Float64Array
  /** Whether `coreSpeed` is known: measured from shares running there now, or hinted by the view. */
  readonly speedKnown: Uint8Array
  /** Per job: uncontended units/s of one share on a core of speed 1 (absent: never measured). */
  readonly jobRate: ReadonlyMap<string, number>
  /** `jobRate` by job index of the table; `rateKnown` says which jobs have one. */
  readonly rateOfJob: Float64Array
  readonly rateKnown: Uint8Array
  /** Shares per job in the view (pending and running). */
  readonly jobShares: ReadonlyMap<string, number>
  /** Running shares whose host is not in the view (the shell should have made them pending). */
  readonly orphans: number
}

export { shareDemand }

/** Fraction of its uncontended speed a share gets on a host at normalised load `load`. */
export function contention(load: number): number {
  return load > 1 ? 1 / load : 1
}

/** Useful Shoal work per second on a host (in cores of speed 1): demand × core speed × contention. */
export function hostThroughput(coreSpeed: number, shoalDemand: number, load: number): number {
  return shoalDemand * coreSpeed * contention(load)
}

/** Expected stun of migrating a share with a checkpoint of `bytes`, in ms. */
export function expectedStunMs(bytes: number, view: Pick<ClusterView, 'stunBaseMs' | 'stunMsPerMiB'>): number {
  const base = view.stunBaseMs ?? DEFAULT_STUN_BASE_MS
  const perMiB = view.stunMsPerMiB ?? DEFAULT_STUN_MS_PER_MIB
  return Math.max(0, base) + Math.max(0, perMiB) * (Math.max(0, bytes) / MiB)
}

/** Population standard deviation from Σx, Σx² and n (0 for n = 0; never NaN from rounding). */
export function stdDev(sum: number, sumSq: number, n: number): number {
  if (n <= 0) return 0
  const mean = sum / n
  return Math.sqrt(Math.max(0, sumSq / n - mean * mean))
}

export function hostCores(h: HostView): number {
  return h.cores > 0 ? h.cores : 1e-9
}

/**
 * Clamps an external load to 0..MAX_EXTERNAL_DEMAND (a demand inferred on saturated CPUs may pass
 * 1; a noisy sampler may read slightly out of range).
 */
export function externalLoadOf(h: HostView): number {
  return Math.min(MAX_EXTERNAL_DEMAND, Math.max(0, Number.isFinite(h.externalLoad) ? h.externalLoad : 0))
}

/**
 * Builds the model in O(hosts + shares): one pass over the share objects (`buildShareTable`), the
 * rest over typed arrays. Every sum is taken in view order, as it always was, so the figures are
 * the same to the last bit. Per-share arrays come from `scratch` (`scratch.ts`): the model is
 * valid until the next build from the same scratch.
 *
 * Each long loop is a function of its own with nothing after the loop (see `readShares` in
 * `share-table.ts`): V8 keeps the code it compiled for a loop during the first call, and code after
 * the loop that had not run by then would send the next calls back to the interpreter.
 */
export function buildLoadModel(view: ClusterView, scratch: Scratch = new Scratch()): LoadModel {
  const H = view.hosts.length
  const hostIndex = new Map<string, number>()
  const cores = new Float64Array(H)
  indexHosts(view.hosts, hostIndex, cores)

  const table = buildShareTable(view, hostIndex, scratch)
  const S = table.hostOf.length
  const shoalDemand = new Float64Array(H)
  const noiseSq = new Float64Array(H)
  const running = new Int32Array(H)
  const busy = new Int32Array(H)
  sumByHost(table, running, busy, shoalDemand, noiseSq)
  // Each host's shares in one array, by a counting sort on the host (stable: view order within a host).
  const onStart = new Int32Array(H + 1)
  onStart.set(running, 1)
  accumulate(onStart)
  const onList = scratch.int32('onList', onStart[H]!)
  listByHost(table.hostOf, onStart.slice(0, H), onList)
  const load = new Float64Array(H)
  const noise = new Float64Array(H)
  hostLoads(view.hosts, cores, shoalDemand, noiseSq, load, noise)

  // Speeds: fit u ≈ jobRate_j × k_h over the measured shares by alternating averages, starting from
  // the hints (else 1) so the scale stays that of earlier cycles. Jobs are not spread evenly over
  // hosts, so one pass is not enough to tell a slow host from a slow job. The rounds do not stop
  // early: the fit does not reach a fixed point to the last bit within them, and stopping at a
  // tolerance would change the speeds reported and every decision taken from them.
  // Typed arrays, filled once: at 100,000 shares this loop runs a million times per cycle.
  const measured: Measured = { host: scratch.int32('mHost', S), job: scratch.int32('mJob', S), u: scratch.float64('mU', S) }
  const J = table.jobIds.length
  const jN = new Int32Array(J)
  // Measured jobs in order of their first measured share: the order `jobRate` has always had.
  const measuredJobs: number[] = []
  const M = measure(table, load, measured, jN, measuredJobs)
  const kN = new Int32Array(H)
  countKeys(measured.host, M, kN, 0)
  const coreSpeed = new Float64Array(H)
  const speedKnown = new Uint8Array(H)
  speedHints(view.hosts, kN, coreSpeed, speedKnown)
  // Each job's sum and each host's sum is taken over its own shares in view order, as always (so
  // the figures are the same to the last bit), but from copies grouped by job and by host: a sum
  // then runs in a register over consecutive memory instead of read-modify-writes scattered over
  // `rate` and `kSum` (the fit is 20 passes over every measured share: 20 million steps at 1,000,000).
  const byJob = groupMeasured(scratch, 'job', M, jN, measured.job, measured.host, measured.u)
  const byHost = groupMeasured(scratch, 'host', M, kN, measured.host, measured.job, measured.u)
  const rate = new Float64Array(J)
  fitSpeeds(measuredJobs, jN, byJob, kN, byHost, rate, coreSpeed)
  const rateOfJob = new Float64Array(J)
  const rateKnown = new Uint8Array(J)
  const jobRate = new Map<string, number>()
  for (const j of measuredJobs) {
    rateOfJob[j] = rate[j]!
    rateKnown[j] = 1
    jobRate.set(table.jobIds[j]!, rate[j]!)
  }
  const jobShares = new Map<string, number>()
  for (let j = 0; j < J; j++) jobShares.set(table.jobIds[j]!, table.jobCount[j]!)

  return new Model(hostIndex, table, cores, shoalDemand, load, noise, running, busy, onStart, onList, coreSpeed, speedKnown, jobRate, rateOfJob, rateKnown, jobShares, table.orphans)
}

/** A class, not an object literal, for the reason `Table` in `share-table.ts` gives. */
class Model implements LoadModel {
  constructor(
    readonly hostIndex: ReadonlyMap<string, number>,
    readonly table: ShareTable,
    readonly cores: Float64Array,
    readonly shoalDemand: Float64Array,
    readonly load: Float64Array,
    readonly noise: Float64Array,
    readonly running: Int32Array,
    readonly busy: Int32Array,
    readonly onStart: Int32Array,
    readonly onList: Int32Array,
    readonly coreSpeed: Float64Array,
    readonly speedKnown: Uint8Array,
    readonly jobRate: ReadonlyMap<string, number>,
    readonly rateOfJob: Float64Array,
    readonly rateKnown: Uint8Array,
    readonly jobShares: ReadonlyMap<string, number>,
    readonly orphans: number,
  ) {}
}

function indexHosts(hosts: readonly HostView[], hostIndex: Map<string, number>, cores: Float64Array): void {
  for (let h = 0; h < hosts.length; h++) {
    const host = hosts[h]!
    hostIndex.set(host.hostId, h)
    cores[h] = hostCores(host)
  }
}

/** Per host: its running shares, the busy ones, Σ demand and Σ demand noise², in view order. */
function sumByHost(table: ShareTable, running: Int32Array, busy: Int32Array, shoalDemand: Float64Array, noiseSq: Float64Array): void {
  const { hostOf, flags, demand, demandNoise } = table
  const S = hostOf.length
  for (let i = 0; i < S; i++) {
    const h = hostOf[i]!
    if (h < 0) continue
    running[h]! += 1
    if (flags[i]! & BUSY) busy[h]! += 1
    shoalDemand[h]! += demand[i]!
    const dn = demandNoise[i]!
    noiseSq[h]! += dn * dn
  }
}

/** Running prefix sums in place: a[k + 1] += a[k]. */
function accumulate(a: Int32Array): void {
  for (let k = 0; k + 1 < a.length; k++) a[k + 1]! += a[k]!
}

/** `into[key[x] + offset] += 1` for the first `n` keys. */
function countKeys(key: Int32Array, n: number, into: Int32Array, offset: number): void {
  for (let x = 0; x < n; x++) into[key[x]! + offset]! += 1
}

/** Each running share's index at its host's next place (`fill` starts at each host's first). */
function listByHost(hostOf: Int32Array, fill: Int32Array, onList: Int32Array): void {
  const S = hostOf.length
  for (let i = 0; i < S; i++) {
    const h = hostOf[i]!
    if (h >= 0) onList[fill[h]!++] = i
  }
}

function hostLoads(hosts: readonly HostView[], cores: Float64Array, shoalDemand: Float64Array, noiseSq: Float64Array, load: Float64Array, noise: Float64Array): void {
  for (let h = 0; h < hosts.length; h++) {
    const host = hosts[h]!
    load[h] = (shoalDemand[h]! + externalLoadOf(host) * cores[h]!) / cores[h]!
    const en = noiseOf(host.externalNoise)
    noise[h] = Math.sqrt(en * en + noiseSq[h]! / (cores[h]! * cores[h]!))
  }
}

/** The measured running shares (host, job, uncontended rate), in view order. */
interface Measured {
  host: Int32Array
  job: Int32Array
  u: Float64Array
}

/** Fills `m` with the running shares that have a measured rate, counts them per job; returns how many. */
function measure(table: ShareTable, load: Float64Array, m: Measured, jN: Int32Array, measuredJobs: number[]): number {
  const { hostOf, unitsPerSec, jobOf } = table
  const { host: mHost, job: mJob, u: mU } = m
  const S = hostOf.length
  let M = 0
  for (let i = 0; i < S; i++) {
    const h = hostOf[i]!
    if (h < 0 || !(unitsPerSec[i]! > 0)) continue
    const j = jobOf[i]!
    if (jN[j] === 0) measuredJobs.push(j)
    jN[j]! += 1
    mHost[M] = h
    mJob[M] = j
    mU[M] = unitsPerSec[i]! / contention(load[h]!)
    M++
  }
  return M
}

/** Starting speeds: the view's hint, else 1; known when hinted or measured. */
function speedHints(hosts: readonly HostView[], kN: Int32Array, coreSpeed: Float64Array, speedKnown: Uint8Array): void {
  for (let h = 0; h < hosts.length; h++) {
    const hint = hosts[h]!.coreSpeed
    const hinted = hint !== undefined && hint > 0
    coreSpeed[h] = hinted ? hint : 1
    speedKnown[h] = kN[h]! > 0 || hinted ? 1 : 0
  }
}

/** The alternating fit: SPEED_FIT_ROUNDS rounds of job rates from host speeds, then host speeds from job rates. */
function fitSpeeds(measuredJobs: readonly number[], jN: Int32Array, byJob: Grouped, kN: Int32Array, byHost: Grouped, rate: Float64Array, coreSpeed: Float64Array): void {
  const { start: jStart, other: jHost, u: jU } = byJob
  const { start: hStart, other: hJob, u: hU } = byHost
  const H = coreSpeed.length
  for (let round = 0; round < SPEED_FIT_ROUNDS; round++) {
    for (const j of measuredJobs) {
      let sum = 0
      const end = jStart[j + 1]!
      for (let y = jStart[j]!; y < end; y++) sum += jU[y]! / coreSpeed[jHost[y]!]!
      rate[j] = sum / jN[j]!
    }
    for (let h = 0; h < H; h++) {
      if (!(kN[h]! > 0)) continue
      let sum = 0
      const end = hStart[h + 1]!
      for (let z = hStart[h]!; z < end; z++) sum += hU[z]! / rate[hJob[z]!]!
      coreSpeed[h] = sum / kN[h]!
    }
  }
}

/** Measured shares regrouped by a key: group k is `start[k] .. start[k + 1]` of `other` and `u`. */
interface Grouped {
  start: Int32Array
  other: Int32Array
  u: Float64Array
}

/**
 * The measured shares (`key`, `other`, `u` per share, in view order) regrouped by `key` from 0 to
 * `count.length` − 1 (`count`: how many shares each key has), view order kept within a group.
 */
function groupMeasured(scratch: Scratch, name: string, M: number, count: Int32Array, key: Int32Array, other: Int32Array, u: Float64Array): Grouped {
  const keys = count.length
  const start = new Int32Array(keys + 1)
  start.set(count, 1)
  accumulate(start)
  const g: Grouped = { start, other: scratch.int32(`fit.${name}.other`, M), u: scratch.float64(`fit.${name}.u`, M) }
  scatter(M, key, other, u, start.slice(0, keys), g)
  return g
}

function scatter(M: number, key: Int32Array, other: Int32Array, u: Float64Array, fill: Int32Array, g: Grouped): void {
  const { other: gOther, u: gU } = g
  for (let x = 0; x < M; x++) {
    const y = fill[key[x]!]!++
    gOther[y] = other[x]!
    gU[y] = u[x]!
  }
}

/**
 * Expected units/s of a share of job `job` (index in the table) on host `h` once that host is at
 * normalised load `loadAfter`; 0 when the job has never been measured.
 */
export function estimateRate(model: LoadModel, job: number, h: number, loadAfter: number): number {
  if (!model.rateKnown[job]) return 0
  return model.rateOfJob[job]! * model.coreSpeed[h]! * contention(loadAfter)
}
