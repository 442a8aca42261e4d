/**
 * Starting a real Shoal cluster (balancer + host processes) for a benchmark, on top of the test
 * helper `spec/support/cluster.ts`, with one addition: a process that exits while the cluster is
 * starting (a configuration the product refuses, say) fails the start at once with that process's
 * log, instead of after the helper's 30 s wait.
 *
 * Must never leave a process running: a failed start stops whatever it started before rethrowing.
 */

import type { ChildProcess } from 'node:child_process'
import { TestCluster, type ClusterOptions } from '../../spec/support/cluster.ts'

export { killAndWait, type TestCluster } from '../../spec/support/cluster.ts'

/** A cluster that did not start because one of its processes exited; `log` is that process's output. */
export class ClusterStartError extends Error {
  override name = 'ClusterStartError'
  constructor(
    message: string,
    readonly processName: string,
    readonly log: string,
  ) {
    super(message)
  }
}

/** Starts balancer and hosts and waits until every host is alive in the pool. */
export async function startBenchCluster(url: string, opts: ClusterOptions): Promise<TestCluster> {
  const c = new TestCluster(url, opts)
  // start() spawns every process synchronously before its first await, so they exist right after the call.
  const starting = c.start()
  starting.catch(() => undefined)
  // No balancer means start() refused before spawning anything (e.g. taskset missing): its error says why.
  if (!c.balancer) {
    await starting
    throw new Error('the cluster did not start')
  }
  const procs: Array<[string, ChildProcess]> = [['balancer', c.balancer!], ...c.hosts.entries()]
  const listeners: Array<() => void> = []
  const exited = new Promise<never>((_, reject) => {
    for (const [name, p] of procs) {
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        // The log pipe may still hold the last lines: give it a moment to drain.
        setTimeout(() => {
          const log = c.log(name)
          reject(new ClusterStartError(`${name} exited (${signal ?? `code ${code}`}) while the cluster was starting: ${firstErrorLine(log)}`, name, log))
        }, 100)
      }
      p.once('exit', onExit)
      listeners.push(() => p.off('exit', onExit))
    }
  })
  exited.catch(() => undefined)
  try {
    await Promise.race([starting, exited])
    return c
  } catch (e) {
    await c.stop()
    throw e
  } finally {
    for (const off of listeners) off()
  }
}

/** The most telling line of a process log: the first that names an error, else the last one. */
export function firstErrorLine(log: string): string {
  const lines = log.split('\n').map((l) => l.trim()).filter(Boolean)
  const err = lines.find((l) => /\bE_[A-Z_]+\b|error/i.test(l))
  const line = err ?? lines.at(-1) ?? '(no output)'
  // pino lines are JSON: show the message (and error message) rather than the whole record.
  try {
    const o = JSON.parse(line) as { msg?: unknown; err?: { message?: unknown } }
    const parts = [o.msg, o.err?.message].filter((x): x is string => typeof x === 'string')
    if (parts.length) return parts.join(': ')
  } catch {
    // not JSON
  }
  return line.length > 600 ? `${line.slice(0, 600)}…` : line
}
