/**
 * The counts one synthetic-host worker keeps for the parent's measured window: heartbeats sent and
 * their worst gap, reports sent and how each ended (with the answer time of every answered one),
 * commands received, and the worker's own CPU time. `start()` begins a window (the counts before
 * it are dropped), `end()` returns it.
 *
 * Must never filter a sample: every answered report's time goes in, every unanswered one is counted.
 */

import { emptyByKind, type ReportKind, type WindowCounts } from './ipc.ts'
import type { ReportOutcome } from './report-sender.ts'

export class WindowCounter {
  private startedAt = performance.now()
  private cpu0 = process.cpuUsage()
  private c = WindowCounter.fresh()
  private ack = emptyByKind<number[]>(() => [])

  private static fresh(): Omit<WindowCounts, 'ms' | 'ackMs' | 'cpuMs'> {
    return {
      heartbeats: 0,
      maxHeartbeatGapMs: 0,
      sent: emptyByKind(() => 0),
      acked: emptyByKind(() => 0),
      nacked: emptyByKind(() => 0),
      timeouts: emptyByKind(() => 0),
      errors: emptyByKind(() => 0),
      checkpointsSkipped: 0,
      commands: {},
    }
  }

  start(): void {
    this.startedAt = performance.now()
    this.cpu0 = process.cpuUsage()
    this.c = WindowCounter.fresh()
    this.ack = emptyByKind<number[]>(() => [])
  }

  end(): WindowCounts {
    const cpu = process.cpuUsage(this.cpu0)
    const ackMs = {
      checkpoint: Float64Array.from(this.ack.checkpoint),
      done: Float64Array.from(this.ack.done),
      failed: Float64Array.from(this.ack.failed),
    }
    return { ...this.c, ms: performance.now() - this.startedAt, ackMs, cpuMs: (cpu.user + cpu.system) / 1000 }
  }

  /** A heartbeat went out `gapMs` after the host's previous one (undefined: its first). */
  heartbeat(gapMs: number | undefined): void {
    this.c.heartbeats++
    if (gapMs !== undefined && gapMs > this.c.maxHeartbeatGapMs) this.c.maxHeartbeatGapMs = gapMs
  }

  sent(kind: ReportKind): void {
    this.c.sent[kind]++
  }

  /** How one try of a report ended; `stale`: answered by a balancer of a lower term than the hosts follow. */
  outcome(kind: ReportKind, o: ReportOutcome, stale = false): void {
    if (o.t === 'timeout') this.c.timeouts[kind]++
    else if (o.t === 'error' || stale) this.c.errors[kind]++
    else {
      this.ack[kind].push(o.ms)
      if (o.reply.t === 'ack') this.c.acked[kind]++
      else this.c.nacked[kind]++
    }
  }

  checkpointSkipped(): void {
    this.c.checkpointsSkipped++
  }

  command(t: string): void {
    this.c.commands[t] = (this.c.commands[t] ?? 0) + 1
  }
}
