/**
 * How many writes the balancer made to its JetStream KV buckets: each put or delete of a key
 * appends one message to the bucket's stream, so the stream's last sequence number grows by
 * exactly the writes (the buckets keep one revision per key, so `state.messages` would not).
 * Read from stream info through the benchmark's own connection.
 *
 * Read-only: must never write to, purge or reconfigure a Shoal stream. Returns null for a stream
 * whose info did not come (a slow server), so the figure says "not measured" rather than lies.
 */

import type { NatsConnection } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'

export const KV_BUCKETS = ['jobs', 'shares', 'hosts', 'journal', 'leader'] as const
export type KvWrites = Record<(typeof KV_BUCKETS)[number], number | null>

export async function kvSequences(nc: NatsConnection, cluster: string): Promise<KvWrites> {
  const jsm = await jetstreamManager(nc, { timeout: 10_000 })
  const out = {} as KvWrites
  for (const b of KV_BUCKETS) {
    try {
      out[b] = (await jsm.streams.info(`KV_shoal_${cluster}_${b}`)).state.last_seq
    } catch {
      out[b] = null
    }
  }
  return out
}

/** Writes per bucket between two readings (null where either is missing). */
export function kvDelta(a: KvWrites, b: KvWrites): KvWrites {
  const out = {} as KvWrites
  for (const k of KV_BUCKETS) {
    const x = a[k]
    const y = b[k]
    out[k] = x === null || y === null ? null : y - x
  }
  return out
}
