/**
 * A real `shoal balancer` child process for the scale benchmark, with what the benchmark reads
 * from it: its pid (for its CPU time in /proc), its metrics URL (it serves metrics on a free port,
 * `--metrics-port 0`, and logs where), and its log — the moments it was elected and started
 * serving (with the record counts it recovered), and how many warnings and errors it logged, by
 * message, so a run says what the balancer complained about.
 *
 * Must never leave the process running: `stop()` and `kill()` wait for its exit, and spawnShoal
 * SIGKILLs it if this process exits first.
 */

import type { ChildProcess } from 'node:child_process'
import { spawnShoal, stopChild } from '../../lib/cli/spawn.ts'
import { benchNodeArgs, BenchError, sleep } from '../support/bench.ts'

/** One pino log line, as far as the benchmark reads it. */
export interface LogLine {
  level: number
  time: number
  msg: string
  [k: string]: unknown
}

const WARN = 40
const ERROR = 50
const TAIL_LINES = 200

export class BalancerProcess {
  readonly child: ChildProcess
  readonly startedAt = Date.now()
  private readonly lines: string[] = []
  /** Warnings and errors logged, by `level msg`. */
  readonly complaints = new Map<string, number>()
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  metricsUrl: string | undefined
  /** Log times (ms since the epoch) of: started (following the lease), elected, serving. */
  followingAt: number | undefined
  electedAt: number | undefined
  serving: { at: number; jobs: number | undefined; shares: number | undefined } | undefined

  constructor(
    readonly id: string,
    natsUrl: string,
    cluster: string,
  ) {
    this.child = spawnShoal(['balancer', '--id', id, '--metrics-port', '0'], {
      // Finished jobs held in memory for a day, not the default 5 minutes: the issue's figures
      // (heartbeat cost with 100,000 finished shares held, recovery of 100,000 records) are about
      // a balancer that holds its history, which the default would let it shed within minutes.
      env: { ...process.env, SHOAL_NATS_URL: natsUrl, SHOAL_CLUSTER: cluster, SHOAL_LOG_LEVEL: 'info', SHOAL_JOBS_RETAIN_MS: '86400000' },
      stdio: ['ignore', 'ignore', 'pipe'],
      nodeArgs: benchNodeArgs(),
    })
    let partial = ''
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      const parts = (partial + d).split('\n')
      partial = parts.pop() ?? ''
      for (const l of parts) this.onLine(l)
    })
    this.child.once('exit', (code, signal) => (this.exit = { code, signal }))
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  private onLine(text: string): void {
    this.lines.push(text)
    if (this.lines.length > TAIL_LINES) this.lines.shift()
    let l: LogLine
    try {
      l = JSON.parse(text) as LogLine
    } catch {
      return
    }
    if (typeof l.msg !== 'string') return
    if (l.level >= WARN) {
      const key = `${l.level >= ERROR ? 'error' : 'warn'}: ${l.msg}`
      this.complaints.set(key, (this.complaints.get(key) ?? 0) + 1)
    }
    if (l.msg === 'serving metrics' && typeof l.url === 'string') this.metricsUrl = l.url
    if (l.msg.startsWith('balancer started')) this.followingAt = l.time
    if (l.msg.startsWith('elected leader with term')) this.electedAt = l.time
    if (l.msg.startsWith('leading: state recovered')) {
      this.serving = { at: l.time, jobs: typeof l.jobs === 'number' ? l.jobs : undefined, shares: typeof l.shares === 'number' ? l.shares : undefined }
    }
  }

  /** The last lines it logged (for failure messages). */
  tail(n = 30): string {
    return this.lines.slice(-n).join('\n')
  }

  /** Throws if the process has exited. */
  check(): void {
    if (this.exit) throw new BenchError(`balancer ${this.id} exited (${this.exit.signal ?? `code ${this.exit.code}`}):\n${this.tail()}`)
  }

  /** Resolves once `cond` holds (polled every 20 ms); BenchError if the process exits or after `timeoutMs`. */
  async until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!cond()) {
      this.check()
      if (Date.now() > deadline) throw new BenchError(`balancer ${this.id}: timed out after ${timeoutMs} ms waiting for ${what}:\n${this.tail()}`)
      await sleep(20)
    }
  }

  /** Warnings and errors logged since `before` (a copy of `complaints` taken earlier). */
  complaintsSince(before: ReadonlyMap<string, number>): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [k, n] of this.complaints) if (n > (before.get(k) ?? 0)) out[k] = n - (before.get(k) ?? 0)
    return out
  }

  /** SIGKILL, and wait for the exit. */
  async kill(): Promise<void> {
    await stopChild(this.child, 'SIGKILL')
  }

  /** SIGTERM (SIGKILL after 5 s), and wait for the exit. */
  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGTERM', 5_000)
  }
}
