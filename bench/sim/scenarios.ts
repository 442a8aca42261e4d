/**
 * Scenarios for the simulator: uneven pools (per-core speeds 0.5–2, a mix of core counts, a few
 * hosts configured with twice as many slots as cores), jobs of different cost per unit sized so
 * the ideal makespan lands near a chosen length, background "hogs" that start mid-run, and
 * optionally a host that fails. Everything is drawn from a seeded generator.
 *
 * Must never shape a scenario around the policy's weaknesses or strengths: the same scenario is run
 * with the policy and with static placement.
 */

import { idealMakespanMs, poolCapacity } from './ideal.ts'
import type { HostSpec, JobSpec, SimParams } from './model.ts'
import { pick, seededRng } from './rng.ts'

export interface Scenario {
  name: string
  description: string
  hosts: HostSpec[]
  jobs: JobSpec[]
}

export interface ScenarioOptions {
  name: string
  hosts: number
  coreChoices: readonly number[]
  jobs: number
  /** Shares per job; 'auto' = the pool's slots capped at 1024 (the balancer's default). */
  sharesPerJob: number | 'auto'
  /** Aim for an ideal makespan of about this long (before hogs and failures). */
  targetIdealMs: number
  /** Hosts that get a background hog of 0.9 × cores, starting at 20–50 % of the run. */
  hogs: number
  /** Fail one host at half of the run. */
  failure: boolean
  /** Stray background load on every host, in cores on average (`noise.ts`; default 0). */
  noise?: number
  /**
   * Every host alike (the first of `coreChoices` cores, speed 1) with one slot more than cores, and
   * jobs of one share per core (`sharesPerJob` 'auto' counts cores here): nothing to balance, yet a
   * free slot everywhere, so a move is always possible and any balancing move is thrash.
   */
  even?: boolean
  seed: number
}

const SPEEDS = [0.5, 0.8, 1, 1.25, 1.5, 2] as const
/** Core-ms per unit: 20–200 µs (cpu-burn's default unit is tens of µs; count-primes' are smaller). */
const MS_PER_UNIT = [0.02, 0.05, 0.1, 0.2] as const
const CHECKPOINT_BYTES = [4 * 1024, 64 * 1024, 1024 * 1024, 8 * 1024 * 1024] as const

export function buildScenario(o: ScenarioOptions): Scenario {
  const rng = seededRng(o.seed)
  const hosts: HostSpec[] = Array.from({ length: o.hosts }, (_, i) => {
    const id = `h${String(i).padStart(4, '0')}`
    const noise = o.noise ? { noise: o.noise } : {}
    if (o.even) return { id, cores: o.coreChoices[0]!, slots: o.coreChoices[0]! + 1, speed: 1, ...noise }
    const cores = pick(rng, o.coreChoices)
    // One host in eight is configured with twice as many slots as cores.
    const slots = rng() < 0.125 ? cores * 2 : cores
    return { id, cores, slots, speed: pick(rng, SPEEDS), ...noise }
  })
  const slots = hosts.reduce((n, h) => n + (o.even ? h.cores : h.slots), 0)
  const work = poolCapacity(hosts, 0) * o.targetIdealMs
  const jobs: JobSpec[] = Array.from({ length: o.jobs }, (_, j) => {
    const msPerUnit = MS_PER_UNIT[j % MS_PER_UNIT.length]!
    // Jobs of uneven size: weights 1..2.
    const weight = 1 + rng()
    return {
      id: `job${String(j).padStart(3, '0')}`,
      units: 0,
      msPerUnit,
      checkpointBytes: CHECKPOINT_BYTES[j % CHECKPOINT_BYTES.length]!,
      shares: o.sharesPerJob === 'auto' ? Math.min(1024, slots) : o.sharesPerJob,
      weight,
    }
  }).map(({ weight, ...j }, _, all) => {
    const totalWeight = all.reduce((n, x) => n + x.weight, 0)
    return { ...j, units: Math.max(j.shares, Math.round((work * weight) / totalWeight / j.msPerUnit)) }
  })
  // Hogs on distinct hosts (the fastest big ones are as likely as any other), then a failure.
  const order = hosts.map((_, i) => i)
  for (let i = order.length - 1; i > 0; i--) {
    const k = Math.floor(rng() * (i + 1))
    ;[order[i], order[k]] = [order[k]!, order[i]!]
  }
  const base = idealMakespanMs(hosts, jobs)
  for (let k = 0; k < o.hogs && k < order.length; k++) {
    const h = hosts[order[k]!]!
    h.hog = [{ atMs: Math.round(base * (0.2 + 0.3 * rng())), cores: 0.9 * h.cores }]
  }
  if (o.failure && order.length > o.hogs) hosts[order[o.hogs]!]!.failAtMs = Math.round(base * 0.5)
  const parts = [
    o.even
      ? `${o.hosts} identical hosts (${o.coreChoices[0]} cores, ${o.coreChoices[0]! + 1} slots, speed 1)`
      : `${o.hosts} hosts (${o.coreChoices.join('/')} cores, per-core speed ${SPEEDS[0]}–${SPEEDS[SPEEDS.length - 1]}, 1 in 8 with slots = 2 × cores)`,
    `${o.jobs} jobs × ${jobs[0]?.shares} shares`,
  ]
  if (o.noise) parts.push(`stray noise of ${o.noise} core on every host (jitter and bursts)`)
  if (o.hogs) parts.push(`${o.hogs} background hog${o.hogs > 1 ? 's' : ''} (0.9 × cores) starting at 20–50 % of the run`)
  if (o.failure) parts.push('one host failing at 50 %')
  return { name: o.name, description: parts.join(', '), hosts, jobs }
}

/** Model constants: what a real pool on one LAN roughly shows (see bench/migration for stun). */
export function defaultParams(seed: number, maxSimMs: number): SimParams {
  return {
    intervalMs: 1000,
    hostDeadMs: 1000,
    assignDelayMs: 20,
    safePointMs: 10,
    stunBaseMs: 5,
    stunMsPerMiB: 40,
    stunJitter: 0.3,
    measureNoise: 0.03,
    // pool.heartbeatMs and balancer.loadWindowMs defaults.
    heartbeatMs: 250,
    loadWindowMs: 1000,
    kickDelayMs: 20,
    maxSimMs,
    seed,
  }
}
