/**
 * The baseline the tiny-shares benchmark divides by: how many JetStream KV puts per second the
 * very nats-server of the run takes from one client with many puts in flight, on a scratch bucket
 * made like Shoal's own (history 1, one replica, no direct gets). On a shared, noisy machine a
 * figure means little alone; shares/s over this rate, measured minutes apart on the same server,
 * is what compares across runs (NOTES.md: ≈ 21,000 puts/s at 256 in flight here).
 *
 * Must never touch a Shoal bucket: it writes only its own scratch bucket, and removes it after.
 */

import type { NatsConnection } from '@nats-io/transport-node'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { round } from '../support/bench.ts'

export interface KvBaseline {
  putsPerSec: number
  puts: number
  seconds: number
  inFlight: number
  valueBytes: number
}

/** Distinct keys written in turn: the bucket keeps one revision of each, as Shoal's records. */
const KEYS = 1024
/** About a share record's size. */
const VALUE_BYTES = 200

/**
 * Puts with `inFlight` outstanding for `warmupMs` (not counted: the bucket's first writes and the
 * client's code warming up), then for `ms` counted.
 */
export async function kvPutRate(nc: NatsConnection, ms: number, warmupMs: number, inFlight = 256): Promise<KvBaseline> {
  const name = `tinybench_scratch_${process.pid}`
  const kv = await new Kvm(jetstream(nc, { timeout: 10_000 })).create(name, { history: 1, replicas: 1, allow_direct: false })
  const value = new Uint8Array(VALUE_BYTES).fill(0x61)
  try {
    let puts = 0
    let next = 0
    const countFrom = performance.now() + warmupMs
    const endsAt = countFrom + ms
    const lane = async () => {
      while (performance.now() < endsAt) {
        const started = performance.now()
        await kv.put(`k${next++ % KEYS}`, value)
        if (started >= countFrom) puts++
      }
    }
    await Promise.all(Array.from({ length: inFlight }, lane))
    // Every put started in the counted time, over the time until the last of them came back.
    const seconds = (performance.now() - countFrom) / 1000
    return { putsPerSec: round(puts / seconds, 0), puts, seconds: round(seconds, 2), inFlight, valueBytes: VALUE_BYTES }
  } finally {
    await kv.destroy().catch(() => undefined)
  }
}
