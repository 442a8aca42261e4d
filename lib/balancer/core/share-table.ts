/**
 * The view's shares read once into typed arrays, so that the load model and every step of the
 * policy loop over numbers instead of a million share objects (issue 12: at 10,000 hosts ×
 * 1,000,000 shares each pass over the objects cost 50–100 ms of cache misses, each string-keyed
 * Map lookup per share as much again, and the per-share garbage a fifth of `decide`).
 *
 * Besides each share's host and job as indexes, it sorts the shares into classes: shares of one
 * class may run on exactly the same hosts (same processor, required tags, declared memory and, for
 * a spread job, the same job). The class replaces the string key the policy used to build per
 * share; a job's shares nearly always share one class, so each share is only compared with its
 * job's last one. Eligibility classes (processor and tags only) are what `qualifies` depends on.
 *
 * Must never import NATS, timers or the clock; never changes the view.
 */

import { objectArray } from './arrays.ts'
import type { ClusterView, ShareView } from './cluster-view.ts'
import { Scratch } from './scratch.ts'

/** Slots − 1 of the job-id cache `readShares` checks before its Map (a power of two less one). */
const JOB_CACHE_MASK = 1023

/** `flags` bits. */
export const PENDING = 1
export const BUSY = 2
export const SPREAD = 4
/** The share has a non-empty `avoidHosts` (a retry after a processor failure). */
export const AVOIDS = 8

/** What decides where the shares of one class may run. */
export interface ShareClass {
  /** The eligibility class: processor and required tags (index into `ShareTable.eligibility`). */
  readonly elig: number
  /** Declared memory (`memoryBytes ?? 0`). */
  readonly memoryBytes: number
  /** Job index of a spread job's class; −1 when the class does not spread. */
  readonly spreadJob: number
}

/** What `qualifies` checks a host against: a processor and the tags a job requires. */
export interface EligibilityClass {
  readonly processor: string
  readonly requiredTags?: Readonly<Record<string, string>> | undefined
}

export interface ShareTable {
  /** Host index of a running share whose host is in the view; −1 otherwise (pending, orphan). */
  readonly hostOf: Int32Array
  /** Dense job index, numbered in order of first appearance in `view.shares`. */
  readonly jobOf: Int32Array
  readonly jobIds: readonly string[]
  /** Shares per job (pending and running). */
  readonly jobCount: Int32Array
  readonly flags: Uint8Array
  /** `unitsPerSec` as given (0 = unknown). */
  readonly unitsPerSec: Float64Array
  /** `to − position`: units left. */
  readonly remaining: Float64Array
  /** Cores the share is taken to demand (`shareDemand`). */
  readonly demand: Float64Array
  /** Noise of its demand reading (`cpuDemandNoise` made finite and non-negative). */
  readonly demandNoise: Float64Array
  /** Class index per share (`classes`). */
  readonly cls: Int32Array
  readonly classes: readonly ShareClass[]
  /** Each eligibility class's processor and required tags. */
  readonly eligibility: readonly EligibilityClass[]
  /** Running shares whose host is not in the view. */
  readonly orphans: number
}

const tagKeys = new WeakMap<object, string>()
/**
 * A canonical string for a set of required tags (sorted entries, as JSON), cached per tags object.
 * JSON, not `k=v` joined: tag keys and values are any strings, and {a: 'b=c'} must never share a
 * key with {'a=b': 'c'} (the class's tags are what eligibility is checked against).
 */
export function tagsKey(tags: Readonly<Record<string, string>> | undefined): string {
  if (!tags) return ''
  let k = tagKeys.get(tags)
  if (k === undefined) {
    k = JSON.stringify(sortedTags(tags))
    tagKeys.set(tags, k)
  }
  return k
}

/** Tags as `k=v, …` sorted by key, for messages. */
export function describeTags(tags: Readonly<Record<string, string>>): string {
  return sortedTags(tags).map(([a, b]) => `${a}=${b}`).join(',')
}

