/**
 * The system the chaos benchmark breaks: a 3-node nats-server cluster (or, if that cannot start, a
 * single node, said in `fallback`), two balancers and the hosts, each Shoal process given only its
 * own node's URL. The rig owns the bookkeeping the figures need and that faults must keep right:
 *   - every child process it started, and which exits it caused itself: any other exit (a Shoal
 *     process, or a NATS node noticed down that it did not take down) is recorded with its name;
 *   - every balancer log line, read whole: "host dead" verdicts, "elected leader" lines, errors;
 *   - when it killed or stopped which host, so that verdicts can be checked (chaos-audit.ts).
 * Every process's log (NATS nodes too) is also written whole to a directory under the system's temp
 * directory, which is left behind on purpose: a fault found by a run is followed up there.
 *
 * Must never signal a process without recording it first, never use a NATS server it did not start,
 * and never leave a process running: `stop()` ends everything, also after a failure.
 */

import type { ChildProcess } from 'node:child_process'
import { createWriteStream, mkdtempSync, type WriteStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NatsConnection } from '@nats-io/transport-node'
import { startNatsCluster, type RunningNatsCluster } from '../../lib/nats-server/cluster.ts'
import { ShoalClient } from '../../lib/sdk/client.ts'
import { BenchError, sleep, until } from './bench.ts'
import { startBenchCluster, type TestCluster } from './cluster.ts'
import { parseDeadVerdict, type DeadVerdict, type HostFaultWindow } from './chaos-audit.ts'
import { adminConnection, streamNames, waitForStreamsCurrent } from './stream-watch.ts'

export interface RigOptions {
  log: (line: string) => void
  /** Host ids at the start; host i uses NATS node i mod nodes (after the balancers' nodes). */
  hosts: readonly string[]
  balancers: readonly string[]
  slotsPerHost: number
  /** SHOAL_* settings for every Shoal process (replicas are set by the rig). */
  env: Record<string, string>
  /** balancer.leaseMs in force (the product default unless `env` overrides it). */
  leaseMs: number
}

export interface ExitRecord {
  name: string
  pid: number | undefined
  how: string
  at: number
}

/** A process-level fact worth showing: an error-level log line of a Shoal process. */
export interface ErrorLine {
  name: string
  msg: string
  at: number
}

const STATUS_TIMEOUT_MS = 30_000

export class ChaosRig {
  readonly verdicts: DeadVerdict[] = []
  readonly elections: Array<{ balancer: string; term: number; at: number }> = []
  readonly errors: ErrorLine[] = []
  readonly windows: HostFaultWindow[] = []
  readonly exited: ExitRecord[] = []
  /** NATS node of each Shoal process by name (index into nats.nodes). */
  readonly nodeOf = new Map<string, number>()
  private readonly expected = new Set<ChildProcess>()
  private readonly natsDown = new Set<number>()
  private natsTimer: NodeJS.Timeout | undefined
  private stopping = false
  private readonly logFiles = new Map<string, WriteStream>()
  shoal!: TestCluster
  /** Retries for as long as a takeover or an election may take: for submits and recovery waits. */
  client!: ShoalClient
  /** Gives up after 150 ms: for polls that must stay close together (takeover timing). */
  fast!: ShoalClient
  /** Gives up after 1 s: one poll of the progress-gap watch. */
  poller!: ShoalClient
  admin!: NatsConnection

  private constructor(
    readonly nats: RunningNatsCluster,
    readonly replicas: number,
    /** Why the run uses a single NATS node, when it does. */
    readonly fallback: string | undefined,
    private readonly o: RigOptions,
    /** Where every process's whole log is kept (see the header). */
    readonly logDir: string,
  ) {}

  get leaseMs(): number {
    return this.o.leaseMs
  }

  /** NATS nodes that faults may take down: none on a single node (that would stop everything). */
  get faultableNodes(): number {
    return this.nats.nodes.length >= 3 ? this.nats.nodes.length : 0
  }

