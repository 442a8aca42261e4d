/**
 * Samples the host's load off the heartbeat path, every `everyMs` (the host passes
 * pool.heartbeatMs, so a background CPU hog shows in the next heartbeats): CPU busy on the CPUs this
 * process may run on (`cpuMachine`, all work, Shoal's included), this process's own CPU use as a
 * fraction of those CPUs (`cpuShoal`, worker threads included), and free memory. The balancer reads
 * `cpuMachine − cpuShoal` as load that is not Shoal's, so both are taken over the same window and
 * the same CPUs: a host started under `taskset -c 1` reports CPU 1 only, and sees as external load
 * only what else runs on CPU 1.
 *
 * The CPUs: Linux's `Cpus_allowed_list` from /proc/self/status (re-read every sample, since
 * `taskset -p` can change it at run time); elsewhere, or if it cannot be read, all CPUs. Its length
 * is what `os.availableParallelism()` (the heartbeat's `cores`) returns on Linux, since both come
 * from the affinity mask (checked in spec/worker-host/load-sampler.spec.ts). With Node 20's libuv
 * (1.46) neither sees a cgroup CPU quota (`docker --cpus`).
 *
 * Why not systeminformation's `currentLoad()` for CPU (it is kept for memory):
 * - its baseline and a 200 ms result cache are module-global: at a heartbeat under 200 ms
 *   (pool.heartbeatMs may be 20) every other call returns the previous numbers, and any other
 *   caller in the process shifts our window;
 * - on Linux every fresh call runs `execSync('cat /proc/stat | grep cpu')` — measured here 3–5 ms of
 *   blocked event loop, and a shell, cat and grep four times a second, whose CPU lands on our own
 *   CPUs as "external" load;
 * - its per-core array is indexed like `os.cpus()`, which counts CPUs in order and so does not
 *   match CPU ids when some are offline or numbered with gaps.
 * So on Linux it reads /proc/stat itself (≈ 20 µs, one synchronous procfs read, CPU ids explicit,
 * steal time counted as busy: a hypervisor's other guests are load we cannot use); elsewhere it
 * takes `os.cpus()` time deltas (≈ 35 µs) over all CPUs.
 *
 * /proc/stat counts in 10 ms ticks, so a short window quantises a CPU's busy fraction (to 4 % steps
 * at 250 ms, 50 % at 20 ms): at a period under `MIN_CPU_WINDOW_MS` the CPU figures are refreshed
 * once that much time has passed, memory every period.
 *
 * Must never throw into the event loop (a failed sample keeps the previous values), never start a
 * child process, and never block the loop for more than two small procfs reads per sample.
 */

import { readFileSync } from 'node:fs'
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import si from 'systeminformation'

export interface LoadSample {
  /** CPU busy on the CPUs this process may run on, all processes included, 0..1. */
  cpuMachine: number
  /** This process's CPU use as a fraction of the CPUs it may run on, 0..1. */
  cpuShoal: number
  memFreeBytes: number
  memTotalBytes: number
}

/** Cumulative time of one CPU since boot, in any one unit (ticks or ms). */
export interface CpuTimes {
  busy: number
  total: number
}

/** Cumulative times of each CPU by CPU id. Throws when they cannot be read. */
export type CpuTimesSource = () => Map<number, CpuTimes>

export interface LoadSamplerOptions {
  /**
   * Called with the figures after every CPU sample that was due (also one that failed and kept
   * the previous figures); an exception it throws is swallowed.
   */
  onSample?: (sample: LoadSample) => void
  /** Where CPU times come from (default: /proc/stat on Linux, os.cpus() elsewhere). */
  cpuTimes?: CpuTimesSource
  /** The CPUs this process may run on (default: read from the OS every sample). */
  allowedCpus?: () => number[]
}

/**
 * Shortest window CPU figures are computed over (see the header): 8 ticks of /proc/stat. Under
 * 100 ms so that a 100 ms period, whose timer may fire a little early against our own clock,
 * still samples every time.
 */
