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

import type { ClusterView, ShareView } from './cluster-view.ts'
import { Scratch } from './scratch.ts'

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
  /** One share of each eligibility class: its processor and tags are the class's. */
  readonly eligibility: readonly ShareView[]
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
  const hostOf = scratch.int32('hostOf', S).fill(-1)
  const jobOf = scratch.int32('jobOf', S)
  const flags = scratch.uint8('flags', S)
  const unitsPerSec = scratch.float64('unitsPerSec', S)
  const remaining = scratch.float64('remaining', S)
  const demand = scratch.float64('demand', S)
  const demandNoise = scratch.float64('demandNoise', S)
  const cls = scratch.int32('cls', S)
  const jobIndex = new Map<string, number>()
  const jobIds: string[] = []
  let jobCount: Int32Array = new Int32Array(64)
  // Per job: its last class and the share that set it (the representative its shares are compared with).
  let jobCls: Int32Array = new Int32Array(64)
  let jobRep: Int32Array = new Int32Array(64)
  const classIndex = new Map<string, number>()
  const classes: ShareClass[] = []
  const eligIndex = new Map<string, number>()
  const eligibility: ShareView[] = []
  let orphans = 0
  let lastJobId: string | undefined
  let lastJob = -1
  for (let i = 0; i < S; i++) {
    const s = shares[i]!
    let j: number
    if (s.jobId === lastJobId) j = lastJob
    else {
      const known = jobIndex.get(s.jobId)
      if (known === undefined) {
        j = jobIds.length
        jobIndex.set(s.jobId, j)
        jobIds.push(s.jobId)
        if (j === jobCount.length) {
          jobCount = grow(jobCount)
          jobCls = grow(jobCls)
          jobRep = grow(jobRep)
        }
        jobCls[j] = -1
      } else j = known
      lastJobId = s.jobId
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
      if (h === undefined) orphans++
      else hostOf[i] = h
    }
    // The class: the job's last one when this share matches its representative field by field.
    const c = jobCls[j]!
    const rep = c >= 0 ? shares[jobRep[j]!]! : undefined
    if (rep && rep.processor === s.processor && sameTags(rep.requiredTags, s.requiredTags) && rep.memoryBytes === s.memoryBytes && rep.spread === s.spread) {
      cls[i] = c
      continue
    }
    // JSON arrays: processor names and tags are any strings, so no separator could be safe.
    const eligKey = JSON.stringify([s.processor, tagsKey(s.requiredTags)])
    const key = JSON.stringify([eligKey, s.memoryBytes ?? 0, s.spread ? s.jobId : null])
    let k = classIndex.get(key)
    if (k === undefined) {
      let e = eligIndex.get(eligKey)
      if (e === undefined) {
        eligIndex.set(eligKey, (e = eligibility.length))
        eligibility.push(s)
      }
      classIndex.set(key, (k = classes.length))
      classes.push({ elig: e, memoryBytes: s.memoryBytes ?? 0, spreadJob: s.spread ? j : -1 })
    }
    cls[i] = k
    jobCls[j] = k
    jobRep[j] = i
  }
  return { hostOf, jobOf, jobIds, jobCount: jobCount.slice(0, jobIds.length), flags, unitsPerSec, remaining, demand, demandNoise, cls, classes, eligibility, orphans }
}

function grow(a: Int32Array): Int32Array {
  const b = new Int32Array(a.length * 2)
  b.set(a)
  return b
}
