/**
 * Keeps a host's checkpoints durable on time (issue 9, point 3). Shares take their checkpoints on a
 * fixed grid in the worker (share-worker.ts); this module, fed with every periodic checkpoint the
 * balancer acknowledges durable, measures how late each was against its due time and how long the
 * way from "taken" to "durable" took, and sets the *lead* — how long before it is due the workers
 * take the next — to the longest of the last LEAD_WINDOW such delays. On a contended host the way
 * through the host's event loop, NATS and the balancer's KV write grows, and the lead grows with
 * it, so the durable checkpoint still lands by its due time and a failover redoes at most one
 * interval of work.
 *
 * Must never import NATS or touch a share: the host passes the times in and applies the lead.
 */

/** Delays the lead is taken over (the longest of them): a few seconds of checkpoints. */
export const LEAD_WINDOW = 8

export interface CheckpointTimes {
  /** When it was due to be durable (ms, `checkpointClock()`); absent for non-periodic checkpoints. */
  dueAt?: number | undefined
  /** When the worker took it (same clock). */
  takenAt?: number | undefined
}

export interface PaceEvents {
  /** A periodic checkpoint became durable this long after it was due (≤ 0: on time). */
  lateness(ms: number): void
  /** The lead changed. */
  lead(ms: number): void
}

export class CheckpointPace {
  private readonly delays: number[] = []
  private leadMs = 0

  constructor(private readonly events: PaceEvents) {}

  /** The current lead (ms). */
  get lead(): number {
    return this.leadMs
  }

  /** A periodic checkpoint with these times was acknowledged durable at `at` (same clock). */
  durable(cp: CheckpointTimes, at: number): void {
    if (cp.dueAt === undefined || cp.takenAt === undefined || !Number.isFinite(cp.dueAt) || !Number.isFinite(cp.takenAt)) return
    this.events.lateness(at - cp.dueAt)
    const delay = Math.max(0, at - cp.takenAt)
    this.delays.push(delay)
    if (this.delays.length > LEAD_WINDOW) this.delays.shift()
    const lead = Math.ceil(Math.max(...this.delays))
    if (lead !== this.leadMs) {
      this.leadMs = lead
      this.events.lead(lead)
    }
  }
}
