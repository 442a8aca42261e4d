/**
 * The benchmark's side of its synthetic-host workers: starts the worker processes (each simulating
 * a contiguous slice of the hosts), sends them orders over IPC, merges what they counted in a
 * window, and stops them.
 *
 * A worker that exits before it is told to stop is a failed run: `check()` throws a BenchError
 * with its last output. Must never leave a worker running: `stop()` waits for each exit and
 * SIGKILLs a worker that does not go within 5 s; the workers also exit when this process's IPC
 * channel closes, and spawnShoal-style `exit` hooks SIGKILL them if this process exits first.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { stopChild } from '../../lib/cli/spawn.ts'
import { BenchError } from '../support/bench.ts'
import { emptyByKind, WORKER_ENV, type Census, type ReportKind, type WindowCounts, type WorkerOrder, type WorkerReply, type WorkerSetup } from './ipc.ts'

const WORKER = fileURLToPath(new URL('./synthetic-worker.ts', import.meta.url))
const ORDER_TIMEOUT_MS = 30_000
const READY_TIMEOUT_MS = 60_000

type OrderBody = WorkerOrder extends infer O ? (O extends { id: number } ? Omit<O, 'id'> : never) : never

interface Worker {
  index: number
  child: ChildProcess
  hosts: number
  pending: Map<number, (r: WorkerReply) => void>
  stderr: string
  exited: boolean
}

export class WorkerPool {
  private readonly workers: Worker[] = []
  private nextId = 0
  private stopping = false
  private died: string | undefined

  private constructor() {}

  /** Starts `count` workers sharing `hostIds` and resolves when all are connected and listening. */
  static async start(count: number, base: Omit<WorkerSetup, 'index' | 'workers' | 'hostIds'>, hostIds: readonly string[]): Promise<WorkerPool> {
    const pool = new WorkerPool()
    const per = Math.ceil(hostIds.length / count)
    const ready: Array<Promise<void>> = []
    for (let i = 0; i < count; i++) {
      const slice = hostIds.slice(i * per, (i + 1) * per)
      if (!slice.length) break
      ready.push(pool.spawn({ ...base, index: i, workers: count, hostIds: slice }))
    }
    try {
      await Promise.all(ready)
    } catch (e) {
      await pool.stop()
      throw e
    }
    return pool
  }

  private spawn(setup: WorkerSetup): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      env: { ...process.env, [WORKER_ENV]: JSON.stringify(setup) },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'advanced',
    })
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    process.once('exit', kill)
    const w: Worker = { index: setup.index, child, hosts: setup.hostIds.length, pending: new Map(), stderr: '', exited: false }
    this.workers.push(w)
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (w.stderr = (w.stderr + d).slice(-4000)))
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new BenchError(`scale worker ${setup.index} did not start within ${READY_TIMEOUT_MS} ms: ${w.stderr}`)), READY_TIMEOUT_MS)
      child.on('message', (m: WorkerReply | { t: 'ready' }) => {
        if (m.t === 'ready') {
          clearTimeout(timer)
          resolve()
          return
        }
        const settle = w.pending.get(m.id)
        w.pending.delete(m.id)
        settle?.(m)
      })
      child.once('exit', (code, signal) => {
        process.off('exit', kill)
        w.exited = true
        clearTimeout(timer)
        const why = `scale worker ${setup.index} exited (${signal ?? `code ${code}`}): ${w.stderr.trim().split('\n').slice(-5).join(' | ')}`
        if (!this.stopping) this.died ??= why
        for (const settle of w.pending.values()) settle({ id: -1, t: 'error', message: why })
        w.pending.clear()
        reject(new BenchError(why))
      })
    })
  }

  /** Throws if a worker died on its own. */
  check(): void {
    if (this.died) throw new BenchError(this.died)
  }

  get hostCount(): number {
    return this.workers.reduce((n, w) => n + w.hosts, 0)
  }

  private order(w: Worker, body: OrderBody): Promise<WorkerReply> {
    const id = ++this.nextId
    return new Promise<WorkerReply>((resolve, reject) => {
      if (w.exited) return reject(new BenchError(this.died ?? `scale worker ${w.index} has exited`))
      const timer = setTimeout(() => {
        w.pending.delete(id)
        reject(new BenchError(`scale worker ${w.index} did not answer '${body.t}' within ${ORDER_TIMEOUT_MS} ms`))
      }, ORDER_TIMEOUT_MS)
      w.pending.set(id, (r) => {
        clearTimeout(timer)
        if (r.t === 'error') reject(new BenchError(`scale worker ${w.index}: ${r.message}`))
        else resolve(r)
      })
      w.child.send({ ...body, id } as WorkerOrder)
    })
  }

  private all(body: OrderBody): Promise<WorkerReply[]> {
    this.check()
    return Promise.all(this.workers.map((w) => this.order(w, body)))
  }

  /** The first `total` hosts beat (spread over the workers); the others fall silent. */
  async setActive(total: number): Promise<void> {
    const n = this.workers.length
    await Promise.all(this.workers.map((w, i) => this.order(w, { t: 'active', count: Math.min(w.hosts, Math.floor(total / n) + (i < total % n ? 1 : 0)) })))
  }

  async windowStart(): Promise<void> {
    await this.all({ t: 'window-start' })
  }

  /** What every worker counted since `windowStart`, merged. */
  async windowEnd(): Promise<WindowCounts> {
    const counts = (await this.all({ t: 'window-end' })).map((r) => (r.t === 'window' ? r.counts : undefined)).filter((c): c is WindowCounts => c !== undefined)
    return mergeCounts(counts)
  }

  async census(): Promise<Census> {
    const all = (await this.all({ t: 'census' })).map((r) => (r.t === 'census' ? r.census : { running: 0, finishing: 0, activeHosts: 0 }))
    return all.reduce((a, c) => ({ running: a.running + c.running, finishing: a.finishing + c.finishing, activeHosts: a.activeHosts + c.activeHosts }), { running: 0, finishing: 0, activeHosts: 0 })
  }

  /** Stops every worker (asks, then waits; SIGKILL after 5 s). */
  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all(
      this.workers.map(async (w) => {
        if (w.exited) return
        await this.order(w, { t: 'stop' }).catch(() => undefined)
        await stopChild(w.child, 'SIGTERM', 5_000)
      }),
    )
  }
}

