/**
 * The migration cost the policy charges a move, learned from the stun times the balancer measured
 * (DRS learns its cost from past migrations too). Expected stun = base + perMiB × checkpoint MiB:
 * the base is the median stun of small-checkpoint migrations (safe-point wait plus round trips),
 * the per-MiB part the median of (stun − base) / MiB over the large ones. Until enough migrations
 * of a kind were seen, that part stays unset and the policy's defaults apply.
 *
 * Must never import NATS, timers or the clock.
 */

import { MiB } from './load-model.ts'

export interface MeasuredMigration {
  ok: boolean
  stunMs: number
  checkpointBytes: number
}

export interface StunCost {
  stunBaseMs?: number
  stunMsPerMiB?: number
}

/** Checkpoints below this count as "small": their stun is the fixed part. */
export const SMALL_CHECKPOINT_BYTES = 256 * 1024
/** Fewest migrations of a kind before their figure replaces the default. */
export const MIN_SAMPLES = 3

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Learns the stun cost from recent migrations (failed ones are ignored). */
export function learnStunCost(recent: readonly MeasuredMigration[]): StunCost {
  const ok = recent.filter((m) => m.ok && Number.isFinite(m.stunMs) && m.stunMs >= 0)
  const small = ok.filter((m) => m.checkpointBytes < SMALL_CHECKPOINT_BYTES).map((m) => m.stunMs)
  const out: StunCost = {}
  if (small.length >= MIN_SAMPLES) out.stunBaseMs = median(small)
  const base = out.stunBaseMs ?? 0
  const large = ok.filter((m) => m.checkpointBytes >= SMALL_CHECKPOINT_BYTES).map((m) => Math.max(0, m.stunMs - base) / (m.checkpointBytes / MiB))
  if (large.length >= MIN_SAMPLES) out.stunMsPerMiB = median(large)
  return out
}
