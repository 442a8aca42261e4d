/**
 * A process's CPU time split between its main thread (where a Node process runs all its
 * JavaScript) and its other threads (V8's helpers: concurrent garbage-collection marking and
 * sweeping, background compilation; libuv's pool), from /proc/<pid>/task/<tid>/stat. A cost that
 * grows in the other threads with the data a process holds is garbage collection, not code.
 * Also its resident memory (VmRSS in /proc/<pid>/status), the data it holds.
 *
 * Linux only; any read error gives NaN, never an exception.
 */

import { readdirSync, readFileSync } from 'node:fs'

export interface ThreadTicks {
  /** utime + stime of the main thread (tid = pid), in ticks of USER_HZ. */
  main: number
  /** utime + stime of every other live thread. */
  others: number
}

export function threadTicks(pid: number): ThreadTicks {
  try {
    let main = 0
    let others = 0
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      let text: string
      try {
        text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1')
      } catch {
        continue // the thread ended between the listing and the read
      }
      // Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15.
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
      const ticks = Number(f[11]) + Number(f[12])
      if (Number(tid) === pid) main += ticks
      else others += ticks
    }
    return { main, others }
  } catch {
    return { main: Number.NaN, others: Number.NaN }
  }
}

/** Resident memory of process `pid` in bytes; NaN when unreadable. */
export function residentBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))
    return m ? Number(m[1]) * 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}
