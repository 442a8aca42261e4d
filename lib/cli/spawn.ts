/**
 * How to start another `shoal` process (a host in the demo, hosts and balancers in tests) with
 * the same code this process runs: the TypeScript sources under the tsx loader when running from
 * source, the compiled entry otherwise.
 *
 * Must never decide what the child does: callers pass the arguments.
 */

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const fromSource = import.meta.url.endsWith('.ts')

/** `[executable, ...args]` that runs the shoal CLI. */
export function shoalCommand(): [string, string[]] {
  const main = fileURLToPath(new URL(fromSource ? './main.ts' : './main.js', import.meta.url))
  return [process.execPath, fromSource ? ['--import', 'tsx', main] : [main]]
}

/** Spawns `shoal <args>`; the child is SIGKILLed if this process exits first. */
export function spawnShoal(args: string[], opts: SpawnOptions = {}): ChildProcess {
  const [exe, pre] = shoalCommand()
  const child = spawn(exe, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  process.once('exit', kill)
  child.once('exit', () => process.off('exit', kill))
  return child
}

/** Sends `signal` and resolves once the child has exited (SIGKILL after `graceMs`). */
export function stopChild(c: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve()
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs)
    c.once('exit', () => {
      clearTimeout(t)
      resolve()
    })
    c.kill(signal)
  })
}