  static async start(o: RigOptions): Promise<ChaosRig> {
    const logDir = mkdtempSync(join(tmpdir(), 'shoal-chaos-'))
    o.log(`every process's log goes to ${logDir}`)
    let nats: RunningNatsCluster
    let fallback: string | undefined
    try {
      nats = await startNatsCluster({ nodes: 3, logDir })
      try {
        o.log(`NATS cluster up (${nats.urls.join(', ')}); JetStream ready after ${await nats.waitForJetStream(30_000)} ms`)
      } catch (e) {
        await nats.stop()
        throw e
      }
    } catch (e) {
      fallback = `the 3-node NATS cluster did not start (${(e as Error).message.split('\n')[0]}): ran on a single nats-server with 1 replica and no NATS faults`
      o.log(`WARNING: ${fallback}`)
      nats = await startNatsCluster({ nodes: 1, logDir })
      await nats.waitForJetStream(30_000)
    }
    const rig = new ChaosRig(nats, fallback ? 1 : 3, fallback, o, logDir)
    try {
      await rig.startShoal()
    } catch (e) {
      await rig.stop()
      throw e
    }
    return rig
  }

  private async startShoal(): Promise<void> {
    const urls = this.nats.urls
    const n = urls.length
    this.o.balancers.forEach((id, i) => this.nodeOf.set(id, i % n))
    this.o.hosts.forEach((id, i) => this.nodeOf.set(id, (i + this.o.balancers.length) % n))
    this.shoal = await startBenchCluster(this.nats.url, {
      balancers: this.o.balancers.map((id) => ({ id, nats: urls[this.nodeOf.get(id)!]! })),
      hosts: this.o.hosts.map((id) => ({ id, args: ['--slots', String(this.o.slotsPerHost)], env: { SHOAL_NATS_URL: urls[this.nodeOf.get(id)!]! } })),
      env: { ...this.o.env, SHOAL_NATS_REPLICAS: String(this.replicas) },
      onLine: (name, line) => this.onLine(name, line),
    })
    for (const [id, c] of this.shoal.balancers) this.watchExit(id, c)
    for (const [id, c] of this.shoal.hosts) this.watchExit(id, c)
    this.admin = await adminConnection(urls)
    this.client = await ShoalClient.connect({ servers: urls, cluster: this.shoal.cluster, requestTimeoutMs: STATUS_TIMEOUT_MS })
    this.fast = await ShoalClient.connect({ servers: urls, cluster: this.shoal.cluster, requestTimeoutMs: 150 })
    this.poller = await ShoalClient.connect({ servers: urls, cluster: this.shoal.cluster, requestTimeoutMs: 1_000 })
    // A NATS node has no exit event here: look every 100 ms for one that is down though not taken down.
    this.natsTimer = setInterval(() => {
      if (this.stopping) return
      this.nats.nodes.forEach((node, i) => {
        if (node.running || this.natsDown.has(i)) return
        this.natsDown.add(i)
        this.exited.push({ name: `nats ${node.name}`, pid: undefined, how: 'found down', at: Date.now() })
        this.o.log(`UNEXPECTED: NATS node ${node.name} is down and the benchmark did not take it down`)
      })
    }, 100)
  }

  private onLine(name: string, line: string): void {
    let file = this.logFiles.get(name)
    if (!file) {
      // Appending: a balancer restarted under its id continues its file.
      file = createWriteStream(join(this.logDir, `${name}.log`), { flags: 'a' })
      // A log file that cannot be written must not stop the run: the figures do not depend on it.
      file.on('error', () => undefined)
      this.logFiles.set(name, file)
    }
    file.write(line + '\n')
    if (this.o.balancers.includes(name)) {
      const v = parseDeadVerdict(name, line)
      if (v) this.verdicts.push(v)
      const m = /"msg":"elected leader with term (\d+)/.exec(line)
      const t = /"time":(\d+)/.exec(line)
      if (m && t) this.elections.push({ balancer: name, term: Number(m[1]), at: Number(t[1]) })
    }
    // Error-level pino lines (50 error, 60 fatal) of any Shoal process, for the report.
    if (/"level":[56]0\b/.test(line)) {
      try {
        const o = JSON.parse(line) as { msg?: string; err?: unknown; time?: number }
        this.errors.push({ name, msg: `${o.msg ?? ''}${o.err ? `: ${typeof o.err === 'string' ? o.err : JSON.stringify(o.err)}` : ''}`, at: o.time ?? Date.now() })
      } catch {
        this.errors.push({ name, msg: line.slice(0, 300), at: Date.now() })
      }
    }
  }

  private watchExit(name: string, c: ChildProcess): void {
    c.once('exit', (code, signal) => {
      if (this.expected.has(c) || this.stopping) return
      this.exited.push({ name, pid: c.pid, how: signal ?? `code ${code}`, at: Date.now() })
      this.o.log(`UNEXPECTED: ${name} (pid ${c.pid}) exited on its own (${signal ?? `code ${code}`})\n${this.shoal.log(name).slice(-2000)}`)
    })
  }

