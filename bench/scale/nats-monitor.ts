/**
 * What the nats-server itself says about the balancer's connection (its HTTP monitoring port,
 * `/connz` and `/varz`): messages delivered to the balancer and sent by it, bytes waiting to be
 * delivered to it (a balancer that falls behind leaves them queued in the server), and slow-consumer
 * disconnects. The benchmark started this server with monitoring on, on a free port.
 *
 * Read-only; a reading that fails is null, never an exception.
 */

export interface ConnReading {
  /** Messages the server delivered to the balancer / received from it, since it connected. */
  outMsgs: number
  inMsgs: number
  pendingBytes: number
  cid: number
}

export interface ServerReading {
  balancer: ConnReading | null
  slowConsumers: number | null
}

async function json(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`)
  return res.json()
}

/** The newest connection named `shoal-balancer` (one balancer runs at a time here) and the server's slow consumers. */
export async function readServer(monitorUrl: string): Promise<ServerReading> {
  let balancer: ConnReading | null = null
  let slowConsumers: number | null = null
  try {
    const connz = (await json(`${monitorUrl}/connz?limit=4096`)) as { connections?: Array<{ cid: number; name?: string; in_msgs: number; out_msgs: number; pending_bytes: number }> }
    for (const c of connz.connections ?? []) {
      if (c.name !== 'shoal-balancer' || (balancer && balancer.cid > c.cid)) continue
      balancer = { cid: c.cid, inMsgs: c.in_msgs, outMsgs: c.out_msgs, pendingBytes: c.pending_bytes }
    }
  } catch {
    balancer = null
  }
  try {
    slowConsumers = ((await json(`${monitorUrl}/varz`)) as { slow_consumers?: number }).slow_consumers ?? null
  } catch {
    slowConsumers = null
  }
  return { balancer, slowConsumers }
}

/** The window's figures from two readings: deltas only when both name the same connection. */
export function serverDelta(a: ServerReading, b: ServerReading): Record<string, number | null> {
  const same = a.balancer !== null && b.balancer !== null && a.balancer.cid === b.balancer.cid
  return {
    msgsDeliveredToBalancer: same ? b.balancer!.outMsgs - a.balancer!.outMsgs : null,
    msgsFromBalancer: same ? b.balancer!.inMsgs - a.balancer!.inMsgs : null,
    bytesQueuedForBalancerAtEnd: b.balancer?.pendingBytes ?? null,
    balancerReconnected: a.balancer !== null && b.balancer !== null ? (same ? 0 : 1) : null,
    slowConsumerDisconnects: a.slowConsumers !== null && b.slowConsumers !== null ? b.slowConsumers - a.slowConsumers : null,
  }
}
