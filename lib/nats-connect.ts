/**
 * Opens the NATS connection every Shoal process uses, from the `nats` part of the config.
 * Reconnects forever: a host must keep working (and retrying its reports) while NATS or the
 * balancer is away.
 */

import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node'
import { ShoalError } from './errors.ts'

export interface NatsSettings {
  url: string
  user?: string | undefined
  pass?: string | undefined
  token?: string | undefined
}

export async function connectNats(s: NatsSettings, name: string, extra: Partial<NodeConnectionOptions> = {}): Promise<NatsConnection> {
  const opts: NodeConnectionOptions = {
    servers: s.url.split(',').map((u) => u.trim()).filter(Boolean),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    ...extra,
  }
  if (s.user !== undefined) opts.user = s.user
  if (s.pass !== undefined) opts.pass = s.pass
  if (s.token !== undefined) opts.token = s.token
  try {
    return await connect(opts)
  } catch (e) {
    throw new ShoalError('E_UNAVAILABLE', `cannot connect to NATS at ${s.url}: ${(e as Error).message} (start one with 'shoal demo', or point --nats / SHOAL_NATS_URL at a running nats-server)`, { cause: e })
  }
}
