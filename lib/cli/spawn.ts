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

/** Options of `spawnShoal`: those of `child_process.spawn`, plus a command prefix. */
export interface SpawnShoalOptions extends SpawnOptions {
  /**
   * A command that runs the shoal process, e.g. `['/usr/bin/taskset', '-c', '1']` to pin it to
   * CPU 1. It must exec its last arguments in place (as taskset, nice and chrt do), so the child's
   * pid stays that of the shoal process and signals reach it.
   */
  prefix?: readonly string[]
  /**
   * The child loads TypeScript modules (a user's processors): run it under Shoal's own tsx
   * loader even when Shoal runs compiled, so the user's project needs no TypeScript tooling.
   * Worker threads inherit the loader with the process's execArgv.
   */
  typescript?: boolean
  /** Options for the child's node itself (e.g. `--cpu-prof`), before the CLI's own arguments. */
  nodeArgs?: readonly string[]
}

/** Spawns `shoal <args>`; the child is SIGKILLed if this process exits first. */
export function spawnShoal(args: string[], opts: SpawnShoalOptions = {}): ChildProcess {
  const { prefix = [], typescript = false, nodeArgs = [], ...spawnOpts } = opts
  const [exe, pre] = shoalCommand()
  // Resolved from Shoal's own dependencies, not from the caller's working directory.
  const loader = typescript && !fromSource ? ['--import', import.meta.resolve('tsx')] : []
  const argv = [...prefix, exe, ...nodeArgs, ...loader, ...pre, ...args]
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts })
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
