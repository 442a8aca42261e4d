/**
 * Initial placement of pending shares on hosts. Pure and deterministic: the same view gives the
 * same plan, so it is unit- and property-tested with plain data.
 *
 * A share goes to the host with the most free weighted capacity among those that run its
 * processor, carry all its required tags, are not draining, and have a free slot and enough free
 * memory for it. Weighted capacity of a free slot = the cores behind one slot (at most 1) times
 * the part of the machine not busy with other work, so a host whose CPU is taken by something else
 * looks smaller.
 *
 * Must never import NATS, timers or the clock.
 */

import { qualifies } from './eligibility.ts'

export interface PlacementHost {
  hostId: string
  slots: number
  /** Slots not running a share, as the balancer accounts them. */
  freeSlots: number
  cores: number
  memFreeBytes: number
  /** Machine CPU busy with work that is not Shoal's, 0..1. */
  externalLoad: number
  tags: Readonly<Record<string, string>>
  processors: ReadonlySet<string>
  draining: boolean
}

export interface PendingShare {
  shareId: string
  jobId: string
  processor: string
  requiredTags?: Readonly<Record<string, string>> | undefined
  memoryBytes?: number | undefined
  /** Hosts to use only when no other eligible host exists (the processor failed there). */
  avoidHosts?: readonly string[] | undefined
}

export interface PlacementDecision {
  shareId: string
  hostId: string
}

export interface Unplaced {
  shareId: string
  jobId: string
  /** Why no host took it, for the user. */
  reason: string
}

export interface PlacementPlan {
  placements: PlacementDecision[]
  unplaced: Unplaced[]
}

/** True when `host` may ever run `share` (ignoring free slots and memory right now). */
export function eligible(host: PlacementHost, share: PendingShare): boolean {
  return !host.draining && qualifies(host, share)
}

function freeWeighted(h: { slots: number; freeSlots: number; cores: number; externalLoad: number }): number {
  return h.freeSlots * Math.min(1, h.cores / h.slots) * (1 - Math.min(0.95, Math.max(0, h.externalLoad)))
}

/** Places `pending` (in the given order: callers pass oldest first) onto `hosts`. */
export function planPlacement(hosts: readonly PlacementHost[], pending: readonly PendingShare[]): PlacementPlan {
  const state = hosts.map((h) => ({ ...h }))
  const placements: PlacementDecision[] = []
  const unplaced: Unplaced[] = []
  for (const share of pending) {
    let best: (typeof state)[number] | undefined
    let bestScore = -1
    let anyEligible = false
    let memoryShort = false
    const avoid = share.avoidHosts?.length ? new Set(share.avoidHosts) : undefined
    const others = avoid ? state.some((h) => eligible(h, share) && !avoid.has(h.hostId)) : false
    for (const h of state) {
      if (!eligible(h, share)) continue
      anyEligible = true
      if (others && avoid!.has(h.hostId)) continue
      if (h.freeSlots <= 0) continue
      if ((share.memoryBytes ?? 0) > h.memFreeBytes) {
        memoryShort = true
        continue
      }
      const score = freeWeighted(h)
      if (score > bestScore || (score === bestScore && best !== undefined && h.hostId < best.hostId)) {
        best = h
        bestScore = score
      }
    }
    if (best) {
      best.freeSlots -= 1
      best.memFreeBytes -= share.memoryBytes ?? 0
      placements.push({ shareId: share.shareId, hostId: best.hostId })
    } else {
      unplaced.push({ shareId: share.shareId, jobId: share.jobId, reason: whyUnplaced(share, anyEligible, memoryShort) })
    }
  }
  return { placements, unplaced }
}

function whyUnplaced(share: PendingShare, anyEligible: boolean, memoryShort: boolean): string {
  const tags = Object.entries(share.requiredTags ?? {}).map(([k, v]) => `${k}=${v}`)
  if (!anyEligible) {
    return `no live host runs processor '${share.processor}'${tags.length ? ` with tags ${tags.join(',')}` : ''}`
  }
  if (memoryShort) return `waiting for a host with ${share.memoryBytes} bytes of free memory`
  return 'waiting for a free slot'
}