export const MIN_CPU_WINDOW_MS = 80

/** Highest CPU id accepted from a CPU list: far above any kernel's NR_CPUS, bounds a bad range. */
const MAX_CPU_ID = 65_535

/**
 * Parses a Linux CPU list (`0`, `0-3`, `0,2-3,7`; the format of `Cpus_allowed_list`) into sorted,
 * distinct CPU ids. Returns null for anything else (empty, reversed or open ranges, stray
 * characters, ids above 65535).
 */
export function parseCpuList(text: string): number[] | null {
  const list = text.trim()
  if (list === '') return null
  const ids = new Set<number>()
  for (const part of list.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part)
    if (!m) return null
    const lo = Number(m[1])
    const hi = m[2] === undefined ? lo : Number(m[2])
    if (hi < lo || hi > MAX_CPU_ID) return null
    for (let id = lo; id <= hi; id++) ids.add(id)
  }
  return [...ids].sort((a, b) => a - b)
}

/** The CPU ids in the `Cpus_allowed_list:` line of a /proc/<pid>/status text; null if absent or malformed. */
export function allowedCpusFromStatus(status: string): number[] | null {
  const m = /^Cpus_allowed_list:[ \t]*(.*)$/m.exec(status)
  return m ? parseCpuList(m[1]!) : null
}

/**
 * Per-CPU cumulative times from a /proc/stat text, by CPU id, in ticks. Busy = user + nice +
 * system + irq + softirq + steal (guest time is already inside user and nice); total adds idle
 * and iowait. Null if it holds no well-formed `cpuN` line.
 */
export function parseProcStat(text: string): Map<number, CpuTimes> | null {
  const out = new Map<number, CpuTimes>()
  for (const line of text.split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line)
    if (!m) continue
    const f = m[2]!.trim().split(/\s+/).map(Number)
    // user nice system idle are there on every kernel; the rest came later (2.6.x).
    if (f.length < 4 || !f.every((x) => Number.isFinite(x) && x >= 0)) continue
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f
    const busy = user + nice + system + irq + softirq + steal
    out.set(Number(m[1]), { busy, total: busy + idle + iowait })
  }
  return out.size > 0 ? out : null
}

/** The CPUs this process may run on: the affinity list on Linux, else (or on failure) all of them. */
export function allowedCpus(): number[] {
  if (process.platform === 'linux') {
    try {
      const list = allowedCpusFromStatus(readFileSync('/proc/self/status', 'latin1'))
      if (list) return list
    } catch {
      // No procfs (a sandbox): all CPUs, as on other systems.
    }
  }
  return allCpus()
}

/** Ids 0..n−1 of every CPU the OS reports. */
function allCpus(): number[] {
  return Array.from({ length: Math.max(1, os.cpus().length) }, (_, i) => i)
}

/** Per-CPU times, from /proc/stat on Linux (see the header for why) and os.cpus() elsewhere. */
export function readCpuTimes(): Map<number, CpuTimes> {
  if (process.platform === 'linux') {
    try {
      const times = parseProcStat(readFileSync('/proc/stat', 'latin1'))
      if (times) return times
    } catch {
      // Fall through to os.cpus(), which libuv reads from the same file when it can.
    }
  }
  const cpus = os.cpus()
  if (cpus.length === 0) throw new Error('os.cpus() returned no CPUs')
  return new Map(
    cpus.map((c, i) => {
      const busy = c.times.user + c.times.nice + c.times.sys + c.times.irq
      return [i, { busy, total: busy + c.times.idle }]
    }),
  )
}

interface Baseline {
  at: number
  times: Map<number, CpuTimes>
  usage: NodeJS.CpuUsage
}