  // ------------------------------------------------------------------ processes

  /** Sends `signal` to a Shoal process, recording a SIGKILL as an exit the benchmark caused. */
  signal(c: ChildProcess, signal: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT'): void {
    if (signal === 'SIGKILL') this.expected.add(c)
    c.kill(signal)
  }

  /** Resolves once `c` has exited. */
  exitOf(c: ChildProcess): Promise<void> {
    if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve()
    return new Promise((r) => c.once('exit', () => r()))
  }

  /** Starts a host process `id` on NATS node `node`. */
  startHost(id: string, node: number): ChildProcess {
    this.nodeOf.set(id, node)
    const c = this.shoal.startHost(id, ['--slots', String(this.o.slotsPerHost)], { SHOAL_NATS_URL: this.nats.urls[node]! })
    this.watchExit(id, c)
    return c
  }

  /** Starts balancer `id` again (after a kill) on its own NATS node. */
  restartBalancer(id: string): ChildProcess {
    const c = this.shoal.startBalancer(id, this.nats.urls[this.nodeOf.get(id)!]!)
    this.watchExit(id, c)
    return c
  }

  /** The leader as status names it, with its process (waits while no leader answers). */
  async leader(): Promise<{ id: string; pid: number; term: number; child: ChildProcess }> {
    const l = await until(async () => (await this.client.status().catch(() => undefined))?.leader, STATUS_TIMEOUT_MS, 'a leader to answer status')
    const child = this.shoal.balancers.get(l.id)
    if (!child || child.pid !== l.pid) throw new BenchError(`status names leader ${l.id} pid ${l.pid}, which is not a balancer this benchmark runs (${[...this.shoal.balancers].map(([id, c]) => `${id} pid ${c.pid}`).join(', ')})`)
    return { id: l.id, pid: l.pid, term: l.term, child }
  }

  /** Waits until balancer `id` is heard as a standby. */
  async waitForStandby(id: string, timeoutMs = STATUS_TIMEOUT_MS): Promise<void> {
    await until(async () => (await this.client.status().catch(() => undefined))?.standbys?.some((s) => s.id === id) === true, timeoutMs, `balancer ${id} to stand by`, 100)
  }

  /** Waits until at least one standby is heard. */
  async waitForAnyStandby(timeoutMs = STATUS_TIMEOUT_MS): Promise<void> {
    await until(async () => ((await this.client.status().catch(() => undefined))?.standbys?.length ?? 0) > 0, timeoutMs, 'a standby balancer to be heard', 100)
  }

  /** Waits until host `id` is alive in the pool. */
  async waitForHostAlive(id: string, timeoutMs = STATUS_TIMEOUT_MS): Promise<void> {
    await until(async () => (await this.client.status().catch(() => undefined))?.hosts.some((h) => h.hostId === id && h.state === 'alive') === true, timeoutMs, `host ${id} to be alive`, 100)
  }

  // ------------------------------------------------------------------ NATS nodes

  /** Takes node `i` down with `signal` (recorded as the benchmark's doing). */
  async natsDownNode(i: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    this.natsDown.add(i)
    await this.nats.kill(i, signal)
  }

  /** Restarts node `i` and waits until every stream of the Shoal cluster has caught up on it. */
  async natsRestartNode(i: number): Promise<{ restartMs: number; catchUpMs: number }> {
    const t0 = Date.now()
    await this.nats.restart(i)
    this.natsDown.delete(i)
    const restartMs = Date.now() - t0
    const catchUpMs = await waitForStreamsCurrent(this.admin, streamNames(this.shoal.cluster), 60_000)
    return { restartMs, catchUpMs }
  }

  // ------------------------------------------------------------------ the end

  /** Stops every process and NATS node (idempotent); exits from here on are not counted. */
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    if (this.natsTimer) clearInterval(this.natsTimer)
    // A stopped process cannot act on SIGTERM: continue every Shoal process first.
    for (const c of [...(this.shoal?.hosts.values() ?? []), ...(this.shoal?.balancers.values() ?? [])]) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGCONT')
    }
    await Promise.all([this.client?.close(), this.fast?.close(), this.poller?.close()])
    await this.admin?.close().catch(() => undefined)
    await this.shoal?.stop()
    await this.nats.stop()
    // Let the last log lines arrive before the figures are made (pipes drain after exit).
    await sleep(50)
    await Promise.all([...this.logFiles.values()].map((f) => new Promise<void>((r) => f.end(() => r()))))
  }
}
