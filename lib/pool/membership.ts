/**
 * The pool as the balancer sees it: which hosts are alive, suspect, dead or have left, built from
 * heartbeats. Pure state machine: time comes in as `now` on every call, so it is tested with plain
 * data and driven in production by whatever timer the shell uses.
 *
 *   (first beat) → alive → (no beat for suspectAfterMs) → suspect → (no beat for hostDeadMs) → dead
 *   (both times multiplied by the host's own period over pool.heartbeatMs: heartbeat-period.ts)
 *   suspect/dead → (beat) → alive          any → (leave) → left
 *
 * Must never import NATS, timers or the clock.
 */

import type { Heartbeat } from '../protocol/messages.ts'
import { silenceFactor } from './heartbeat-period.ts'

export type HostState = 'alive' | 'suspect' | 'dead' | 'left'

export interface MembershipConfig {
  suspectAfterMs: number
  hostDeadMs: number
  /**
   * pool.heartbeatMs: a host whose heartbeats say it beats less often (`periodMs`, a large pool's
   * longer period) gets suspect and dead times that many times longer. Unset: no scaling.
   */
  heartbeatMs?: number
  /** How long a dead or departed host stays listed before it is forgotten. */
  forgetAfterMs?: number
}

export interface PoolHost {
  readonly hostId: string
  state: HostState
  /** When the last heartbeat arrived (receiver's clock). */
  lastSeen: number
  /** When `state` last changed. */
  stateSince: number
  heartbeat: Heartbeat
  /** How many times this host went dead and came back: a dead host's old assignments are void. */
  incarnation: number
}

export interface MembershipEvent {
  hostId: string
  from: HostState | null
  to: HostState
  at: number
}

export class Membership {
  private readonly hosts = new Map<string, PoolHost>()

  constructor(private cfg: MembershipConfig) {}

  reconfigure(cfg: MembershipConfig): void {
    this.cfg = cfg
  }

  /** Records a heartbeat. Out-of-order beats (lower seq from the same process) are ignored. */
  observe(hb: Heartbeat, now: number): MembershipEvent[] {
    const h = this.hosts.get(hb.hostId)
    if (!h) {
      this.hosts.set(hb.hostId, { hostId: hb.hostId, state: 'alive', lastSeen: now, stateSince: now, heartbeat: hb, incarnation: 0 })
      return [{ hostId: hb.hostId, from: null, to: 'alive', at: now }]
    }
    const sameProcess = hb.startedAt === h.heartbeat.startedAt
    if (sameProcess && hb.seq <= h.heartbeat.seq) return []
    h.heartbeat = hb
    h.lastSeen = now
    if (h.state === 'alive') return []
    const from = h.state
    if (from === 'dead' || from === 'left') h.incarnation++
    h.state = 'alive'
    h.stateSince = now
    return [{ hostId: h.hostId, from, to: 'alive', at: now }]
  }

  leave(hostId: string, now: number): MembershipEvent[] {
    const h = this.hosts.get(hostId)
    if (!h || h.state === 'left') return []
    const from = h.state
    h.state = 'left'
    h.stateSince = now
    return [{ hostId, from, to: 'left', at: now }]
  }

  /** Advances time: alive → suspect → dead, and forgets long-gone hosts. */
  tick(now: number): MembershipEvent[] {
    const events: MembershipEvent[] = []
    const forget = this.cfg.forgetAfterMs ?? 10 * 60_000
    const base = this.cfg.heartbeatMs
    for (const h of this.hosts.values()) {
      const silent = now - h.lastSeen
      const f = base === undefined ? 1 : silenceFactor(h.heartbeat.periodMs, base)
      if ((h.state === 'alive' || h.state === 'suspect') && silent >= this.cfg.hostDeadMs * f) {
        events.push({ hostId: h.hostId, from: h.state, to: 'dead', at: now })
        h.state = 'dead'
        h.stateSince = now
      } else if (h.state === 'alive' && silent >= this.cfg.suspectAfterMs * f) {
        events.push({ hostId: h.hostId, from: 'alive', to: 'suspect', at: now })
        h.state = 'suspect'
        h.stateSince = now
      } else if ((h.state === 'dead' || h.state === 'left') && now - h.stateSince >= forget) {
        this.hosts.delete(h.hostId)
      }
    }
    return events
  }

  /**
   * The observer could not have heard anyone from `from` to `to` (its own NATS link was down, its
   * process was frozen, it had just taken over): that time does not count as the hosts' silence.
   * Each live host's silence is shortened by the blind part of it, so it keeps the time it had
   * left, counted from `to`.
   */
  excuse(from: number, to: number): void {
    if (!(to > from)) return
    for (const h of this.hosts.values()) {
      if (h.state !== 'alive' && h.state !== 'suspect') continue
      if (h.lastSeen >= to) continue
      h.lastSeen = Math.min(to, h.lastSeen + (to - Math.max(from, h.lastSeen)))
    }
  }

  get(hostId: string): PoolHost | undefined {
    return this.hosts.get(hostId)
  }

  all(): PoolHost[] {
    return [...this.hosts.values()]
  }

  /** Hosts that may receive work: alive (suspect hosts keep what they run but get nothing new). */
  alive(): PoolHost[] {
    return this.all().filter((h) => h.state === 'alive')
  }
}