function sortedTags(tags: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.entries(tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/** Same required tags (same object, or the same keys and values): cheaper than building their key. */
export function sameTags(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>> | undefined): boolean {
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

/** Cores a share is taken to demand: its measured demand, or one core when unknown (0). */
export function shareDemand(s: Pick<ShareView, 'cpuDemand'>): number {
  return s.cpuDemand > 0 ? s.cpuDemand : 1
}

/** A noise figure as a finite, non-negative number (absent: 0). */
export function noiseOf(x: number | undefined): number {
  return x !== undefined && Number.isFinite(x) && x > 0 ? x : 0
}

/**
 * Reads every share once (O(shares); a Map lookup for host and job, the rest typed). The arrays
 * come from `scratch`: a fresh one by default, the caller's to reuse them across calls.
 */
export function buildShareTable(view: ClusterView, hostIndex: ReadonlyMap<string, number>, scratch: Scratch = new Scratch()): ShareTable {
  const shares = view.shares
  const S = shares.length
  // Every array below is written for every share before it is read.
  const cols: Columns = {
    hostOf: scratch.int32('hostOf', S).fill(-1),
    jobOf: scratch.int32('jobOf', S),
    flags: scratch.uint8('flags', S),
    unitsPerSec: scratch.float64('unitsPerSec', S),
    remaining: scratch.float64('remaining', S),
    demand: scratch.float64('demand', S),
    demandNoise: scratch.float64('demandNoise', S),
    repOf: scratch.int32('repOf', S),
    reps: scratch.int32('reps', S),
    orphans: new Int32Array(1),
  }
  // The per-job arrays are borrowed at the size of the view (no more jobs than shares), so numbering
  // a job never grows one.
  const jobs: Jobs = { index: new Map(), ids: objectArray<string>(), count: scratch.int32('job.count', S), rep: scratch.int32('job.rep', S) }
  const nReps = readShares(shares, hostIndex, cols, jobs)
  const cls = scratch.int32('cls', S)
  const classes = new Classes()
  classify(shares, cols, nReps, classes, cls)
  resolve(cols.repOf, cls)
  const { hostOf, jobOf, flags, unitsPerSec, remaining, demand, demandNoise } = cols
  return new Table(hostOf, jobOf, jobs.ids, jobs.count.slice(0, jobs.ids.length), flags, unitsPerSec, remaining, demand, demandNoise, cls, classes.list, classes.eligibility, cols.orphans[0]!)
}

/**
 * The table as a class rather than an object literal: each call's literal, built again from the
 * same spot, invalidated the code compiled in the first call against the first one (V8 treats a
 * literal's fields as constant until the next one is built: `--trace-deopt` showed placement's
 * functions dropped as "code dependencies" the moment the second call's table was made).
 */
class Table implements ShareTable {
  constructor(
    readonly hostOf: Int32Array,
    readonly jobOf: Int32Array,
    readonly jobIds: readonly string[],
    readonly jobCount: Int32Array,
    readonly flags: Uint8Array,
    readonly unitsPerSec: Float64Array,
    readonly remaining: Float64Array,
    readonly demand: Float64Array,
    readonly demandNoise: Float64Array,
    readonly cls: Int32Array,
    readonly classes: readonly ShareClass[],
    readonly eligibility: readonly EligibilityClass[],
    readonly orphans: number,
  ) {}
}

/** The per-share arrays `readShares` fills. */
interface Columns {
  hostOf: Int32Array
  jobOf: Int32Array
  flags: Uint8Array
  unitsPerSec: Float64Array
  remaining: Float64Array
  demand: Float64Array
  demandNoise: Float64Array
  /** Per share: the share its class is taken from (its job's representative when it matched, else itself). */
  repOf: Int32Array
  /** The representatives in view order: the shares whose class must be worked out. */
  reps: Int32Array
  /** [0]: running shares whose host is not in the view. */
  orphans: Int32Array
}

/** Jobs numbered in order of first appearance, their share counts, and the representative their shares are compared with (−1: none yet). */
interface Jobs {
  index: Map<string, number>
  ids: string[]
  count: Int32Array
  rep: Int32Array
}

/**
 * The one pass over the share objects; returns how many representatives it listed. Alone in its
 * function: V8 compiles a long loop while it runs the first time (on-stack replacement) and keeps
 * that code for the next calls, so code after the loop, which had not run yet, would be compiled
 * blind and send the next few calls back to the interpreter there (issue 12: `--trace-deopt`
 * showed the load model deoptimising at the same places in calls 1–4, each 2–10 × slower). For
 * the same reason the loop calls no helper with a branch of its own that is rarely taken — such a
 * branch has no type feedback when the loop is compiled, and the first share to take it in the
 * next call sends the whole rest of the loop to the interpreter: a new job is numbered in the loop
 * itself, and a share that does not match its job's representative (a new class, usually) is only
 * listed, its class worked out after the loop (`classify`).
 */
function readShares(shares: readonly ShareView[], hostIndex: ReadonlyMap<string, number>, cols: Columns, jobs: Jobs): number {
  const { hostOf, jobOf, flags, unitsPerSec, remaining, demand, demandNoise, repOf, reps, orphans } = cols
  const { index: jobIndex, ids: jobIds, count: jobCount, rep: jobRep } = jobs
  const S = shares.length
  const cacheIds = new Array<string | undefined>(JOB_CACHE_MASK + 1).fill(undefined)
  const cacheJob = new Int32Array(JOB_CACHE_MASK + 1)
  let nReps = 0
  let lastJobId: string | undefined
  let lastJob = -1
  for (let i = 0; i < S; i++) {
    const s = shares[i]!
    let j: number
    const id = s.jobId
    if (id === lastJobId) j = lastJob
    else {
      // A small cache before the Map, by the id's length and last two characters, checked with
      // ===: a Map lookup costs ~35 ns a share when jobs are interleaved in the view.
      const n = id.length
      const slot = (n > 1 ? n * 961 + id.charCodeAt(n - 1) * 31 + id.charCodeAt(n - 2) : n) & JOB_CACHE_MASK
      if (cacheIds[slot] === id) j = cacheJob[slot]!
      else {
        const known = jobIndex.get(id)
        if (known === undefined) {
          j = jobIds.length
          jobIndex.set(id, j)
          jobIds.push(id)
          jobCount[j] = 0
          jobRep[j] = -1
        } else j = known
        cacheIds[slot] = id
        cacheJob[slot] = j
      }
      lastJobId = id
      lastJob = j
    }
    jobOf[i] = j
    jobCount[j]! += 1
    let f = 0
    if (s.status === 'pending') f |= PENDING
    if (s.busy) f |= BUSY
    if (s.spread) f |= SPREAD
    if (s.avoidHosts?.length) f |= AVOIDS
    flags[i] = f
    unitsPerSec[i] = s.unitsPerSec
    remaining[i] = s.to - s.position
    demand[i] = shareDemand(s)
    demandNoise[i] = noiseOf(s.cpuDemandNoise)
    if (s.status === 'running' && s.host !== null) {
      const h = hostIndex.get(s.host)
      if (h === undefined) orphans[0]! += 1
      else hostOf[i] = h
    }
    // The class: the job's representative's when this share matches it field by field.
    const r = jobRep[j]!
    const rep = r >= 0 ? shares[r]! : undefined
    if (rep && rep.processor === s.processor && sameTags(rep.requiredTags, s.requiredTags) && rep.memoryBytes === s.memoryBytes && rep.spread === s.spread) {
      repOf[i] = r
      continue
    }
    jobRep[j] = i
    repOf[i] = i
    reps[nReps++] = i
  }
  return nReps
}

/** The class of each representative, numbered in view order as met (as when they were worked out in the loop). */
function classify(shares: readonly ShareView[], cols: Columns, nReps: number, classes: Classes, cls: Int32Array): void {
  const { reps, jobOf } = cols
  for (let x = 0; x < nReps; x++) {
    const r = reps[x]!
    cls[r] = classes.classOf(shares[r]!, jobOf[r]!)
  }
}

/** Every share takes its representative's class. */
function resolve(repOf: Int32Array, cls: Int32Array): void {
  for (let i = 0; i < repOf.length; i++) cls[i] = cls[repOf[i]!]!
}

/**
 * A class and an eligibility class as objects of their own rather than object literals or the
 * share that first had them: code that reads them (`qualifies` in every step) then sees one shape
 * in every call, whatever the view's share objects look like (a view of another shape used to
 * send it back to the interpreter: "wrong map").
 */
class Klass implements ShareClass {
  constructor(
    readonly elig: number,
    readonly memoryBytes: number,
    readonly spreadJob: number,
  ) {}
}

class Eligibility implements EligibilityClass {
  constructor(
    readonly processor: string,
    readonly requiredTags: Readonly<Record<string, string>> | undefined,
  ) {}
}

/** The classes and eligibility classes met so far, by their canonical keys. */
class Classes {
  readonly list: ShareClass[] = []
  readonly eligibility: EligibilityClass[] = []
  readonly #index = new Map<string, number>()
  readonly #eligIndex = new Map<string, number>()

  /** The class of share `s` of job `j`, numbering it when new. */
  classOf(s: ShareView, j: number): number {
    // JSON arrays: processor names and tags are any strings, so no separator could be safe.
    const eligKey = JSON.stringify([s.processor, tagsKey(s.requiredTags)])
    const key = JSON.stringify([eligKey, s.memoryBytes ?? 0, s.spread ? s.jobId : null])
    let k = this.#index.get(key)
    if (k === undefined) {
      let e = this.#eligIndex.get(eligKey)
      if (e === undefined) {
        this.#eligIndex.set(eligKey, (e = this.eligibility.length))
        this.eligibility.push(new Eligibility(s.processor, s.requiredTags))
      }
      this.#index.set(key, (k = this.list.length))
      this.list.push(new Klass(e, s.memoryBytes ?? 0, s.spread ? j : -1))
    }
    return k
  }
}

