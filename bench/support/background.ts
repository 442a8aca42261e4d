/**
 * Stray background load that a benchmark starts itself (`--background CORES`, issue 9, point 4):
 * one `duty-cycle.ts` child per CPU, pinned to it with taskset, each asking for CORES of that
 * CPU. What they really used is measured from their /proc/<pid>/stat CPU times, because on a
 * contended CPU a duty cycle gets less than it asks for, and a figure "with 0.2 core of
 * background" must say how much it had.
 *
 * Linux only (taskset, /proc). Must never leave a child running: `stop()` kills them, and so does
 * this process's exit.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { pinnedPrefix } from '../../spec/support/cluster.ts'
import { BenchError, round, type BenchContext, type Figures } from './bench.ts'
import { processTicks, USER_HZ } from './cpu-account.ts'

const DUTY = fileURLToPath(new URL('./duty-cycle.ts', import.meta.url))

export interface BackgroundUse {
  /** What each CPU's child asked for, in cores. */
  askedCores: number
  /** What each child used, by CPU (cores, averaged over its life after start-up). */
  usedCores: Record<string, number>
}

/** The background's CPU time so far, per CPU, at a moment: two of them give its use in between. */
export interface BackgroundSample {
  at: number
  ticks: Record<string, number>
}

export interface Background {
  /** Its CPU time so far (for `usedBetween`). */
  sample(): BackgroundSample
  stop(): Promise<BackgroundUse>
}

/** Cores the background used on each CPU between two samples (NaN where it could not be read). */
export function usedBetween(a: BackgroundSample, b: BackgroundSample): Record<string, number> {
  const secs = (b.at - a.at) / 1000
  const out: Record<string, number> = {}
  for (const cpu of Object.keys(a.ticks)) out[cpu] = secs > 0 ? round((b.ticks[cpu]! - a.ticks[cpu]!) / USER_HZ / secs, 3) : Number.NaN
  return out
}

/** Resolves when the child prints `ready`; rejects if it exits first or takes 30 s. */
function ready(cpu: string, child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = ''
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const timer = setTimeout(() => reject(new BenchError(`background load on CPU ${cpu} did not start within 30 s`)), 30_000)
    child.stdout!.setEncoding('utf8').once('data', () => {
      clearTimeout(timer)
      resolve()
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new BenchError(`background load on CPU ${cpu} exited at start (${String(code ?? signal)}): ${err.trim().slice(-300)}`))
    })
  })
}

/**
 * Starts `cores` (0 < cores ≤ 1) of busy time on each of `cpus`. Resolves once every child has
 * loaded (its start-up is not counted in the measurement).
 */
export async function startBackground(cores: number, cpus: readonly string[]): Promise<Background> {
  if (!(cores > 0 && cores <= 1)) throw new BenchError(`--background must be a number of cores in (0, 1] per CPU (got ${cores})`)
  const children: Array<{ cpu: string; child: ChildProcess }> = []
  const kill = () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL')
  }
  process.once('exit', kill)
  try {
    for (const cpu of cpus) {
      const [exe, ...pre] = pinnedPrefix(cpu)
      const child = spawn(exe!, [...pre, process.execPath, '--import', 'tsx', DUTY, String(cores)], { stdio: ['ignore', 'pipe', 'pipe'] })
      children.push({ cpu, child })
    }
    await Promise.all(children.map((c) => ready(c.cpu, c.child)))
  } catch (e) {
    kill()
    process.off('exit', kill)
    throw e
  }
  const sample = (): BackgroundSample => ({ at: Date.now(), ticks: Object.fromEntries(children.map((c) => [c.cpu, processTicks(c.child.pid!)])) })
  // The baseline is taken once every child spins: tsx's start-up is not load.
  const start = sample()
  return {
    sample,
    async stop(): Promise<BackgroundUse> {
      const usedCores = usedBetween(start, sample())
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.child.exitCode !== null || c.child.signalCode !== null) return resolve()
              c.child.once('exit', () => resolve())
              c.child.kill('SIGKILL')
            }),
        ),
      )
      process.off('exit', kill)
      return { askedCores: cores, usedCores }
    },
  }
}

/**
 * Runs `measure` with `cores` of background load on each of `cpus` (none when `cores` is 0 or
 * undefined), and puts what the load asked for and used in front of the figures as `background`.
 */
export async function withBackground(ctx: BenchContext, cores: number | undefined, cpus: readonly string[], measure: (bg?: Background) => Promise<Figures>): Promise<Figures> {
  if (!cores) return { background: { askedCores: 0 }, ...(await measure()) }
  ctx.log(`background: ${cores} core of busy time on each of CPUs ${cpus.join(', ')} (pinned duty cycles), through the whole run`)
  const bg = await startBackground(cores, cpus)
  let figures: Figures | undefined
  try {
    figures = await measure(bg)
  } finally {
    const use = await bg.stop()
    ctx.log(`background used ${Object.entries(use.usedCores).map(([cpu, c]) => `${c} core on CPU ${cpu}`).join(', ')}`)
    if (figures) figures = { background: use, ...figures }
  }
  return figures
}