/** Samples CPU and memory every `everyMs` in the background; `current()` is the last sample. */
export class LoadSampler {
  private sample: LoadSample
  private timer: NodeJS.Timeout | undefined
  private base: Baseline | undefined
  private cpus: number[]
  private memInFlight = false
  private readonly onSample: ((sample: LoadSample) => void) | undefined
  private readonly cpuTimes: CpuTimesSource
  private readonly readAllowed: () => number[]

  constructor(
    private readonly everyMs = 250,
    opts: LoadSamplerOptions = {},
  ) {
    this.onSample = opts.onSample
    this.cpuTimes = opts.cpuTimes ?? readCpuTimes
    this.readAllowed = opts.allowedCpus ?? allowedCpus
    this.cpus = this.findAllowed()
    this.sample = { cpuMachine: 0, cpuShoal: 0, memFreeBytes: os.freemem(), memTotalBytes: os.totalmem() }
  }

  /** The CPU ids this process may run on, as last read. */
  get allowedCpus(): readonly number[] {
    return this.cpus
  }

  /** Takes the baseline now and a sample every `everyMs` from then on. */
  start(): void {
    if (this.timer) return
    this.base = this.baseline()
    this.sampleMemory()
    this.timer = setInterval(() => this.tick(), this.everyMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  /** The last sample: CPU figures are 0 until one period after start(). */
  current(): LoadSample {
    return this.sample
  }

  private tick(): void {
    let due = true
    try {
      due = this.sampleCpu()
    } catch {
      // Keep the previous figures and the old baseline: the next good sample covers the gap.
    }
    this.sampleMemory()
    if (due && this.onSample) {
      try {
        this.onSample(this.sample)
      } catch {
        // A listener's failure is not the sampler's.
      }
    }
  }

  private findAllowed(): number[] {
    try {
      const list = this.readAllowed()
      if (list.length > 0) return list
    } catch {
      // Fall through: all CPUs.
    }
    return allCpus()
  }

  /** Undefined when the CPU times cannot be read (the next tick tries again). */
  private baseline(): Baseline | undefined {
    try {
      return { at: performance.now(), times: this.cpuTimes(), usage: process.cpuUsage() }
    } catch {
      return undefined
    }
  }

  /** False when the window is still too short to sample (the baseline is kept). */
  private sampleCpu(): boolean {
    const base = this.base
    if (!base) {
      this.base = this.baseline()
      return false
    }
    const at = performance.now()
    const wallMs = at - base.at
    if (wallMs < MIN_CPU_WINDOW_MS) return false
    const times = this.cpuTimes()
    const usage = process.cpuUsage()
    this.cpus = this.findAllowed()
    let busy = 0
    let total = 0
    for (const id of this.cpus) {
      const a = base.times.get(id)
      const b = times.get(id)
      // A CPU that went offline (or whose counters were reset) has nothing to say about this window.
      if (!a || !b || b.total <= a.total || b.busy < a.busy) continue
      busy += b.busy - a.busy
      total += b.total - a.total
    }
    const usedUs = usage.user - base.usage.user + (usage.system - base.usage.system)
    this.base = { at, times, usage }
    this.sample = {
      ...this.sample,
      // No tick counted on any of our CPUs (a window shorter than a tick): keep the last figure.
      cpuMachine: total > 0 ? clamp01(busy / total) : this.sample.cpuMachine,
      cpuShoal: clamp01(usedUs / 1000 / wallMs / this.cpus.length),
    }
    return true
  }

  private sampleMemory(): void {
    // si.mem() reads /proc/meminfo asynchronously (≈ 0.4 ms): never two at once.
    if (this.memInFlight) return
    this.memInFlight = true
    Promise.resolve()
      .then(() => si.mem())
      .then(
        (mem) => {
          if (Number.isFinite(mem.available) && Number.isFinite(mem.total) && mem.total > 0) {
            this.sample = { ...this.sample, memFreeBytes: mem.available, memTotalBytes: mem.total }
          }
        },
        () => undefined, // keep the previous figures
      )
      .finally(() => (this.memInFlight = false))
  }
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0
}
