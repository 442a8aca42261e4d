/**
 * What every client command (one that talks to a running balancer and exits) shares: the --json,
 * --config, --nats and --cluster options, the NATS settings and cluster they resolve to, and a
 * connected ShoalClient that is closed afterwards, with errors reported the CLI's way (a message
 * and a non-zero exit, or one JSON error document).
 *
 * Settings come from the same config as the balancer's and the hosts' (`--config FILE` or
 * `SHOAL_CONFIG`, then `SHOAL_*` env vars, defaults last), so a client reaches a server that wants
 * credentials with the same file; `--nats` and `--cluster` override it. Must never print a secret.
 */

import type { Command } from 'commander'
import { loadConfig } from '../config/mod.ts'
import { authOptions, type NatsSettings } from '../nats-connect.ts'
import { Subjects } from '../protocol/subjects.ts'
import { ShoalClient } from '../sdk/client.ts'
import { reportError } from './output.ts'

export interface ClientFlags {
  json?: boolean
  config?: string
  nats?: string
  cluster?: string
}

export function clientOptions(cmd: Command): Command {
  return connectionOptions(cmd.option('--json', 'print one JSON document on stdout'))
}

/** --config, --nats and --cluster, for commands that add --json themselves. */
export function connectionOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'config file (YAML or JSON) with nats.url, the credentials and cluster (default: SHOAL_CONFIG)')
    .option('--nats <url>', 'NATS server URL (default: the config\'s nats.url, SHOAL_NATS_URL, then nats://127.0.0.1:4222)')
    .option('--cluster <name>', 'cluster name (default: the config\'s cluster, SHOAL_CLUSTER, then "default")')
}

/**
 * The NATS settings, cluster and identity a client command uses: flags over the config (file,
 * env, defaults). Its replies come to the identity's own inboxes.
 */
export function clientSettings(o: ClientFlags): { nats: NatsSettings; cluster: string; identity: string } {
  const config = loadConfig(o.config !== undefined ? { file: o.config } : {})
  const cluster = o.cluster ?? config.cluster
  const identity = config.client.identity
  return { nats: { ...config.nats, url: o.nats ?? config.nats.url, inboxPrefix: new Subjects(cluster).inbox(identity) }, cluster, identity }
}

/** Connects a ShoalClient with the command's settings. */
export function connectClient(o: ClientFlags): Promise<ShoalClient> {
  const { nats, cluster, identity } = clientSettings(o)
  return ShoalClient.connect({ servers: nats.url, cluster, identity, nats: authOptions(nats) })
}

export async function withClient(o: ClientFlags, fn: (c: ShoalClient) => Promise<void>): Promise<void> {
  let client: ShoalClient | undefined
  try {
    client = await connectClient(o)
    await fn(client)
  } catch (e) {
    reportError(e, o.json === true)
  } finally {
    await client?.close()
  }
}
