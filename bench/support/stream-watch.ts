/**
 * What the chaos benchmark reads from JetStream itself, through an admin connection to every NATS
 * node: whether a Shoal cluster's streams have a leader and every replica caught up (a restarted
 * node has rejoined), and when the first write to a stream landed after a given moment (how long
 * the balancer's own KV writes failed while a stream elected a new leader).
 *
 * Read-only: must never write to, purge or reconfigure a Shoal stream, and never wait without a
 * deadline.
 */

import { connect, type NatsConnection } from '@nats-io/transport-node'
import { jetstreamManager, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream'
import { BenchError, sleep } from './bench.ts'

/** Short request timeout: during an election a request that hangs is as good as a failed one. */
const REQUEST_TIMEOUT_MS = 300
const POLL_MS = 50

/** A connection to every node of the NATS cluster that reconnects quickly and forever. */
export function adminConnection(urls: readonly string[]): Promise<NatsConnection> {
  return connect({ servers: [...urls], name: 'shoal-bench-chaos-admin', maxReconnectAttempts: -1, reconnectTimeWait: 100, timeout: 2_000 })
}

async function manager(nc: NatsConnection): Promise<JetStreamManager> {
  // checkAPI would ask for account info first, which fails while JetStream elects its meta leader.
  return jetstreamManager(nc, { checkAPI: false, timeout: REQUEST_TIMEOUT_MS })
}

/** The JetStream streams of Shoal cluster `cluster` (its KV buckets and checkpoint object store). */
export function streamNames(cluster: string): string[] {
  return [...['jobs', 'shares', 'hosts', 'journal', 'leader'].map((k) => `KV_shoal_${cluster}_${k}`), `OBJ_shoal_${cluster}_ckpt`]
}

/** Why a stream is not fully replicated right now, or undefined when it is. */
function lagging(si: StreamInfo): string | undefined {
  const c = si.cluster
  if (!c?.leader) return 'no leader'
  const behind = (c.replicas ?? []).filter((r) => !r.current || r.offline === true)
  if (behind.length) return `replicas not current: ${behind.map((r) => r.name).join(', ')}`
  if ((c.replicas?.length ?? 0) + 1 < si.config.num_replicas) return `${(c.replicas?.length ?? 0) + 1} of ${si.config.num_replicas} replicas known`
  return undefined
}

/**
 * Resolves once every stream in `streams` has a leader and all its replicas are current (a node
 * that was down has caught up), with the milliseconds waited; BenchError after `timeoutMs`.
 */
export async function waitForStreamsCurrent(nc: NatsConnection, streams: readonly string[], timeoutMs: number): Promise<number> {
  const t0 = Date.now()
  let why = 'not asked yet'
  for (;;) {
    try {
      const jsm = await manager(nc)
      const problems: string[] = []
      for (const s of streams) {
        const w = lagging(await jsm.streams.info(s))
        if (w) problems.push(`${s}: ${w}`)
      }
      if (!problems.length) return Date.now() - t0
      why = problems.join('; ')
    } catch (e) {
      why = (e as Error).message
    }
    if (Date.now() - t0 > timeoutMs) throw new BenchError(`streams not fully replicated within ${timeoutMs} ms: ${why}`)
    await sleep(POLL_MS * 2)
  }
}

/**
 * The server time (ms since epoch) of the first message stored in `stream` after `after`: polls
 * the stream's last timestamp every 50 ms, then walks back from the last sequence to the earliest
 * message still stored whose time is later (down to `sinceSeq`, the last sequence read before the
 * fault, at most). A KV stream keeps one message per key, so a first write already superseded is
 * missed and a later one found: the figure is then an upper bound. BenchError when nothing is
 * written within `timeoutMs`.
 */
export async function firstWriteAfter(nc: NatsConnection, stream: string, after: number, sinceSeq: number, timeoutMs: number): Promise<number> {
  for (;;) {
    let si: StreamInfo | undefined
    try {
      si = await (await manager(nc)).streams.info(stream)
    } catch {
      // No leader yet, or the node we asked is the one that died: ask again.
    }
    const lastTs = si ? Date.parse(si.state.last_ts) : Number.NaN
    if (si && lastTs > after) return earliestAfter(nc, stream, after, Math.max(si.state.first_seq, sinceSeq + 1), si.state.last_seq, lastTs)
    if (Date.now() - after > timeoutMs) throw new BenchError(`no write to ${stream} within ${timeoutMs} ms`)
    await sleep(POLL_MS)
  }
}

/**
 * What node `name` leads right now: the streams in `streams` (by name) and, as `meta`, the
 * JetStream meta group (read from a running node's monitoring port). Unknown leaders count as not led.
 */
export async function ledBy(nc: NatsConnection, streams: readonly string[], name: string, httpPorts: readonly number[]): Promise<string[]> {
  const out: string[] = []
  const jsm = await manager(nc)
  for (const s of streams) {
    const leader = await jsm.streams.info(s).then((si) => si.cluster?.leader, () => undefined)
    if (leader === name) out.push(s)
  }
  for (const port of httpPorts) {
    try {
      const jsz = (await (await fetch(`http://127.0.0.1:${port}/jsz`, { signal: AbortSignal.timeout(1_000) })).json()) as { meta_cluster?: { leader?: string } }
      if (jsz.meta_cluster?.leader) {
        if (jsz.meta_cluster.leader === name) out.push('meta')
        break
      }
    } catch {
      // That node is down or slow: ask the next one.
    }
  }
  return out
}

/** The last sequence of `stream` now (read just before a fault, to bound the walk back afterwards). */
export async function lastSequence(nc: NatsConnection, stream: string): Promise<number> {
  return (await (await manager(nc)).streams.info(stream)).state.last_seq
}

/** Most sequences walked back (deleted ones cost one request each). */
const MAX_WALK = 2_000

async function earliestAfter(nc: NatsConnection, stream: string, after: number, lowestSeq: number, lastSeq: number, lastTs: number): Promise<number> {
  let earliest = lastTs
  const jsm = await manager(nc)
  for (let seq = lastSeq - 1; seq >= Math.max(lowestSeq, lastSeq - MAX_WALK); seq--) {
    let at: number | undefined
    try {
      const m = await jsm.streams.getMessage(stream, { seq })
      at = m?.time.getTime()
    } catch {
      // Deleted (superseded in a KV stream): keep walking.
    }
    if (at === undefined) continue
    if (at <= after) break
    earliest = Math.min(earliest, at)
  }
  return earliest
}
