/**
 * The ideal makespan a scenario is measured against: a fluid lower bound.
 *
 * Effective capacity of host h at time t (in core-ms of speed-1 work per ms):
 *   alive(t) × speed_h × slots_h × min(1, cores_h / (slots_h + background_h(t)))
 * i.e. what Shoal would get with every one of its slots busy under the model's fair time-sharing
 * (a host with fewer slots than cores can never use more than `slots` cores; a background load,
 * hog or stray noise, takes its fair part). A failed host has no capacity from its failure on (no detection delay).
 * Total work W = Σ over jobs of units × msPerUnit. The ideal makespan M* is the smallest M with
 * ∫₀^M Σ_h capacity_h(t) dt = W: perfect division of work, zero overhead, no redone work, all jobs
 * submitted at t = 0. No schedule can beat it; the ratio makespan / M* says how much was lost.
 */

import type { HostSpec, JobSpec } from './model.ts'
import { heartbeatPhaseMs, NoiseSource, noiseSeed } from './noise.ts'
import { seededRng } from './rng.ts'

export function hostCapacity(h: HostSpec, background: number): number {
  return h.speed * h.slots * Math.min(1, h.cores / (h.slots + background))
}

/** Hog cores of `h` at time `t`: the last change at or before t. */
function hogAt(h: HostSpec, t: number): number {
  let c = 0
  let when = -Infinity
  for (const ch of h.hog ?? []) if (ch.atMs <= t && ch.atMs >= when) (c = ch.cores), (when = ch.atMs)
  return c
}

/** Background cores of `h` at time `t` with its stray noise taken at its mean (for sizing a scenario). */
function backgroundAt(h: HostSpec, t: number): number {
  return hogAt(h, t) + (h.noise ?? 0)
}

export function totalWork(jobs: readonly JobSpec[]): number {
  return jobs.reduce((n, j) => n + j.units * j.msPerUnit, 0)
}

/** Capacity of the whole pool at time t. */
export function poolCapacity(hosts: readonly HostSpec[], t: number): number {
  let c = 0
  for (const h of hosts) if (h.failAtMs === undefined || t < h.failAtMs) c += hostCapacity(h, backgroundAt(h, t))
  return c
}

/** How the simulator draws the hosts' stray noise, so that the ideal can draw exactly the same. */
export interface NoiseReplay {
  seed: number
  heartbeatMs: number
}

/**
 * The ideal makespan M* in ms (Infinity if the pool loses all capacity first). With `replay` and
 * hosts that carry stray noise, the noise the simulator will draw is drawn again here, host by
 * host and heartbeat by heartbeat, and capacity is integrated over it in steps of an eighth of a
 * heartbeat: taking the noise at its mean would be wrong either way (capacity is convex in
 * background load where slots match cores, so jitter costs *less* than its mean, and the ideal
 * would be beaten).
 */
export function idealMakespanMs(hosts: readonly HostSpec[], jobs: readonly JobSpec[], replay?: NoiseReplay): number {
  if (replay && hosts.some((h) => h.noise)) return idealWithNoiseMs(hosts, jobs, replay)
  return fluidIdealMs(hosts, jobs)
}

function idealWithNoiseMs(hosts: readonly HostSpec[], jobs: readonly JobSpec[], replay: NoiseReplay): number {
  const H = hosts.length
  const sources = hosts.map((h, i) => (h.noise ? new NoiseSource(h.noise, seededRng(noiseSeed(replay.seed, i))) : null))
  const nextDraw = hosts.map((_, i) => heartbeatPhaseMs(i, H, replay.heartbeatMs))
  const noise = new Float64Array(H)
  const dt = replay.heartbeatMs / 8
  let work = totalWork(jobs)
  const horizon = 100 * fluidIdealMs(hosts, jobs)
  for (let t = 0; t < horizon; t += dt) {
    let cap = 0
    for (let i = 0; i < H; i++) {
      const h = hosts[i]!
      const src = sources[i]
      // The simulator draws a host's next noise at each of its heartbeats, for the period after it.
      while (src && nextDraw[i]! <= t) {
        noise[i] = src.next()
        nextDraw[i]! += replay.heartbeatMs
      }
      if (h.failAtMs === undefined || t < h.failAtMs) cap += hostCapacity(h, hogAt(h, t) + noise[i]!)
    }
    if (cap > 0 && work <= cap * dt) return t + work / cap
    work -= cap * dt
  }
  return Infinity
}

/** The exact fluid bound for piecewise-constant background (hogs; noise at its mean). */
function fluidIdealMs(hosts: readonly HostSpec[], jobs: readonly JobSpec[]): number {
  const breaks = new Set<number>([0])
  for (const h of hosts) {
    for (const ch of h.hog ?? []) breaks.add(ch.atMs)
    if (h.failAtMs !== undefined) breaks.add(h.failAtMs)
  }
  const times = [...breaks].filter((t) => t >= 0).sort((a, b) => a - b)
  let work = totalWork(jobs)
  for (let i = 0; i < times.length; i++) {
    const t = times[i]!
    const cap = poolCapacity(hosts, t)
    const end = times[i + 1] ?? Infinity
    if (cap > 0 && work <= cap * (end - t)) return t + work / cap
    work -= cap * (end - t)
  }
  return Infinity
}
