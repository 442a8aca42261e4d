/**
 * A real Shoal cluster for end-to-end tests: a balancer process and host processes (spawned
 * `shoal` commands), on a nats-server the suite started, under a cluster name of their own so
 * tests never see each other's messages. Processes are real so crash tests can SIGKILL them.
 *
 * Never uses the machine's own nats-server; never sleeps a fixed time where it can wait for state.
 */

import type { ChildProcess } from 'node:child_process'
import { spawnShoal, stopChild } from '../../lib/cli/spawn.ts'
import { ShoalClient } from '../../lib/sdk/client.ts'
import type { HostSummary } from '../../lib/protocol/messages.ts'

let counter = 0

export interface ClusterOptions {
  /** Host ids to start, with extra `shoal host` arguments. */
  hosts: Array<{ id: string; args?: string[]; env?: Record<string, string> }>
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
    this.startBalancer()
    for (const h of this.opts.hosts) this.startHost(h.id, h.args, h.env)
    this.client = await ShoalClient.connect({ servers: this.url, cluster: this.cluster, requestTimeoutMs: 5000 })
    await this.waitFor(async () => (await this.client.status().then(() => true, () => false)), 30_000, 'the balancer to answer')
    await this.waitFor(async () => (await this.aliveHosts()).length === this.opts.hosts.length, 30_000, 'hosts to join')
    return this
  }

  startBalancer(): ChildProcess {
    this.balancer = this.spawn('balancer', ['balancer', ...(this.opts.balancerArgs ?? [])])
    return this.balancer
  }

  startHost(id: string, args: string[] = [], env: Record<string, string> = {}): ChildProcess {
    const child = this.spawn(id, ['host', '--id', id, '--slots', '2', ...args], env)
    this.hosts.set(id, child)
    return child
  }

  private spawn(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
    const child = spawnShoal(args, { env: { ...this.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
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

  /** Polls `cond` every 20 ms until it holds; fails with `what` after `timeoutMs`. */
  async waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (await cond()) return
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n--- balancer log tail:\n${this.log('balancer').slice(-3000)}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  async stop(): Promise<void> {
    await this.client?.close()
    const all = [...this.hosts.values(), ...(this.balancer ? [this.balancer] : [])]
    await Promise.all(all.map((c) => killAndWait(c, 'SIGTERM')))
  }
}

/** Sends `signal` and resolves when the process has exited (SIGKILL after 3 s). */
export function killAndWait(c: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return stopChild(c, signal)
}

export async function startCluster(url: string, opts: ClusterOptions): Promise<TestCluster> {
  return new TestCluster(url, opts).start()
}
