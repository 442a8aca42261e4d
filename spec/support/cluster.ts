/**
 * A real Shoal cluster for end-to-end tests: a balancer process and host processes (spawned
 * `shoal` commands), on a nats-server the suite started, under a cluster name of their own so
 * tests never see each other's messages. Processes are real so crash tests can SIGKILL them.
 *
 * Never uses the machine's own nats-server; never sleeps a fixed time where it can wait for state.
 */

import type { ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { spawnShoal, stopChild } from '../../lib/cli/spawn.ts'
import { ShoalClient } from '../../lib/sdk/client.ts'
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
}

export class TestCluster {
  readonly cluster: string
  readonly env: Record<string, string>
  readonly hosts = new Map<string, ChildProcess>()
  balancer: ChildProcess | undefined
  client!: ShoalClient
  private readonly logs = new Map<string, string[]>()

  constructor(
    readonly url: string,
    private readonly opts: ClusterOptions,
  ) {
    this.cluster = `t${process.pid}x${++counter}`
    this.env = { ...(process.env as Record<string, string>), SHOAL_NATS_URL: url, SHOAL_CLUSTER: this.cluster, SHOAL_LOG_LEVEL: 'info', ...opts.env }
  }

  async start(): Promise<this> {
    // Before spawning anything: a missing taskset or a bad CPU list must fail the start, not leave
    // half a cluster running.
    for (const h of this.opts.hosts) if (h.cpus !== undefined) pinnedPrefix(h.cpus)
    this.startBalancer()
    for (const h of this.opts.hosts) this.startHost(h.id, h.args, h.env, h.cpus)
    this.client = await ShoalClient.connect({ servers: this.url, cluster: this.cluster, requestTimeoutMs: 5000 })
    await this.waitFor(async () => (await this.client.status().then(() => true, () => false)), 30_000, 'the balancer to answer')
    await this.waitFor(async () => (await this.aliveHosts()).length === this.opts.hosts.length, 30_000, 'hosts to join')
    return this
  }

  startBalancer(): ChildProcess {
    this.balancer = this.spawn('balancer', ['balancer', ...(this.opts.balancerArgs ?? [])])
    return this.balancer
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
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      lines.push(d)
      if (lines.length > 200) lines.splice(0, lines.length - 200)
    })
    return child
  }

  /** The last log output of a process (for failure messages). */
  log(name: string): string {
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
    const all = [...this.hosts.values(), ...(this.balancer ? [this.balancer] : [])]
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
