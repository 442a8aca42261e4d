/**
 * What the balancer keeps about shares and hosts besides their records: live positions from
 * heartbeats, when a share was assigned or migrated, what is moving, slots promised to moves in
 * flight, why a share is pending again, open failover records, hosts in maintenance, and hosts or
 * shares that refuse assignments. In memory only, for one term; `forgetShare` drops a share from
 * all of it at once: when it is done, and when its job ends (what is kept is what runs, not what ran).
 */

import type { Failover, MoveReason } from '../protocol/messages.ts'
import { AssignRefusals } from './assign-refusals.ts'
import type { LiveShare } from './core/snapshot.ts'

export class Tracking {
  /** Positions and rates of running shares, as their hosts' heartbeats say. */
  readonly live = new Map<string, LiveShare>()
  /** When each running share was last assigned (for the missing-from-heartbeat check). */
  readonly assignedAt = new Map<string, number>()
  /**
   * When each share was last live-migrated: `balancer.minResidencyMs` counts from there. A share
   * that was only placed has no entry, so a bad placement can be corrected as soon as it shows.
   */
  readonly migratedAt = new Map<string, number>()
  /** Shares a migration or split is moving right now: nothing else touches them meanwhile. */
  readonly moving = new Set<string>()
  /** Slots promised to migrations and splits in flight, by target host. */
  readonly incoming = new Map<string, number>()
  /** Why a share is pending again (host-lost, retry, ...), carried into the placement log. */
  readonly pendingReason = new Map<string, MoveReason>()
  /** The open failover record of a share waiting to be placed again. */
  readonly openFailover = new Map<string, Failover>()
  /** Hosts in maintenance mode (persisted in the hosts bucket). */
  readonly draining = new Set<string>()
  /** Hosts benched and shares counted for refusing assignments (assign-refusals.ts). */
  readonly refusals = new AssignRefusals()
  /**
   * Hosts that refused an `assign-batch` as invalid (a release from before batches): they get
   * their assignments one to a message until they restart, die or leave (apply/assign-sender.ts).
   */
  readonly unbatched = new Set<string>()

  /** Holds a slot on `hostId` for a move in flight. */
  promise(hostId: string): void {
    this.incoming.set(hostId, (this.incoming.get(hostId) ?? 0) + 1)
  }

  /** Releases a slot `promise` held. */
  release(hostId: string): void {
    this.incoming.set(hostId, (this.incoming.get(hostId) ?? 1) - 1)
  }

  /** Free slots of a host with `slots` slots running `running` shares, promised slots taken. */
  freeSlots(hostId: string, slots: number, running: number): number {
    return slots - running - (this.incoming.get(hostId) ?? 0)
  }

  forgetShare(shareId: string): void {
    for (const m of [this.live, this.assignedAt, this.migratedAt, this.pendingReason, this.openFailover]) m.delete(shareId)
    this.refusals.shareSettled(shareId)
  }
}
