/**
 * How much CPU a host's non-Shoal work *wants*, from one heartbeat's figures (issue 9, point 1).
 *
 * A heartbeat says how busy the host's CPUs were (`cpuMachine`) and how much of that was the Shoal
 * host process (`cpuShoal`); their difference is what other work *got*. On CPUs with room to spare
 * that is also what it wants. On saturated CPUs it is not: a busy loop sharing a core with one
 * Shoal share gets half of it and reads as 0.5, though it competes like a full core, and a model
 * fed 0.5 would think the share gets 2/3 of the core when it gets 1/2 — too little contention to
 * make moving the share look worth it. So when the CPUs are saturated, the demand is inferred
 * from what Shoal got under fair time-sharing: with Shoal's shares wanting D cores (their workers'
 * busy fractions) and getting G of C cores, every runnable thread got C / (D + E) of a core, so
 * G = D·C / (D + E) and the external demand is E = D·(C / G − 1). The figure used is the larger of
 * the two readings, so the inference can only add contention that the share figures prove.
 *
 * Must never import NATS, timers or the clock.
 */

/** CPUs busy at least this fraction of the time count as saturated. */
export const SATURATED = 0.9
/** Ceiling of an inferred external demand, in cores per core (a reading near G = 0 explodes). */
export const MAX_EXTERNAL_DEMAND = 4

export interface HostCpu {
  /** Busy fraction of the host's CPUs, all work included, 0..1. */
  cpuMachine: number
  /** The Shoal host process's CPU use as a fraction of the same CPUs, 0..1. */
  cpuShoal: number
}

/**
 * External (non-Shoal) CPU demand as a fraction of the host's cores (may exceed 1 on saturated
 * CPUs), from its CPU figures, its core count and the CPU demand of the shares running on it
 * (cores, Σ of their busy fractions).
 */
export function externalDemand(cpu: HostCpu, cores: number, shareDemand: number): number {
  const machine = finite01(cpu.cpuMachine)
  const shoal = finite01(cpu.cpuShoal)
  const got = Math.max(0, machine - shoal)
  if (machine < SATURATED || !(shareDemand > 0) || !(cores > 0)) return got
  const shoalCores = shoal * cores
  if (!(shoalCores > 0)) return MAX_EXTERNAL_DEMAND
  const inferred = (shareDemand * (cores / shoalCores - 1)) / cores
  return Math.min(MAX_EXTERNAL_DEMAND, Math.max(got, inferred))
}

function finite01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0
}
