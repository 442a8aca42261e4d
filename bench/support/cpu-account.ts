/**
 * How much CPU other people's work took while a benchmark ran: the machine's busy CPU time
 * (/proc/stat) minus the CPU time of this process and every process it started (its live
 * descendants from /proc/<pid>/stat, plus what reaped descendants left in their parents' child
 * times). On a shared machine this says whether a figure was measured on the CPUs the benchmark
 * assumed it had, or next to someone else's test run.
 *
 * Linux only: elsewhere `cpuSnapshot` returns null and no figure is reported. A descendant whose
 * parent died before it (reparented to init) is counted as foreign from then on; the benchmarks'
 * processes are reaped by their parents, so this is at most a tsx esbuild helper's few ticks.
 *
 * Must never fail a benchmark: any read error gives null, never an exception.
 */

import { readdirSync, readFileSync } from 'node:fs'

export interface CpuSnapshot {
  /** Date.now() at the snapshot. */
  at: number
  /** Busy ticks summed over all CPUs (user + nice + system + irq + softirq + steal). */
  machineBusy: number
  /** CPUs counted in /proc/stat. */
  cpus: number
  /** Ticks of this process tree (see the header). */
  tree: number
  /** Clock ticks per second of both figures (USER_HZ, 100 on every Linux build). */
  hz: number
}

export const USER_HZ = 100

/** pid, ppid and utime + stime + cutime + cstime of one /proc/<pid>/stat text. */
function parseStat(text: string): { pid: number; ppid: number; ticks: number } | null {
  // The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
  const close = text.lastIndexOf(')')
  if (close < 0) return null
  const pid = Number(text.slice(0, text.indexOf(' ')))
  const f = text.slice(close + 2).split(' ')
  // f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
  const ppid = Number(f[1])
  const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
  return Number.isFinite(pid) && Number.isFinite(ppid) && Number.isFinite(ticks) ? { pid, ppid, ticks } : null
}

/** CPU time of process `pid` (and its reaped children) so far, in ticks of USER_HZ; NaN when unreadable. */
export function processTicks(pid: number): number {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.ticks ?? Number.NaN
  } catch {
    return Number.NaN
  }
}

/** A snapshot of the machine's and this process tree's CPU time; null when it cannot be read. */
export function cpuSnapshot(): CpuSnapshot | null {
  if (process.platform !== 'linux') return null
  try {
    const stat = readFileSync('/proc/stat', 'latin1')
    const all = /^cpu\s+(.*)$/m.exec(stat)
    if (!all) return null
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = all[1]!.trim().split(/\s+/).map(Number)
    const cpus = stat.split('\n').filter((l) => /^cpu\d+\s/.test(l)).length
    const procs = new Map<number, { ppid: number; ticks: number }>()
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue
      try {
        const p = parseStat(readFileSync(`/proc/${name}/stat`, 'latin1'))
        if (p) procs.set(p.pid, p)
      } catch {
        // The process exited between readdir and read: its time is now in its parent's child times.
      }
    }
    // Walk down from this process (children by ppid).
    const children = new Map<number, number[]>()
    for (const [pid, p] of procs) {
      const list = children.get(p.ppid) ?? []
      list.push(pid)
      children.set(p.ppid, list)
    }
    let tree = 0
    const stack = [process.pid]
    while (stack.length) {
      const pid = stack.pop()!
      tree += procs.get(pid)?.ticks ?? 0
      stack.push(...(children.get(pid) ?? []))
    }
    return { at: Date.now(), machineBusy: user + nice + system + irq + softirq + steal, cpus, tree, hz: USER_HZ }
  } catch {
    return null
  }
}

/** CPU other processes used between two snapshots: average cores busy, and that over the machine's cores. */
export function foreignCpu(a: CpuSnapshot | null, b: CpuSnapshot | null): { cores: number; fraction: number } | null {
  if (!a || !b || b.at <= a.at) return null
  const seconds = (b.at - a.at) / 1000
  // Tick granularity and the moments the two files are read make small negatives possible: clamp.
  const cores = Math.max(0, (b.machineBusy - a.machineBusy - (b.tree - a.tree)) / b.hz / seconds)
  return { cores: Math.round(cores * 1000) / 1000, fraction: Math.round((cores / b.cpus) * 1000) / 1000 }
}
