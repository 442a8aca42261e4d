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
import type { NatsSettings } from '../nats-connect.ts'
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

/** The NATS settings and cluster a client command uses: flags over the config (file, env, defaults). */
export function clientSettings(o: ClientFlags): { nats: NatsSettings; cluster: string } {
  const config = loadConfig(o.config !== undefined ? { file: o.config } : {})
  return { nats: { ...config.nats, url: o.nats ?? config.nats.url }, cluster: o.cluster ?? config.cluster }
}

/** Connects a ShoalClient with the command's settings. */
export function connectClient(o: ClientFlags): Promise<ShoalClient> {
  const { nats, cluster } = clientSettings(o)
  const auth = {
    ...(nats.user !== undefined ? { user: nats.user } : {}),
    ...(nats.pass !== undefined ? { pass: nats.pass } : {}),
    ...(nats.token !== undefined ? { token: nats.token } : {}),
  }
  return ShoalClient.connect({ servers: nats.url, cluster, nats: auth })
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
