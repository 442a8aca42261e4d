/**
 * Starts a real nats-server cluster with JetStream (3 nodes by default) on free loopback ports, for
 * tests, benches and demos that need NATS to fail like it does in production: a node can be killed,
 * paused, stopped and restarted on the same ports and store, and the node leading a stream can be
 * found so that the right one is killed.
 *
 * Each node is one nats-server started through launcher.ts (so it dies with this process), with a
 * config file of its own in a temporary directory: `server_name` n1, n2, ..., client `listen`,
 * monitoring `http`, `jetstream { store_dir }` and `cluster { name, listen, routes }` naming every
 * node's route port. The ports are fixed up front because the routes name them.
 *
 * Must never touch a server it did not start (the machine's own nats-server may listen on 4222),
 * never leave a node running or a temporary directory behind once `stop()` resolved or this process
 * died, and never report a node as started before its routes to the other running nodes are up.
 */

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { jetstreamManager, JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream'
import { ShoalError } from '../errors.ts'
import { freePort } from '../free-port.ts'
import {
  findNatsServer,
  removeDirOnParentExit,
  startNatsServerChild,
  type NatsServerChild,
} from './launcher.ts'

/** Options of {@link startNatsCluster}. */
export interface NatsClusterOptions {
  /** Number of nodes, 1 to 9; default 3. */
  nodes?: number
  /** The nats-server cluster name (letters, digits, `-`, `_`); default `shoal-` and random hex. */
  clusterName?: string
  /**
   * How long one node may take to accept connections and reach the other nodes, at start and at
   * `restart`; default 15000.
   */
  startTimeoutMs?: number
  /** Append each node's log to `<logDir>/<name>.log` (created if missing); default: not kept. */
  logDir?: string
  /** Path of the nats-server binary; default: `findNatsServer()`. */
  bin?: string
}

/** One node of a {@link RunningNatsCluster}; the fields read the node's current state. */
export interface NatsClusterNode {
  /** The node's `server_name`: `n1`, `n2`, ... (what stream info calls the leader). */
  readonly name: string
  /** Client URL, `nats://127.0.0.1:PORT`; the same across restarts. */
  readonly url: string
  /** Client port. */
  readonly port: number
  /** Route (cluster) port. */
  readonly clusterPort: number
  /** Monitoring port (`/varz`, `/routez`, `/jsz`). */
  readonly httpPort: number
  /** Pid of the current process; undefined while the node is down. */
  readonly pid: number | undefined
  /** JetStream store directory; kept across restarts, removed by `stop()`. */
  readonly storeDir: string
  /** True from a successful start until the process is seen to exit. */
  readonly running: boolean
  /** True between `pause` and `resume` (the process is SIGSTOPped). */
  readonly paused: boolean
}

/** A cluster started by {@link startNatsCluster}. Node indexes start at 0 (`n1` is index 0). */
export interface RunningNatsCluster {
  readonly clusterName: string
  /** One client URL per node. */
  readonly urls: string[]
  /** All client URLs comma-joined, as Shoal's `nats.url` accepts them. */
  readonly url: string
  readonly nodes: readonly NatsClusterNode[]
  /**
   * Sends `signal` to node `i` and resolves once its process has exited (a no-op when it is down).
   * SIGTERM is nats-server's orderly shutdown; it escalates to SIGKILL after 3 s.
   */
  kill(i: number, signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>
  /** SIGSTOPs node `i`: its sockets stay open but it answers nothing, like a hung host. */
  pause(i: number): Promise<void>
  /** SIGCONTs a paused node `i` (a no-op when it is not paused). */
  resume(i: number): Promise<void>
  /**
   * Starts node `i` again (stopping it first with SIGTERM if it runs) on the same client, route and
   * monitoring ports and the same store. Resolves once it accepts connections, has routes to every
   * other running node and, when the running nodes are a majority, knows the JetStream meta leader.
   */
  restart(i: number): Promise<void>
  /**
   * The `server_name` of the node leading stream `stream` (a KV bucket `b` is the stream `KV_b`), or
   * undefined while it has none (an election, or JetStream not answering). A stream that does not
   * exist rejects with `E_STORE`.
   */
  streamLeader(stream: string): Promise<string | undefined>
  /** The index of the node leading `stream`, or undefined as for {@link streamLeader}. */
  leaderIndex(stream: string): Promise<number | undefined>
  /**
   * Polls until `stream` has a leader other than `opts.not` (a node name) and returns its name;
   * rejects with `E_TIMEOUT` after `opts.timeoutMs` (default 20000).
   */
  waitForStreamLeader(stream: string, opts?: { not?: string; timeoutMs?: number }): Promise<string>
  /**
   * Resolves, with the milliseconds it waited, once JetStream has a meta leader and a stream with
   * one replica per running node can be created (a fresh cluster answers "not ready" for a while).
   * Rejects with `E_NATS_SERVER_START` after `timeoutMs` (default 30000).
   */
  waitForJetStream(timeoutMs?: number): Promise<number>
  /** Stops every node (SIGTERM, then SIGKILL after 3 s) and removes the temporary directory. Idempotent. */
  stop(): Promise<void>
}

const DEFAULT_NODES = 3
const MAX_NODES = 9
const DEFAULT_START_TIMEOUT_MS = 15_000
const START_ATTEMPTS = 3
const POLL_MS = 50
const HTTP_TIMEOUT_MS = 2_000
/** JetStream API requests made by the helper: short, because an election is retried by polling. */
const JS_REQUEST_TIMEOUT_MS = 2_000
const SIGTERM_GRACE_MS = 3_000
/** JetStream accepts at most 5 replicas. */
const MAX_REPLICAS = 5

interface NodeState {
  name: string
  port: number
  clusterPort: number
  httpPort: number
  storeDir: string
  confFile: string
  logFile: string | undefined
  proc: NatsServerChild | undefined
  /** The latest process, kept after it exited so that its output can explain why. */
  last: NatsServerChild | undefined
  /** The server id of the current process (it changes on every start); routes name peers by it. */
  serverId: string | undefined
  paused: boolean
  /** Operations on one node run one after another, so that stop() cannot race a restart. */
  queue: Promise<unknown>
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function configError(key: string, expectation: string, value: unknown): ShoalError {
  return new ShoalError('E_CONFIG', `${key} must be ${expectation} (got ${String(value)})`, { details: { key, value } })
}

/** `count` distinct ports that are free on loopback right now. */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>()
  // The kernel rarely hands out a just-released port again, but it may; a duplicate would make two
  // listeners of one node collide.
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}

function nodeConfig(n: NodeState, clusterName: string, routePorts: number[]): string {
  // Quoted with JSON escapes, which the nats config parser reads, so a path with spaces is safe.
  const routes = routePorts.map((p) => `    "nats-route://127.0.0.1:${p}"`).join('\n')
  return [
    `# written by lib/nats-server/cluster.ts; node ${n.name} of cluster ${clusterName}`,
    `server_name: ${JSON.stringify(n.name)}`,
    `listen: "127.0.0.1:${n.port}"`,
    `http: "127.0.0.1:${n.httpPort}"`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(n.storeDir)}`,
    `}`,
    `cluster {`,
    `  name: ${JSON.stringify(clusterName)}`,
    `  listen: "127.0.0.1:${n.clusterPort}"`,
    // Every node, this one included: nats-server notices a route to itself and ignores it, and one
    // list for all keeps the files alike.
    `  routes: [`,
    routes,
    `  ]`,
    `}`,
    '',
  ].join('\n')
}

async function getJson(port: number, path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
    if (!res.ok) return undefined
    return (await res.json()) as Record<string, unknown>
  } catch {
    // Not up yet, going down, or paused: the caller polls.
    return undefined
  }
}

function isPortClash(err: unknown): boolean {
  const text = `${(err as Error)?.message ?? ''} ${JSON.stringify((err as ShoalError)?.details?.output ?? '')}`
  return /address already in use/i.test(text)
}

/**
 * Starts a nats-server cluster with JetStream on free loopback ports and resolves once every node
 * accepts connections and has routes to every other node. JetStream may still be electing its meta
 * leader then: call `waitForJetStream()` before creating streams. If a port was taken between
 * choosing and binding it, the whole start is retried with fresh ports (3 attempts).
 *
 * Rejects with `E_CONFIG` for bad options, `E_NATS_SERVER_MISSING` without a binary, and
 * `E_NATS_SERVER_START` (naming the node and carrying its output) when a node does not come up; then
 * nothing is left running and the temporary directory is gone.
 */
export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<RunningNatsCluster> {
  const count = opts.nodes ?? DEFAULT_NODES
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) {
    throw configError('nodes', `an integer from 1 to ${MAX_NODES}`, count)
  }
  const clusterName = opts.clusterName ?? `shoal-${randomBytes(4).toString('hex')}`
  if (!/^[A-Za-z0-9_-]+$/.test(clusterName)) {
    throw configError('clusterName', 'letters, digits, "-" and "_" only', clusterName)
  }
  const startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS
  if (!Number.isFinite(startTimeoutMs) || startTimeoutMs <= 0) {
    throw configError('startTimeoutMs', 'a positive number of milliseconds', startTimeoutMs)
  }
  const bin = opts.bin ?? findNatsServer()
  if (opts.logDir !== undefined) {
    try {
      mkdirSync(opts.logDir, { recursive: true })
    } catch (err) {
      throw new ShoalError('E_CONFIG', `logDir must be a directory that can be created (got ${opts.logDir}): ${(err as Error).message}`, {
        cause: err,
        details: { key: 'logDir', value: opts.logDir },
      })
    }
  }

  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce({ count, clusterName, startTimeoutMs, bin, logDir: opts.logDir })
    } catch (err) {
      // Ports are chosen free and bound a moment later; a parallel test process can take one in
      // between. Fresh ports fix that; anything else would fail again the same way.
      if (attempt < START_ATTEMPTS && isPortClash(err)) continue
      throw err
    }
  }
}

interface StartParams {
  count: number
  clusterName: string
  startTimeoutMs: number
  bin: string
  logDir: string | undefined
}

async function startOnce(p: StartParams): Promise<RunningNatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-nats-cluster-'))
  const forgetDir = removeDirOnParentExit(dir)
  let nodes: NodeState[]
  try {
    const ports = await distinctFreePorts(p.count * 3)
    nodes = Array.from({ length: p.count }, (_, i): NodeState => {
      const name = `n${i + 1}`
      return {
        name,
        port: ports[i * 3] as number,
        clusterPort: ports[i * 3 + 1] as number,
        httpPort: ports[i * 3 + 2] as number,
        storeDir: join(dir, name, 'store'),
        confFile: join(dir, name, 'nats.conf'),
        logFile: p.logDir === undefined ? undefined : join(p.logDir, `${name}.log`),
        proc: undefined,
        last: undefined,
        serverId: undefined,
        paused: false,
        queue: Promise.resolve(),
      }
    })
    const routePorts = nodes.map((n) => n.clusterPort)
    for (const n of nodes) {
      mkdirSync(n.storeDir, { recursive: true })
      writeFileSync(n.confFile, nodeConfig(n, p.clusterName, routePorts))
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    forgetDir()
    throw err
  }

  const cluster = new Cluster(p, dir, forgetDir, nodes)
  try {
    const deadline = Date.now() + p.startTimeoutMs
    // In parallel: a node is ready without its peers (it keeps dialling their routes).
    const started = await Promise.allSettled(nodes.map((n) => cluster.startProcess(n, deadline)))
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    // "Server is ready" comes before the route port is bound: a node whose route port was taken
    // says ready and then exits, which only this wait notices.
    await Promise.all(nodes.map((n) => cluster.waitForRoutes(n, deadline)))
    return cluster
  } catch (err) {
    await cluster.stop()
    throw err
  }
}

class Cluster implements RunningNatsCluster {
  readonly clusterName: string
  readonly urls: string[]
  readonly url: string
  readonly nodes: readonly NatsClusterNode[]
  readonly #p: StartParams
  readonly #dir: string
  readonly #forgetDir: () => void
  readonly #state: NodeState[]
  #stopping: Promise<void> | undefined

  constructor(p: StartParams, dir: string, forgetDir: () => void, state: NodeState[]) {
    this.#p = p
    this.#dir = dir
    this.#forgetDir = forgetDir
    this.#state = state
    this.clusterName = p.clusterName
    this.urls = state.map((n) => `nats://127.0.0.1:${n.port}`)
    this.url = this.urls.join(',')
    this.nodes = state.map((n, i) => ({
      name: n.name,
      url: this.urls[i] as string,
      port: n.port,
      clusterPort: n.clusterPort,
      httpPort: n.httpPort,
      storeDir: n.storeDir,
      get pid() {
        return n.proc?.pid
      },
      get running() {
        return n.proc !== undefined
      },
      get paused() {
        return n.paused
      },
    }))
  }

  // --- one node's process ----------------------------------------------------------------------

  /** Starts `n`'s process and learns its server id; on failure nothing of it is left running. */
  async startProcess(n: NodeState, deadline: number): Promise<void> {
    let proc: NatsServerChild
    try {
      proc = await startNatsServerChild({
        bin: this.#p.bin,
        // JetStream and its store come from the config file; the launcher's own -js/-sd would
        // only repeat them.
        jetstream: false,
        storeDir: n.storeDir,
        port: n.port,
        startTimeoutMs: Math.max(1, deadline - Date.now()),
        ...(n.logFile === undefined ? {} : { logFile: n.logFile }),
        args: ['-c', n.confFile],
      })
    } catch (err) {
      throw this.#nodeError(n, 'did not start', err)
    }
    n.proc = proc
    n.last = proc
    n.paused = false
    n.serverId = undefined
    proc.exited.then(() => {
      if (n.proc === proc) {
        n.proc = undefined
        n.paused = false
        n.serverId = undefined
      }
    }, () => undefined)
    while (n.serverId === undefined) {
      const varz = await getJson(n.httpPort, '/varz')
      if (typeof varz?.server_id === 'string') n.serverId = varz.server_id
      else await this.#pollOrFail(n, deadline, 'did not answer on its monitoring port')
    }
  }

  /**
   * Waits until `n` has a route to every other node that runs and is not paused (and so can answer
   * a route handshake). A node that dies meanwhile (a route port taken after it said "ready") fails
   * the wait with its output.
   */
  async waitForRoutes(n: NodeState, deadline: number): Promise<void> {
    for (;;) {
      const peers = this.#state.filter((o) => o !== n && o.proc !== undefined && !o.paused)
      const routez = await getJson(n.httpPort, '/routez')
      const routes = Array.isArray(routez?.routes) ? (routez.routes as Array<{ remote_id?: unknown }>) : []
      const remote = new Set(routes.map((r) => r.remote_id))
      if (routez !== undefined && peers.every((o) => o.serverId !== undefined && remote.has(o.serverId))) return
      await this.#pollOrFail(n, deadline, `has no routes to ${peers.filter((o) => !remote.has(o.serverId)).map((o) => o.name).join(', ')}`)
    }
  }

  /** Waits until `n` knows the JetStream meta leader (it has caught up with the meta group). */
  async #waitForMetaLeader(n: NodeState, deadline: number): Promise<void> {
    for (;;) {
      const jsz = await getJson(n.httpPort, '/jsz')
      const meta = jsz?.meta_cluster as { leader?: unknown } | undefined
      if (typeof meta?.leader === 'string' && meta.leader !== '') return
      await this.#pollOrFail(n, deadline, 'does not know the JetStream meta leader')
    }
  }

  /** Sleeps one poll interval; throws if `n` died or the deadline passed. */
  async #pollOrFail(n: NodeState, deadline: number, what: string): Promise<void> {
    const proc = n.proc
    if (proc === undefined) {
      throw this.#nodeError(n, 'exited while starting', undefined, n.last?.output())
    }
    if (Date.now() >= deadline) {
      throw this.#nodeError(n, `${what} within ${this.#p.startTimeoutMs} ms`, undefined, proc.output())
    }
    // Wake early if the process dies: its output says why (a route port taken, say).
    const died = await Promise.race([proc.exited.then(() => true), sleep(POLL_MS).then(() => false)])
    if (died) {
      throw this.#nodeError(n, 'exited while starting', undefined, proc.output())
    }
  }

  #nodeError(n: NodeState, what: string, cause: unknown, output?: string): ShoalError {
    const out = (output ?? ((cause as ShoalError)?.details?.output as string | undefined) ?? '').trim()
    const why = cause instanceof Error ? `: ${cause.message}` : out === '' ? '' : `. Last output of nats-server:\n${out}`
    return new ShoalError('E_NATS_SERVER_START', `node ${n.name} of NATS cluster ${this.clusterName} ${what}${why}`, {
      cause,
      details: { node: n.name, port: n.port, clusterPort: n.clusterPort, httpPort: n.httpPort, output: out },
    })
  }

  #node(i: number): NodeState {
    const n = Number.isInteger(i) ? this.#state[i] : undefined
    if (n === undefined) throw configError('node index', `an integer from 0 to ${this.#state.length - 1}`, i)
    return n
  }

  /** Runs `op` after every earlier operation on `n`, whatever their outcome. */
  #enqueue<T>(n: NodeState, op: () => Promise<T>): Promise<T> {
    const result = n.queue.then(op, op)
    n.queue = result.catch(() => {})
    return result
  }

  async #killNow(n: NodeState, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const proc = n.proc
    if (proc === undefined) return
    if (signal === 'SIGKILL') {
      // SIGKILL ends a stopped process too; nothing to resume.
      proc.signal('SIGKILL')
      await proc.exited
      return
    }
    // A stopped process keeps SIGTERM pending until it runs again.
    if (n.paused) proc.signal('SIGCONT')
    proc.signal('SIGTERM')
    const escalate = setTimeout(() => proc.signal('SIGKILL'), SIGTERM_GRACE_MS)
    await proc.exited
    clearTimeout(escalate)
  }

  // --- the public face ---------------------------------------------------------------------------

  kill(i: number, signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const n = this.#node(i)
    return this.#enqueue(n, () => this.#killNow(n, signal))
  }

  pause(i: number): Promise<void> {
    const n = this.#node(i)
    return this.#enqueue(n, async () => {
      const proc = n.proc
      if (proc === undefined) throw configError('node index', 'that of a running node to pause', `${i} (${n.name} is down)`)
      if (proc.signal('SIGSTOP')) n.paused = true
    })
  }

  resume(i: number): Promise<void> {
    const n = this.#node(i)
    return this.#enqueue(n, async () => {
      if (!n.paused) return
      n.proc?.signal('SIGCONT')
      n.paused = false
    })
  }

  restart(i: number): Promise<void> {
    const n = this.#node(i)
    return this.#enqueue(n, async () => {
      if (this.#stopping !== undefined) {
        throw new ShoalError('E_NATS_SERVER_START', `node ${n.name} cannot restart: NATS cluster ${this.clusterName} was stopped`)
      }
      await this.#killNow(n, 'SIGTERM')
      const deadline = Date.now() + this.#p.startTimeoutMs
      try {
        await this.startProcess(n, deadline)
        await this.waitForRoutes(n, deadline)
        const up = this.#state.filter((o) => o.proc !== undefined && !o.paused).length
        // Without a majority there is no meta leader to wait for.
        if (up * 2 > this.#state.length) await this.#waitForMetaLeader(n, deadline)
      } catch (err) {
        await this.#killNow(n, 'SIGKILL')
        throw err
      }
    })
  }

  /** Runs `fn` with a client connected to the running, unpaused nodes; closes it afterwards. */
  async #withClient<T>(fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
    // A paused node accepts TCP in the kernel but never says hello: leave it out of the list.
    const servers = this.#state.filter((n) => n.proc !== undefined && !n.paused).map((n) => `127.0.0.1:${n.port}`)
    if (servers.length === 0) {
      throw new ShoalError('E_UNAVAILABLE', `no node of NATS cluster ${this.clusterName} is running`)
    }
    let nc: NatsConnection
    try {
      nc = await connect({ servers, name: 'shoal-test-cluster-admin', timeout: JS_REQUEST_TIMEOUT_MS, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
    } catch (err) {
      throw new ShoalError('E_UNAVAILABLE', `cannot connect to NATS cluster ${this.clusterName} at ${servers.join(',')}: ${(err as Error).message}`, { cause: err })
    }
    try {
      return await fn(nc)
    } finally {
      await nc.close().catch(() => {})
    }
  }

  /** One stream info; undefined while there is no leader or JetStream does not answer. */
  async #leaderVia(nc: NatsConnection, stream: string): Promise<string | undefined> {
    try {
      const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: JS_REQUEST_TIMEOUT_MS })
      const si = await jsm.streams.info(stream)
      const leader = si.cluster?.leader
      return leader === undefined || leader === '' ? undefined : leader
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
        throw new ShoalError('E_STORE', `stream ${stream} does not exist in NATS cluster ${this.clusterName}`, {
          cause: err,
          details: { stream },
        })
      }
      // Timeouts, "no responders" and 503s are what an election looks like from a client.
      return undefined
    }
  }

  streamLeader(stream: string): Promise<string | undefined> {
    return this.#withClient((nc) => this.#leaderVia(nc, stream))
  }

  async leaderIndex(stream: string): Promise<number | undefined> {
    const leader = await this.streamLeader(stream)
    const i = this.#state.findIndex((n) => n.name === leader)
    return i < 0 ? undefined : i
  }

  waitForStreamLeader(stream: string, opts: { not?: string; timeoutMs?: number } = {}): Promise<string> {
    const timeoutMs = opts.timeoutMs ?? 20_000
    const deadline = Date.now() + timeoutMs
    return this.#withClient(async (nc) => {
      let last: string | undefined
      for (;;) {
        last = await this.#leaderVia(nc, stream)
        if (last !== undefined && last !== opts.not) return last
        if (Date.now() >= deadline) {
          const other = opts.not === undefined ? '' : ` other than ${opts.not}`
          throw new ShoalError('E_TIMEOUT', `stream ${stream} had no leader${other} within ${timeoutMs} ms (last seen: ${last ?? 'none'})`, {
            details: { stream, lastLeader: last },
          })
        }
        await sleep(POLL_MS * 2)
      }
    })
  }

  waitForJetStream(timeoutMs = 30_000): Promise<number> {
    const t0 = Date.now()
    const deadline = t0 + timeoutMs
    const tag = randomBytes(4).toString('hex')
    const name = `shoal_cluster_probe_${tag}`
    const replicas = Math.min(MAX_REPLICAS, this.#state.filter((n) => n.proc !== undefined && !n.paused).length)
    return this.#withClient(async (nc) => {
      let lastErr: unknown
      for (;;) {
        try {
          // checkAPI (the default) asks for account info, which fails until there is a meta leader.
          const jsm = await jetstreamManager(nc, { timeout: JS_REQUEST_TIMEOUT_MS })
          // The same name on every try: an add that timed out but happened is not made twice, and a
          // repeated add with the same config succeeds.
          await jsm.streams.add({ name, subjects: [`shoal.cluster-probe.${tag}`], num_replicas: replicas, max_msgs: 1 })
          await jsm.streams.delete(name)
          return Date.now() - t0
        } catch (err) {
          lastErr = err
        }
        if (Date.now() >= deadline) {
          throw new ShoalError(
            'E_NATS_SERVER_START',
            `JetStream of NATS cluster ${this.clusterName} was not ready within ${timeoutMs} ms ` +
              `(could not create an R${replicas} stream): ${(lastErr as Error)?.message ?? String(lastErr)}`,
            { cause: lastErr, details: { replicas } },
          )
        }
        await sleep(POLL_MS * 2)
      }
    })
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await Promise.all(this.#state.map((n) => this.#enqueue(n, () => this.#killNow(n, 'SIGTERM'))))
      await rm(this.#dir, { recursive: true, force: true, maxRetries: 2 })
      this.#forgetDir()
    })()
    return this.#stopping
  }
}
