/**
 * The smoothed loads the policy decides from (issue 9, point 1): per host, its external CPU demand
 * (`external-demand.ts`) and, per running share, its CPU demand, each a `LoadSignal` fed once per
 * heartbeat. The one owner of this state: the balancer feeds it from heartbeats, the simulator from
 * its model hosts, and both read it when they build a `ClusterView`.
 *
 * A share's signal belongs to one epoch on one host: a share that moves starts afresh, since its
 * demand there is another measurement. Signals of hosts and shares no longer reported are dropped
 * by `forgetHost` and when a heartbeat no longer lists the share.
 *
 * Must never import NATS, timers or the clock: time is the caller's `at`.
 */

import { externalDemand, type HostCpu } from './external-demand.ts'
import { LoadSignal, type SignalReading } from './load-signal.ts'

export interface ReportedShare {
  shareId: string
  epoch: number
  /** The worker's busy fraction (cores it wants); absent until measured. */
  busy?: number | undefined
  /** Finished and waiting for its report's ack: uses no CPU. */
  finished?: boolean | undefined
}

interface HostSignals {
  external: LoadSignal
  shares: Map<string, { epoch: number; demand: LoadSignal }>
}

export class LoadHistory {
  private readonly hosts = new Map<string, HostSignals>()

  constructor(private windowMs: number) {}

  /** Changes the smoothing window of every signal (live tuning of balancer.loadWindowMs). */
  setWindow(windowMs: number): void {
    if (windowMs === this.windowMs) return
    this.windowMs = windowMs
    for (const h of this.hosts.values()) {
      h.external.setWindow(windowMs)
      for (const s of h.shares.values()) s.demand.setWindow(windowMs)
    }
  }

  /** One heartbeat's figures, taken at `at` (ms). */
  observe(at: number, hostId: string, cores: number, cpu: HostCpu, shares: Iterable<ReportedShare>): void {
    let h = this.hosts.get(hostId)
    if (!h) this.hosts.set(hostId, (h = { external: new LoadSignal(this.windowMs), shares: new Map() }))
    let demand = 0
    const seen = new Set<string>()
    for (const s of shares) {
      if (s.finished) continue
      seen.add(s.shareId)
      let sig = h.shares.get(s.shareId)
      if (!sig || sig.epoch !== s.epoch) h.shares.set(s.shareId, (sig = { epoch: s.epoch, demand: new LoadSignal(this.windowMs) }))
      // An unmeasured share counts as one core, as in the policy: a just-started CPU-bound share.
      const busy = s.busy ?? 1
      if (s.busy !== undefined) sig.demand.add(at, busy)
      demand += busy
    }
    for (const id of h.shares.keys()) if (!seen.has(id)) h.shares.delete(id)
    h.external.add(at, externalDemand(cpu, cores, demand))
  }

  /** The host's smoothed external demand (fraction of its cores) and its noise; undefined if never seen. */
  external(hostId: string): SignalReading | undefined {
    return this.hosts.get(hostId)?.external.read()
  }

  /** The share's smoothed CPU demand (cores) and its noise, for that epoch; undefined if not measured. */
  shareDemand(hostId: string, shareId: string, epoch: number): SignalReading | undefined {
    const s = this.hosts.get(hostId)?.shares.get(shareId)
    if (!s || s.epoch !== epoch) return undefined
    const r = s.demand.read()
    return r.samples > 0 ? r : undefined
  }

  forgetHost(hostId: string): void {
    this.hosts.delete(hostId)
  }
}
