/**
 * What every client command (one that talks to a running balancer and exits) shares: the --json,
 * --nats and --cluster options, and a connected ShoalClient that is closed afterwards, with errors
 * reported the CLI's way (a message and a non-zero exit, or one JSON error document).
 */

import type { Command } from 'commander'
import { ShoalClient } from '../sdk/client.ts'
import { reportError } from './output.ts'

export interface ClientFlags {
  json?: boolean
  nats?: string
  cluster?: string
}

export function clientOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print one JSON document on stdout')
    .option('--nats <url>', 'NATS server URL (default: SHOAL_NATS_URL, then nats://127.0.0.1:4222)')
    .option('--cluster <name>', 'cluster name (default: SHOAL_CLUSTER, then "default")')
}

export async function withClient(o: ClientFlags, fn: (c: ShoalClient) => Promise<void>): Promise<void> {
  let client: ShoalClient | undefined
  try {
    client = await ShoalClient.connect({ ...(o.nats ? { servers: o.nats } : {}), ...(o.cluster ? { cluster: o.cluster } : {}) })
    await fn(client)
  } catch (e) {
    reportError(e, o.json === true)
  } finally {
    await client?.close()
  }
}
