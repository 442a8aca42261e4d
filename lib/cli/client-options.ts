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
import type { NatsSettings } from '../nats-connect.ts'
import type { ShoalClient } from '../sdk/client.ts'
import { reportError } from './output.ts'
import { ShoalError } from '../errors.ts'

export interface ClientFlags {
  json?: boolean
  config?: string
  nats?: string
  cluster?: string
  timeout?: string
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
    .option('--timeout <seconds>', 'how long to wait for NATS to answer a connection (default 5) and for the balancer to answer a request (default 10)')
}

/**
 * The NATS settings, cluster and identity a client command uses: flags over the config (file,
 * env, defaults). Its replies come to the identity's own inboxes.
 */
export async function clientSettings(o: ClientFlags): Promise<{ nats: NatsSettings; cluster: string; identity: string }> {
  // Loaded when a command runs, not when the CLI starts (`--help` stays fast).
  const [{ loadConfig }, { Subjects }] = await Promise.all([import('../config/mod.ts'), import('../protocol/subjects.ts')])
  const config = loadConfig(o.config !== undefined ? { file: o.config } : {})
  const cluster = o.cluster ?? config.cluster
  const identity = config.client.identity
  return { nats: { ...config.nats, url: o.nats ?? config.nats.url, inboxPrefix: new Subjects(cluster).inbox(identity) }, cluster, identity }
}

/** Connects a ShoalClient with the command's settings. */
export async function connectClient(o: ClientFlags): Promise<ShoalClient> {
  const timeoutMs = timeoutOf(o)
  const { nats, cluster, identity } = await clientSettings(o)
  const [{ ShoalClient }, { authOptions }] = await Promise.all([import('../sdk/client.ts'), import('../nats-connect.ts')])
  return ShoalClient.connect({ servers: nats.url, cluster, identity, nats: authOptions(nats), connectTimeoutMs: timeoutMs ?? 5_000, requestTimeoutMs: timeoutMs ?? 10_000 })
}

/** --timeout in ms, or undefined when not given (checked before anything connects). */
export function timeoutOf(o: ClientFlags): number | undefined {
  if (o.timeout === undefined) return undefined
  const s = Number(o.timeout)
  if (!Number.isFinite(s) || s <= 0 || s > 3600) throw new ShoalError('E_CONFIG', `--timeout must be a number of seconds, more than 0 and at most 3600 (got ${JSON.stringify(o.timeout)})`)
  return Math.round(s * 1000)
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
    exitSoon()
  }
}

/**
 * A client command has done its work: exit even if the NATS library still holds a socket (a
 * server that accepted the connection but never spoke NATS kept the process alive for good).
 * Unref'd, so a process with nothing left to do ends at once as before.
 */
export function exitSoon(): void {
  setTimeout(() => process.exit(), 1_000).unref()
}
