/**
 * Balancing settings that change on a running balancer (DESIGN: "balancing thresholds change at
 * run time without a restart"): which keys may, what a new config changes, and a watcher that
 * re-reads the config file when it changes. Validation is the start-up one (`loadConfig` /
 * `setConfigValue`), so a bad value is refused with the same message naming the key.
 *
 * Must never apply anything itself: the balancer decides what a change does.
 */

import fs from 'node:fs'
import { CONFIG_KEYS, type Config } from '../config/mod.ts'

/** Keys a running balancer takes without a restart. */
export const LIVE_KEYS = [
  'balancer.migrationThreshold',
  'balancer.intervalMs',
  'balancer.minResidencyMs',
  'balancer.loadWindowMs',
  'balancer.maxMovesPerCycle',
  'balancer.maxConcurrentMigrationsPerHost',
  'balancer.splitMinUnits',
] as const

export type LiveKey = (typeof LIVE_KEYS)[number]

export interface SettingChange {
  key: string
  from: number | null
  to: number | null
}

export function isLiveKey(key: string): key is LiveKey {
  return (LIVE_KEYS as readonly string[]).includes(key)
}

function get(config: Config, path: readonly string[]): unknown {
  let v: unknown = config
  for (const p of path) v = v === null || typeof v !== 'object' ? undefined : (v as Record<string, unknown>)[p]
  return v
}

/** The live settings in force, by key. */
export function liveSettings(config: Config): Record<string, number> {
  const out: Record<string, number> = {}
  for (const k of CONFIG_KEYS) if (isLiveKey(k.key)) out[k.key] = get(config, k.path) as number
  return out
}

/** What going from `from` to `to` changes: live keys with old and new values, and keys that need a restart. */
export function diffConfig(from: Config, to: Config): { live: SettingChange[]; restartOnly: string[] } {
  const live: SettingChange[] = []
  const restartOnly: string[] = []
  for (const k of CONFIG_KEYS) {
    const a = get(from, k.path)
    const b = get(to, k.path)
    if (JSON.stringify(a) === JSON.stringify(b)) continue
    if (isLiveKey(k.key)) live.push({ key: k.key, from: (a as number | undefined) ?? null, to: (b as number | undefined) ?? null })
    else restartOnly.push(k.key)
  }
  return { live, restartOnly }
}

/**
 * Calls `onChange` with a freshly loaded config whenever `file` changes (polled, so an editor that
 * replaces the file is seen too), or `onError` when it no longer loads. Returns a stop function.
 */
export function watchConfigFile(file: string, load: () => Config, onChange: (next: Config) => void, onError: (e: Error) => void, everyMs = 500): () => void {
  const listener = (cur: fs.Stats, prev: fs.Stats) => {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return
    let next: Config
    try {
      next = load()
    } catch (e) {
      onError(e as Error)
      return
    }
    onChange(next)
  }
  fs.watchFile(file, { interval: everyMs, persistent: false }, listener)
  return () => fs.unwatchFile(file, listener)
}
