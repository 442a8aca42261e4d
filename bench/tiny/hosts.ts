/**
 * The hosts side of the tiny-shares benchmark, behind one small interface so a level of the sweep
 * (level.ts) measures real hosts and synthetic ones the same way:
 *   - RealHosts: `shoal host` child processes (product defaults, log level info as shipped) that
 *     register bench/processors/instant.ts; their CPU read from /proc of their pids.
 *   - SyntheticHosts: the scale benchmark's WorkerPool (bench/scale/worker-pool.ts), whose worker
 *     processes count their own CPU and every done report's answer time per window.
 *
 * Must never leave a process running: `stop()` waits for every exit (SIGKILL after a grace), and
 * spawnShoal / WorkerPool SIGKILL their children if this process exits first.
 */

import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { spawnShoal, stopChild } from '../../lib/cli/spawn.ts'
import { benchNodeArgs, BenchError, round } from '../support/bench.ts'
import { processTicks, USER_HZ } from '../support/cpu-account.ts'
import { summarizeMany } from '../scale/stats.ts'
import type { WorkerPool } from '../scale/worker-pool.ts'

const INSTANT = fileURLToPath(new URL('../processors/instant.ts', import.meta.url))
const TAIL_LINES = 40

/** What a level of the sweep needs from the hosts, whatever they are. */
export interface HostSide {
  /** Throws a BenchError if a host process died. */
  check(): void
  windowStart(): Promise<void>
  /** CPU seconds all host processes used since `windowStart`, and what else they counted. */
  windowEnd(): Promise<{ cpuS: number; counted: Record<string, unknown> }>
  stop(): Promise<void>
}

interface Child {
  id: string
  child: ChildProcess
  tail: string[]
  exit?: string
}

export class RealHosts implements HostSide {
  private readonly children: Child[] = []
  private ticks0 = 0

  /** Spawns `count` hosts with `slots` slots each; they join by themselves (the caller waits for that). */
  constructor(count: number, slots: number, natsUrl: string, cluster: string) {
    for (let i = 1; i <= count; i++) {
      const id = `h${i}`
      const child = spawnShoal(['host', '--id', id, '--slots', String(slots), '--processor', INSTANT], {
        env: { ...process.env, SHOAL_NATS_URL: natsUrl, SHOAL_CLUSTER: cluster, SHOAL_LOG_LEVEL: 'info' },
        stdio: ['ignore', 'ignore', 'pipe'],
        nodeArgs: benchNodeArgs(),
      })
      const c: Child = { id, child, tail: [] }
      // Drained always (a full pipe would block the host's logger), kept short for failure messages.
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        c.tail.push(d)
        if (c.tail.length > TAIL_LINES) c.tail.shift()
      })
      child.once('exit', (code, signal) => (c.exit = signal ?? `code ${code}`))
      this.children.push(c)
    }
  }

  get pids(): number[] {
    return this.children.map((c) => c.child.pid ?? -1)
  }

  check(): void {
    const dead = this.children.find((c) => c.exit !== undefined)
    if (dead) throw new BenchError(`host ${dead.id} exited (${dead.exit}):\n${dead.tail.join('').split('\n').slice(-15).join('\n')}`)
  }

  private ticks(): number {
    return this.children.reduce((n, c) => n + processTicks(c.child.pid ?? -1), 0)
  }

  windowStart(): Promise<void> {
    this.ticks0 = this.ticks()
    return Promise.resolve()
  }

  windowEnd(): Promise<{ cpuS: number; counted: Record<string, unknown> }> {
    return Promise.resolve({ cpuS: (this.ticks() - this.ticks0) / USER_HZ, counted: {} })
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((c) => stopChild(c.child, 'SIGTERM', 5_000)))
  }
}

export class SyntheticHosts implements HostSide {
  constructor(readonly pool: WorkerPool) {}

  check(): void {
    this.pool.check()
  }

  windowStart(): Promise<void> {
    return this.pool.windowStart()
  }

  async windowEnd(): Promise<{ cpuS: number; counted: Record<string, unknown> }> {
    const c = await this.pool.windowEnd()
    return {
      cpuS: c.cpuMs / 1000,
      counted: {
        doneReportsAcked: c.acked.done,
        doneReportTimeouts: c.timeouts.done,
        doneReportErrors: c.errors.done,
        doneAnswerMs: summarizeMany(c.ackMs.done),
        heartbeatsPerSec: round(c.heartbeats / (c.ms / 1000), 1),
      },
    }
  }

  stop(): Promise<void> {
    return this.pool.stop()
  }
}
