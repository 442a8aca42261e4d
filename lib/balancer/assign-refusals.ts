/**
 * Assignments a host refused, so that one bad host or one impossible share cannot make the
 * balancer loop: a host that refuses several assignments in a row is benched (takes nothing new)
 * for a back-off that doubles while it keeps refusing, and a share that every try refuses fails
 * its job after a bounded number of tries. One accepted assignment clears a host's or a share's
 * record.
 *
 * Owns only this bookkeeping; time is passed in. Must never do I/O.
 */

/** Refusals in a row after which a host is benched. */
export const REFUSALS_BEFORE_BENCH = 3
export const BENCH_FIRST_MS = 2_000
export const BENCH_MAX_MS = 60_000
/** Definite refusals of one share (by any hosts) after which its job fails. */
export const MAX_ASSIGN_REFUSALS = 8

interface HostRecord {
  inARow: number
  benchedUntil: number
  nextBenchMs: number
}

export class AssignRefusals {
  private readonly hosts = new Map<string, HostRecord>()
  private readonly shares = new Map<string, number>()

  /** Records a refusal by `hostId`; returns the bench in ms when this refusal benched it. */
  hostRefused(hostId: string, now: number): number | undefined {
    const h = this.hosts.get(hostId) ?? { inARow: 0, benchedUntil: 0, nextBenchMs: BENCH_FIRST_MS }
    this.hosts.set(hostId, h)
    h.inARow += 1
    if (h.inARow < REFUSALS_BEFORE_BENCH) return undefined
    const ms = h.nextBenchMs
    h.inARow = 0
    h.benchedUntil = now + ms
    h.nextBenchMs = Math.min(BENCH_MAX_MS, ms * 2)
    return ms
  }

  hostAccepted(hostId: string): void {
    this.hosts.delete(hostId)
  }

  /** Hosts benched at `now`. */
  benched(now: number): Set<string> {
    const out = new Set<string>()
    for (const [id, h] of this.hosts) if (h.benchedUntil > now) out.add(id)
    return out
  }

  /** Records a definite refusal of `shareId`; returns how many it has had. */
  shareRefused(shareId: string): number {
    const n = (this.shares.get(shareId) ?? 0) + 1
    this.shares.set(shareId, n)
    return n
  }

  /** The share was assigned, or is finished: its record goes. */
  shareSettled(shareId: string): void {
    this.shares.delete(shareId)
  }

  /** A host that left or died starts afresh if it comes back. */
  forgetHost(hostId: string): void {
    this.hosts.delete(hostId)
  }
}
