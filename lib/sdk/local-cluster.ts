/**
 * A whole Shoal cluster on this machine, for scripts, tests and `shoal up` — what `ray.init()` or
 * Dask's `LocalCluster()` give: its own nats-server (free port, temporary JetStream store), a
 * balancer in this process, and N host processes that load the caller's processor modules
 * (`.js`, or `.ts`, which Shoal loads itself through tsx: the caller's project needs nothing
 * more). `stop()` stops everything it started, and so does this process's exit.
 *
 *   const local = await LocalCluster.start({ hosts: 2, processors: ['./pi.ts'] })
 *   const client = await local.client()
 *   ...
 *   await local.stop()
 *
 * Must never touch a nats-server it did not start.
 */

import type { ChildProcess } from 'node:child_process'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { BalancerNode } from '../balancer/node.ts'
import { spawnShoal, stopChild } from '../cli/spawn.ts'
import { loadConfig } from '../config/mod.ts'
import { ShoalError } from '../errors.ts'
import { freePort } from '../free-port.ts'
import { createLogger } from '../log.ts'
import { startNatsServer, type RunningNatsServer } from '../nats-server/launcher.ts'
import { ShoalClient, type ShoalClientOptions } from './client.ts'

export interface LocalClusterOptions {
  /** Host processes to start. Default 2. */
  hosts?: number
  /** Worker slots per host. Default: the machine's cores, shared out among the hosts (at least 1). */
  slots?: number
  /** Processor modules every host loads (paths, relative to the working directory). */
  processors?: readonly string[]
  /** Serve Prometheus metrics from the balancer and every host on free ports. Default false. */
  metrics?: boolean
  /** Cluster name. Default `local<pid>`. */
  cluster?: string
  /** How long to wait for the hosts to join. Default 30000. */
  startTimeoutMs?: number
  /** Where the hosts' log lines go (they are pino JSON). Default: dropped. */
  onHostLog?: (hostId: string, line: string) => void
}

export class LocalCluster {
  private constructor(
    private readonly nats: RunningNatsServer,
    private readonly balancer: BalancerNode,
    private readonly children: ChildProcess[],
    /** NATS URL of the cluster's server. */
    readonly url: string,
    readonly cluster: string,
    readonly hostIds: string[],
    /** Metrics endpoints when started with `metrics` (balancer first), else empty. */
    readonly metricsUrls: string[],
  ) {}

  static async start(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
    const hosts = opts.hosts ?? 2
    if (!Number.isInteger(hosts) || hosts < 1 || hosts > 64) throw new ShoalError('E_CONFIG', `hosts must be an integer from 1 to 64 (got ${hosts})`)
    const cores = availableParallelism()
    const slots = opts.slots ?? Math.max(1, Math.floor(cores / hosts))
    const processors = (opts.processors ?? []).map((p) => path.resolve(p))
    const cluster = opts.cluster ?? `local${process.pid}`
    const nats = await startNatsServer()
    const children: ChildProcess[] = []
    let balancer: BalancerNode | undefined
    try {
      const config = loadConfig({ env: {}, overrides: { cluster, nats: { url: nats.url }, log: { level: 'warn' }, ...(opts.metrics ? { balancer: { metricsPort: 0 } } : {}) } as never })
      balancer = await BalancerNode.start({ config, logger: createLogger('shoal-balancer', 'warn') })
      const metricsUrls = balancer.metricsUrl ? [balancer.metricsUrl] : []
      const hostIds = Array.from({ length: hosts }, (_, i) => `local-h${i + 1}`)
      // The hosts get this cluster's settings, not a config file the caller's shell points at.
      const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_CLUSTER: cluster, SHOAL_NATS_URL: nats.url, SHOAL_LOG_LEVEL: 'warn' }
      delete env.SHOAL_CONFIG
      for (const id of hostIds) {
        const args = ['host', '--id', id, '--slots', String(slots), ...processors.flatMap((p) => ['--processor', p])]
        if (opts.metrics) {
          const port = await freePort()
          args.push('--metrics-port', String(port))
          metricsUrls.push(`http://127.0.0.1:${port}/metrics`)
        }
        const child = spawnShoal(args, { env, stdio: ['ignore', 'ignore', 'pipe'], typescript: processors.some(isTypeScript) })
        const onLog = opts.onHostLog
        // Whole lines: a chunk of a pipe may end in the middle of one.
        if (onLog && child.stderr) createInterface({ input: child.stderr }).on('line', (line) => line && onLog(id, line))
        else child.stderr?.resume()
        children.push(child)
      }
      const local = new LocalCluster(nats, balancer, children, nats.url, cluster, hostIds, metricsUrls)
      await local.waitForHosts(opts.startTimeoutMs ?? 30_000)
      return local
    } catch (e) {
      await Promise.all(children.map((c) => stopChild(c)))
      await balancer?.stop()
      await nats.stop()
      throw e
    }
  }

  /** A client of this cluster (close it yourself, before `stop()`). */
  client(opts: Omit<ShoalClientOptions, 'servers' | 'cluster'> = {}): Promise<ShoalClient> {
    return ShoalClient.connect({ ...opts, servers: this.url, cluster: this.cluster })
  }

  /** Stops the hosts, the balancer and the nats-server (its store is removed). */
  async stop(): Promise<void> {
    await Promise.all(this.children.map((c) => stopChild(c)))
    await this.balancer.stop()
    await this.nats.stop()
  }

  private async waitForHosts(timeoutMs: number): Promise<void> {
    const client = await this.client()
    try {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const exited = this.children.findIndex((c) => c.exitCode !== null || c.signalCode !== null)
        if (exited >= 0) throw new ShoalError('E_CONFIG', `host ${this.hostIds[exited]} exited while starting (code ${this.children[exited]!.exitCode}): does every processor module load? (shoal host --processor FILE shows why)`)
        const alive = (await client.hosts().catch(() => [])).filter((h) => h.state === 'alive').length
        if (alive >= this.hostIds.length) return
        if (Date.now() > deadline) throw new ShoalError('E_TIMEOUT', `only ${alive} of ${this.hostIds.length} hosts joined within ${timeoutMs} ms`)
        await new Promise((r) => setTimeout(r, 100))
      }
    } finally {
      await client.close()
    }
  }
}

function isTypeScript(file: string): boolean {
  return /\.(ts|mts|cts)$/.test(file)
}
