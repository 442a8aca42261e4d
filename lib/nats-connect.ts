/**
 * Opens the NATS connection every Shoal process uses, from the `nats` part of the config.
 * Reconnects forever: a host must keep working (and retrying its reports) while NATS or the
 * balancer is away.
 *
 * Daemons (balancer, host) pass `waitForServer`: when no server answers at start they say so once
 * and wait until one does, so a pool can be started before its NATS. Clients (CLI commands, the
 * SDK) fail at once with E_UNAVAILABLE instead: a person is waiting for an answer.
 *
 * Must never retry on a refusal that waiting cannot fix (bad credentials): that fails at once.
 */

import { readFileSync } from 'node:fs'
import { connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node'
import { ShoalError } from './errors.ts'

export interface NatsSettings {
  url: string
  user?: string | undefined
  pass?: string | undefined
  token?: string | undefined
  /** File holding an nkey seed (`SU...`). */
  nkeySeedFile?: string | undefined
  /** Credentials file (JWT + seed). */
  creds?: string | undefined
  /** TLS: a CA turns it on; cert and key for servers that verify clients. */
  tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined
  /**
   * Subject prefix of this process's reply inboxes. A secured cluster lets each identity
   * subscribe only to its own inboxes, so no one reads another's replies.
   */
  inboxPrefix?: string | undefined
}

/**
 * The credential and TLS options of `s`, read from their files. Errors name the config key and
 * the file, never the file's content.
 */
export function authOptions(s: NatsSettings): Partial<NodeConnectionOptions> {
  const opts: Partial<NodeConnectionOptions> = {}
  if (s.user !== undefined) opts.user = s.user
  if (s.pass !== undefined) opts.pass = s.pass
  if (s.token !== undefined) opts.token = s.token
  if (s.nkeySeedFile !== undefined && s.creds !== undefined) {
    throw new ShoalError('E_CONFIG', 'nats.nkeySeedFile and nats.creds are both set: give one of them')
  }
  if (s.nkeySeedFile !== undefined) {
    const seed = readSecret('nats.nkeySeedFile', s.nkeySeedFile)
    const text = new TextDecoder().decode(seed).trim()
    if (!/^S[A-Z2-7]{50,}$/.test(text)) throw new ShoalError('E_CONFIG', `nats.nkeySeedFile ${s.nkeySeedFile} does not hold an nkey seed (one line starting with 'S')`)
    opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(text))
  }
  if (s.creds !== undefined) opts.authenticator = credsAuthenticator(readSecret('nats.creds', s.creds))
  const tls = s.tls ?? {}
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new ShoalError('E_CONFIG', `nats.tls.cert and nats.tls.key go together: ${tls.cert === undefined ? 'nats.tls.key' : 'nats.tls.cert'} is set alone`)
  }
  if (tls.ca !== undefined || tls.cert !== undefined) {
    opts.tls = {
      ...(tls.ca !== undefined ? { caFile: readable('nats.tls.ca', tls.ca) } : {}),
      ...(tls.cert !== undefined ? { certFile: readable('nats.tls.cert', tls.cert) } : {}),
      ...(tls.key !== undefined ? { keyFile: readable('nats.tls.key', tls.key) } : {}),
    }
  }
  if (s.inboxPrefix !== undefined) opts.inboxPrefix = s.inboxPrefix
  return opts
}

