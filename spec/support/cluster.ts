/**
 * A real Shoal cluster for end-to-end tests: balancer processes (one leads, any others stand by)
 * and host processes (spawned `shoal` commands), on a nats-server (or a nats-server cluster) the
 * suite started, under a cluster name of their own so tests never see each other's messages.
 * Processes are real so crash tests can SIGKILL and SIGSTOP them.
 *
 * Never uses the machine's own nats-server; never sleeps a fixed time where it can wait for state.
 */

import type { ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { spawnShoal, stopChild } from '../../lib/cli/spawn.ts'
import { ShoalClient, type ShoalClientOptions } from '../../lib/sdk/client.ts'
import type { HostSummary } from '../../lib/protocol/messages.ts'

let counter = 0

export interface ClusterOptions {
  /**
   * Host ids to start, with extra `shoal host` arguments; `cpus` (a Linux CPU list such as `1` or
   * `0,2-3`) runs the host under `taskset -c <cpus>`, so it may run only on those CPUs.
   */
  hosts: Array<{ id: string; args?: string[]; env?: Record<string, string>; cpus?: string }>
  /** Extra environment for every process (SHOAL_* settings). */
  env?: Record<string, string>
  balancerArgs?: string[]
  /**
   * Balancer ids to start (`--id`), all at once; default one, `b1`. With several, one leads and
   * the others stand by. `nats` gives one balancer its own NATS URL(s).
   */
  balancers?: Array<string | { id: string; nats?: string }>
  /** Wait until the balancers' presences are heard (all but the leader as standbys); default true. */
  waitForStandbys?: boolean
  /**
   * Called with every complete line each process writes to stderr, with the process's name (host
   * or balancer id), for callers that must read whole logs: `log()` keeps only the last chunks.
   */
  onLine?: (name: string, line: string) => void
  /** Cluster name; default one of its own (t<pid>x<n>). */
  cluster?: string
  /** Extra environment for the balancers (SHOAL_CONFIG of a secured cluster's balancer, say). */
  balancerEnv?: Record<string, string>
  /** Options of the test's own client (credentials, identity); default an open operator client. */
  client?: Partial<ShoalClientOptions>
}

export class TestCluster {
  readonly cluster: string
  readonly env: Record<string, string>
  readonly hosts = new Map<string, ChildProcess>()
  /** Balancer processes by id. */
  readonly balancers = new Map<string, ChildProcess>()
  /** The balancer started last (the only one, unless `balancers` names several). */
  balancer: ChildProcess | undefined
  client!: ShoalClient
  private readonly logs = new Map<string, string[]>()

  constructor(
    readonly url: string,
    private readonly opts: ClusterOptions,
  ) {
    this.cluster = opts.cluster ?? `t${process.pid}x${++counter}`
    this.env = { ...(process.env as Record<string, string>), SHOAL_NATS_URL: url, SHOAL_CLUSTER: this.cluster, SHOAL_LOG_LEVEL: 'info', ...opts.env }
  }

  async start(): Promise<this> {
    // Before spawning anything: a missing taskset or a bad CPU list must fail the start, not leave
    // half a cluster running.
    for (const h of this.opts.hosts) if (h.cpus !== undefined) pinnedPrefix(h.cpus)
    const balancers = (this.opts.balancers ?? ['b1']).map((b) => (typeof b === 'string' ? { id: b } : b))
    for (const b of balancers) this.startBalancer(b.id, b.nats)
    for (const h of this.opts.hosts) this.startHost(h.id, h.args, h.env, h.cpus)
    this.client = await ShoalClient.connect({ servers: this.url, cluster: this.cluster, requestTimeoutMs: 5000, ...this.opts.client })
    await this.waitFor(async () => (await this.client.status().then(() => true, () => false)), 30_000, 'the balancer to answer')
    await this.waitFor(async () => (await this.aliveHosts()).length === this.opts.hosts.length, 30_000, 'hosts to join')
    if (balancers.length > 1 && this.opts.waitForStandbys !== false) {
      await this.waitFor(async () => ((await this.client.status()).standbys?.length ?? 0) === balancers.length - 1, 30_000, 'the standby balancers to be heard')
    }
    return this
  }

  /** Starts balancer `id` (default `b1`), optionally on NATS URL(s) of its own. */
  startBalancer(id = 'b1', nats?: string): ChildProcess {
    const child = this.spawn(id, ['balancer', '--id', id, ...(this.opts.balancerArgs ?? [])], { ...this.opts.balancerEnv, ...(nats ? { SHOAL_NATS_URL: nats } : {}) })
    this.balancers.set(id, child)
    this.balancer = child
    return child
  }

  /** The leader as `status` names it (id, pid, term). */
  async leader(): Promise<{ id: string; pid: number; term: number; since: number } | undefined> {
    return (await this.client.status()).leader
  }

  /** Starts host `id`; with `cpus`, pinned to those CPUs by taskset (see `ClusterOptions.hosts`). */
  startHost(id: string, args: string[] = [], env: Record<string, string> = {}, cpus?: string): ChildProcess {
    const child = this.spawn(id, ['host', '--id', id, '--slots', '2', ...args], env, cpus === undefined ? [] : pinnedPrefix(cpus))
    this.hosts.set(id, child)
    return child
  }

  private spawn(name: string, args: string[], env: Record<string, string> = {}, prefix: readonly string[] = []): ChildProcess {
    const child = spawnShoal(args, { env: { ...this.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'], prefix })
    const lines: string[] = []
    this.logs.set(name, lines)
    const onLine = this.opts.onLine
    let partial = ''
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      lines.push(d)
      if (lines.length > 200) lines.splice(0, lines.length - 200)
      if (!onLine) return
      // Chunks do not follow line boundaries: hand over whole lines, keep the rest for the next chunk.
      const parts = (partial + d).split('\n')
      partial = parts.pop() ?? ''
      for (const l of parts) onLine(name, l)
    })
    child.stderr?.on('end', () => {
      if (onLine && partial) onLine(name, partial)
      partial = ''
    })
    return child
  }

  /**
   * The last log output of a process (for failure messages): a host id, a balancer id, or
   * 'balancer' for every balancer's.
   */
  log(name: string): string {
    if (name === 'balancer' && !this.logs.has('balancer')) {
      return [...this.balancers.keys()].map((id) => (this.balancers.size > 1 ? `--- ${id}:\n` : '') + (this.logs.get(id) ?? []).join('')).join('')
    }
    return (this.logs.get(name) ?? []).join('')
  }

  async aliveHosts(): Promise<HostSummary[]> {
    return (await this.client.hosts().catch(() => [])).filter((h) => h.state === 'alive')
  }

  /** Polls `cond` every `everyMs` (20) until it holds; fails with `what` after `timeoutMs`. */
  async waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string, everyMs = 20): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (await cond()) return
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n--- balancer log tail:\n${this.log('balancer').slice(-3000)}`)
      await new Promise((r) => setTimeout(r, everyMs))
    }
  }

  async stop(): Promise<void> {
    await this.client?.close()
    const all = [...this.hosts.values(), ...this.balancers.values()]
    await Promise.all(all.map((c) => killAndWait(c, 'SIGTERM')))
  }
}

/**
 * The path of `taskset` (util-linux), looked up in PATH. Throws an error that names the package
 * when it is missing (not Linux, or a minimal image), rather than letting spawn fail with ENOENT.
 */
export function tasksetPath(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const p = join(dir, 'taskset')
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {
      // not in this directory
    }
  }
  throw new Error(`taskset not found in PATH (${process.env.PATH ?? ''}): pinning a process to CPUs needs it; install the util-linux package (Debian/Ubuntu: apt-get install util-linux)`)
}

/** `[taskset, '-c', cpus]`: the prefix that runs a command on the CPUs of the list `cpus` only. */
export function pinnedPrefix(cpus: string): string[] {
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(cpus)) throw new Error(`cpus must be a Linux CPU list such as '1' or '0,2-3' (got '${cpus}')`)
  return [tasksetPath(), '-c', cpus]
}

/** Sends `signal` and resolves when the process has exited (SIGKILL after 3 s). */
export function killAndWait(c: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return stopChild(c, signal)
}

export async function startCluster(url: string, opts: ClusterOptions): Promise<TestCluster> {
  return new TestCluster(url, opts).start()
}
