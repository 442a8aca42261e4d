/**
 * Samples machine load off the heartbeat path: systeminformation for whole-machine CPU and memory
 * (its first currentLoad() takes about 0.5 s, so it runs in the background and heartbeats read the
 * last sample), process.cpuUsage() for this process's own share of the CPU (≈ 1 µs, worker threads
 * included, since they are threads of this process).
 *
 * Must never throw into the event loop: a failed sample keeps the previous values.
 */

import os from 'node:os'
import si from 'systeminformation'

export interface LoadSample {
  /** Whole-machine CPU busy, 0..1. */
  cpuMachine: number
  /** This process's CPU use as a fraction of all cores, 0..1. */
  cpuShoal: number
  memFreeBytes: number
  memTotalBytes: number
}

export class LoadSampler {
  private sample: LoadSample
  private timer: NodeJS.Timeout | undefined
  private lastCpu = process.cpuUsage()
  private lastAt = process.hrtime.bigint()
  private readonly cores = Math.max(1, os.availableParallelism())

  constructor(private readonly everyMs = 1000) {
    this.sample = { cpuMachine: 0, cpuShoal: 0, memFreeBytes: os.freemem(), memTotalBytes: os.totalmem() }
  }

  start(): void {
    const run = () => void this.take()
    run()
    this.timer = setInterval(run, this.everyMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }

  current(): LoadSample {
    return this.sample
  }

  private async take(): Promise<void> {
    const now = process.hrtime.bigint()
    const cpu = process.cpuUsage()
    const wallUs = Number(now - this.lastAt) / 1000
    const usedUs = cpu.user - this.lastCpu.user + (cpu.system - this.lastCpu.system)
    this.lastAt = now
    this.lastCpu = cpu
    const cpuShoal = wallUs > 0 ? clamp01(usedUs / wallUs / this.cores) : 0
    try {
      const [load, mem] = await Promise.all([si.currentLoad(), si.mem()])
      this.sample = {
        cpuMachine: clamp01(load.currentLoad / 100),
        cpuShoal,
        memFreeBytes: mem.available,
        memTotalBytes: mem.total,
      }
    } catch {
      this.sample = { ...this.sample, cpuShoal, memFreeBytes: os.freemem() }
    }
  }
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0
}
