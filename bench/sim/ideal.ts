/**
 * The ideal makespan a scenario is measured against: a fluid lower bound.
 *
 * Effective capacity of host h at time t (in core-ms of speed-1 work per ms):
 *   alive(t) × speed_h × slots_h × min(1, cores_h / (slots_h + background_h(t)))
 * i.e. what Shoal would get with every one of its slots busy under the model's fair time-sharing
 * (a host with fewer slots than cores can never use more than `slots` cores; a background load
 * takes its fair part). A failed host has no capacity from its failure on (no detection delay).
 * Total work W = Σ over jobs of units × msPerUnit. The ideal makespan M* is the smallest M with
 * ∫₀^M Σ_h capacity_h(t) dt = W: perfect division of work, zero overhead, no redone work, all jobs
 * submitted at t = 0. No schedule can beat it; the ratio makespan / M* says how much was lost.
 */

import type { HostSpec, JobSpec } from './model.ts'

export function hostCapacity(h: HostSpec, background: number): number {
  return h.speed * h.slots * Math.min(1, h.cores / (h.slots + background))
}

/** Background cores of `h` at time `t` (the last change at or before t). */
function backgroundAt(h: HostSpec, t: number): number {
  let c = 0
  let when = -Infinity
  for (const ch of h.hog ?? []) if (ch.atMs <= t && ch.atMs >= when) (c = ch.cores), (when = ch.atMs)
  return c
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

/** The ideal makespan M* in ms (Infinity if the pool loses all capacity first). */
export function idealMakespanMs(hosts: readonly HostSpec[], jobs: readonly JobSpec[]): number {
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