function mergeCounts(all: WindowCounts[]): WindowCounts {
  const kinds: ReportKind[] = ['checkpoint', 'done', 'failed']
  const sum = (pick: (c: WindowCounts) => Record<ReportKind, number>) => {
    const out = emptyByKind(() => 0)
    for (const c of all) for (const k of kinds) out[k] += pick(c)[k]
    return out
  }
  const ackMs = emptyByKind(() => new Float64Array(0))
  for (const k of kinds) {
    const parts = all.map((c) => c.ackMs[k])
    const merged = new Float64Array(parts.reduce((n, p) => n + p.length, 0))
    let at = 0
    for (const p of parts) {
      merged.set(p, at)
      at += p.length
    }
    ackMs[k] = merged
  }
  const commands: Record<string, number> = {}
  for (const c of all) for (const [t, n] of Object.entries(c.commands)) commands[t] = (commands[t] ?? 0) + n
  return {
    ms: Math.max(0, ...all.map((c) => c.ms)),
    heartbeats: all.reduce((n, c) => n + c.heartbeats, 0),
    maxHeartbeatGapMs: Math.max(0, ...all.map((c) => c.maxHeartbeatGapMs)),
    sent: sum((c) => c.sent),
    acked: sum((c) => c.acked),
    nacked: sum((c) => c.nacked),
    timeouts: sum((c) => c.timeouts),
    errors: sum((c) => c.errors),
    checkpointsSkipped: all.reduce((n, c) => n + c.checkpointsSkipped, 0),
    ackMs,
    commands,
    cpuMs: all.reduce((n, c) => n + c.cpuMs, 0),
  }
}