function readSecret(key: string, file: string): Uint8Array {
  try {
    return readFileSync(file)
  } catch (e) {
    throw new ShoalError('E_CONFIG', `cannot read ${key} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
}

function readable(key: string, file: string): string {
  readSecret(key, file)
  return file
}

export interface ConnectBehaviour {
  /**
   * Clients: how long one attempt may take before it fails (a port where something other than
   * NATS listens accepts the connection and never answers). Default: the client library's 20 s.
   */
  connectTimeoutMs?: number
  /**
   * Wait for a server that does not answer yet (daemons). `onWaiting` is told once, with the
   * reason, when the first attempt failed; `onConnected` once the wait is over.
   */
  waitForServer?: { onWaiting: (message: string) => void; onConnected?: (server: string) => void }
}

export async function connectNats(s: NatsSettings, name: string, extra: Partial<NodeConnectionOptions> = {}, how: ConnectBehaviour = {}): Promise<NatsConnection> {
  const opts: NodeConnectionOptions = {
    servers: s.url.split(',').map((u) => u.trim()).filter(Boolean),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // A server that hangs (SIGSTOP, a stuck machine) closes no socket: only missed pings reveal
    // it. The client default (2 min × 2) would keep a host talking to a dead server for minutes;
    // 2 s × 3 moves it to another node of the cluster within about 6 s.
    pingInterval: 2_000,
    maxPingOut: 3,
    // Without this every request (each KV write is one) builds two Error objects up front to
    // remember where it was made: 9-11 % of a busy balancer's CPU in a profile of tiny shares.
    // Our errors carry a code and say what failed; the call site's stack adds nothing there.
    noAsyncTraces: true,
    ...authOptions(s),
    ...(how.connectTimeoutMs !== undefined ? { timeout: how.connectTimeoutMs } : {}),
    ...extra,
  }
  try {
    return await connect(opts)
  } catch (e) {
    const wait = how.waitForServer
    if (!wait || isRefusal(e)) throw unavailable(s.url, e, how.connectTimeoutMs)
    wait.onWaiting(`NATS at ${redactUrl(s.url)} does not answer (${redactUrl((e as Error).message)}): waiting for it, retrying every ${opts.reconnectTimeWait} ms`)
    // waitOnFirstConnect: the client's dial loop keeps trying every server in the list instead
    // of giving up after the first round.
    const nc = await connect({ ...opts, waitOnFirstConnect: true }).catch((err: unknown) => {
      throw unavailable(s.url, err)
    })
    wait.onConnected?.(nc.getServer())
    return nc
  }
}

function unavailable(url: string, e: unknown, timeoutMs?: number): ShoalError {
  if (isRefusal(e)) {
    return new ShoalError('E_AUTH', `NATS at ${redactUrl(url)} refused this process: ${redactUrl((e as Error).message)} (check nats.user/pass/token, nats.nkeySeedFile or nats.creds, and that the server's auth config lists this identity)`, { cause: e })
  }
  const names = new Set<string>()
  for (let x: unknown = e; x instanceof Error && names.size < 5; x = x.cause) names.add(x.name)
  if (names.has('TimeoutError')) {
    return new ShoalError('E_UNAVAILABLE', `no NATS server answered at ${redactUrl(url)} within ${((timeoutMs ?? 20_000) / 1000).toFixed(1)} s: something accepted the connection but did not speak NATS (is that a NATS client port, not an HTTP, monitoring or cluster port?), or the machine is too slow to answer; --timeout waits longer`, { cause: e })
  }
  return new ShoalError('E_UNAVAILABLE', `cannot connect to NATS at ${redactUrl(url)}: ${redactUrl((e as Error).message)} (is nats-server running there, with JetStream? start one with 'nats-server -js', or point --nats / SHOAL_NATS_URL at one)`, { cause: e })
}

/**
 * `url` (or any text holding URLs) with the credentials of every `scheme://user:pass@` or
 * `scheme://token@` replaced by `***`: errors and logs must never carry a secret.
 */
export function redactUrl(url: string): string {
  return url.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)([^/@\s,]*)@/gi, (_, scheme: string, info: string) => {
    const colon = info.indexOf(':')
    return `${scheme}${colon >= 0 ? `${info.slice(0, colon)}:***` : '***'}@`
  })
}

/** The server answered and said no (credentials, permissions): waiting would not change that. */
function isRefusal(e: unknown): boolean {
  const names = new Set<string>()
  for (let x: unknown = e; x instanceof Error && names.size < 5; x = x.cause) names.add(x.name)
  return names.has('AuthorizationError') || names.has('UserAuthenticationExpiredError') || names.has('PermissionViolationError')
}

/**
 * Drains a connection (its subscriptions finish what they hold, published messages are flushed)
 * and closes it, giving up the drain after `ms`: with NATS away a drain or flush waits for a server
 * that may never come back, and a process told to stop must stop. Never rejects.
 */
export async function closeNats(nc: NatsConnection, ms = 2_000): Promise<void> {
  await settleWithin(nc.drain(), ms)
  if (!nc.isClosed()) await nc.close().catch(() => undefined)
}

/** Waits for `p` (its result ignored, a rejection too) or `ms`, whichever comes first. */
export async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([p.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))])
  clearTimeout(timer)
}
