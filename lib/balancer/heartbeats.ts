/**
 * The pool as the leader hears it: heartbeats and leaves feed membership and the load history;
 * a host declared dead, or one that left or restarted, loses its running shares to failover; a
 * heartbeat reconciles what the host says it runs with the ledger (O(shares on that host)). Time
 * this process could not hear or act is nobody's silence: it is excused, never counted against
 * hosts. Also keeps the pool's heartbeat period (pool.maxHeartbeatsPerSec).
 */

import type { Heartbeat } from '../protocol/messages.ts'
import { PROTOCOL_VERSION as V } from '../protocol/messages.ts'
import type { MembershipEvent } from '../pool/membership.ts'
import { heartbeatPeriod, silenceFactor } from '../pool/heartbeat-period.ts'
import type { LoadHistory } from './core/load-history.ts'
import type { BalancerContext } from './context.ts'
import type { ShareFate } from './share-fate.ts'

export interface HeartbeatsOptions {
  /** Whether this process hears NATS right now (its own presence comes back to it). */
  hearing: () => boolean
  /** When this process last provably heard NATS (wall clock ms). */
  lastHeard: () => number
  /**
   * How long the oldest received message still waiting to be handled has waited (ms; the work
   * queue's backlog): every heartbeat that came before it has been read, none after it yet.
   */
  backlogMs?: () => number
}

export class Heartbeats {
  /** Drop commands sent for shares a host runs under a stale epoch (host/share/epoch): sent once. */
  readonly #dropsSent = new Set<string>()
  /** The period hosts are asked to beat at (announced in the leader's presence), grown with the pool. */
  #periodMs: number
  #periodCheckedAt = 0
  /**
   * When the check for shares on hosts that never came back after recovery is due, for hosts
   * beating at pool.heartbeatMs; hosts that say they beat slower get that much longer.
   */
  #orphanCheckAt = Number.POSITIVE_INFINITY
  #orphanCheckDone = false
  /** Since when this balancer could not act or hear (blind, lease unconfirmed); undefined when it can. */
  #deafSince: number | undefined
  #lastTickAt = 0

  constructor(
    private readonly ctx: BalancerContext,
    private readonly loads: LoadHistory,
    private readonly fate: Pick<ShareFate, 'requeue' | 'reclaim'>,
    private readonly opts: HeartbeatsOptions,
  ) {
    this.#periodMs = ctx.config().pool.heartbeatMs
  }

  /** The period (ms) hosts are asked to beat at, for the leader's presence. */
  periodMs(): number {
    return this.#periodMs
  }

  /**
   * After recovery: running shares keep running on their hosts while no balancer led; every share
   * gets the full grace to show up in its host's heartbeats again, and every host hostDeadMs (plus
   * a beat) to be heard from before its shares count as lost.
   */
  startAfterRecovery(now: number): void {
    const { pool } = this.ctx.config()
    this.#orphanCheckAt = now + pool.hostDeadMs + pool.heartbeatMs
    const { ledger, tracking } = this.ctx
    for (const h of ledger.hostsRunning()) for (const s of ledger.runningOn(h)) tracking.assignedAt.set(s.shareId, now)
    this.#lastTickAt = now
  }

  /** The tick's period: often enough that a death is seen within a fraction of a heartbeat. */
  tickMs(): number {
    return Math.max(10, Math.min(50, Math.floor(this.ctx.config().pool.heartbeatMs / 2)))
  }

  tick(): void {
    const now = Date.now()
    const tickMs = this.tickMs()
    const { pool } = this.ctx.config()
    // A tick far later than its period means this process did not run (frozen, a long pause):
    // heartbeats it could not read meanwhile are no host's fault.
    if (now - this.#lastTickAt > tickMs + pool.heartbeatMs) this.excuse(this.#lastTickAt + tickMs, now)
    this.#lastTickAt = now
    const hearing = this.opts.hearing()
    if (!hearing || !this.ctx.acting()) {
      // Blind since the last thing heard; merely unconfirmed (still hearing) since now.
      this.#deafSince ??= hearing ? now : Math.min(now, this.opts.lastHeard())
      return
    }
    if (this.#deafSince !== undefined) {
      // Hearing and leading again: the time in between was not the hosts' silence.
      this.excuse(this.#deafSince, now)
      this.#deafSince = undefined
      this.ctx.log.info('hearing NATS and leading again: hosts get a full hostDeadMs from now before any is declared dead')
      this.ctx.kick()
    }
    // Silence is judged up to the moment everything before it has been read: a heartbeat still
    // waiting in this process's own queue is not the host's silence. (A backlog past the echo's
    // two periods makes this process deaf, above; this covers the shorter ones, which at short
    // suspect times would already be suspicion.)
    this.onMembership(this.ctx.membership.tick(now - (this.opts.backlogMs?.() ?? 0)))
    if (now - this.#periodCheckedAt >= 1000) this.updatePeriod(now)
    // After recovery: a share recorded as running on a host that never came back within
    // hostDeadMs (plus a beat, both at the slowest period heard) is lost with that host.
    if (!this.#orphanCheckDone && now >= this.#orphanCheckAt && now >= this.#orphanCheckAt + this.slowerHostsGrace()) {
      this.#orphanCheckDone = true
      for (const h of [...this.ctx.ledger.hostsRunning()]) {
        const m = this.ctx.membership.get(h)
        if (!m || m.state === 'dead' || m.state === 'left') this.fate.reclaim(h, 'host-lost')
      }
    }
  }

  onPool(msg: Heartbeat | { t: 'leave'; hostId: string }, subject: string): void {
    const { subjects, bus, membership, log } = this.ctx
    const parsed = subjects.parsePool(subject)
    if (!parsed) {
      bus.rejects.count(subject, 'invalid')
      return
    }
    if (parsed.hostId !== msg.hostId) {
      // A body that speaks for another host than its subject: a forgery, or a host misconfigured.
      bus.rejects.count(subject, 'identity')
      log.warn({ subject, claimed: msg.hostId }, `refused a ${msg.t === 'leave' ? 'leave' : 'heartbeat'} that names another host than its subject`)
      return
    }
    const now = Date.now()
    if (msg.t === 'leave') {
      this.onMembership(membership.leave(msg.hostId, now))
      return
    }
    const before = membership.get(msg.hostId)
    const restarted = before !== undefined && before.heartbeat.startedAt !== msg.startedAt
    if (restarted) {
      this.loads.forgetHost(msg.hostId)
      this.ctx.tracking.unbatched.delete(msg.hostId)
    }
    // Monotonic time: a wall clock set back would stall the smoothing until it caught up.
    this.loads.observe(performance.now(), msg.hostId, msg.capacity.cores, msg.load, msg.shares)
    this.onMembership(membership.observe(msg, now))
    if (restarted) this.fate.reclaim(msg.hostId, 'host-restarted')
    this.reconcile(msg)
  }

  /** Learns live positions, and tells a host to drop shares it runs under a stale epoch. */
  private reconcile(hb: Heartbeat): void {
    const { ledger, tracking, log } = this.ctx
    const now = Date.now()
    const listed = new Set(hb.shares.map((s) => `${s.shareId}/${s.epoch}`))
    // A share we think the host runs that is missing from its heartbeats for longer than the grace
    // period was lost (an assignment that never arrived, a worker that vanished): re-dispatch it.
    // Reports that are still in flight carry the old epoch and are then rejected, so nothing counts twice.
    const grace = Math.max(3000, 4 * (hb.periodMs ?? this.ctx.config().pool.heartbeatMs))
    const acting = this.ctx.acting()
    // Only this host's running shares: a heartbeat costs what the host runs, not the cluster's history.
    for (const s of acting ? [...ledger.runningOn(hb.hostId)] : []) {
      if (tracking.moving.has(s.shareId) || listed.has(`${s.shareId}/${s.epoch}`)) continue
      if (now - (tracking.assignedAt.get(s.shareId) ?? now) < grace) continue
      log.warn({ host: hb.hostId, share: s.shareId, epoch: s.epoch, seq: hb.seq, assignedAgoMs: now - (tracking.assignedAt.get(s.shareId) ?? now) }, 'share missing from its host\'s heartbeats: re-dispatching it')
      this.fate.requeue(s, 'host-lost')
    }
    for (const s of hb.shares) {
      const rec = ledger.share(s.shareId)
      if (rec && rec.status === 'running' && rec.host === hb.hostId && rec.epoch === s.epoch) {
        tracking.live.set(s.shareId, { epoch: s.epoch, position: s.position, unitsPerSec: s.unitsPerSec, cpuDemand: s.busy })
        continue
      }
      // Done here under this epoch: the host's heartbeat was sent before it forgot the share.
      if (rec && rec.status === 'done' && rec.epoch === s.epoch && rec.hosts.at(-1) === hb.hostId) continue
      const key = `${hb.hostId}/${s.shareId}/${s.epoch}`
      if (!acting || this.#dropsSent.has(key)) continue
      this.#dropsSent.add(key)
      this.ctx.bus.rejects.count(this.ctx.subjects.heartbeat(hb.hostId), 'stale-epoch')
      log.warn({ host: hb.hostId, share: s.shareId, epoch: s.epoch, current: rec?.epoch }, 'host runs a share under a stale epoch: telling it to drop it')
      this.ctx.command(hb.hostId, { v: V, t: 'drop', term: this.ctx.fence.term, shareId: s.shareId, epoch: s.epoch }).catch(() => this.#dropsSent.delete(key))
    }
  }

  private onMembership(events: MembershipEvent[]): void {
    for (const e of events) {
      this.ctx.log.info({ host: e.hostId, from: e.from, to: e.to }, `host ${e.to}`)
      this.ctx.metrics.hostTransitions.inc({ to: e.to })
      if (e.to === 'dead' || e.to === 'left') {
        this.loads.forgetHost(e.hostId)
        this.ctx.tracking.refusals.forgetHost(e.hostId)
        this.ctx.tracking.unbatched.delete(e.hostId)
        this.fate.reclaim(e.hostId, e.to === 'dead' ? 'host-lost' : 'host-left')
      }
      if (e.to === 'alive') this.ctx.kick()
    }
  }

  /**
   * The heartbeat period for the pool's size now (pool.maxHeartbeatsPerSec): hosts hear it in the
   * leader's presence and each says in its heartbeats which period it keeps (heartbeat-period.ts).
   */
  private updatePeriod(now: number): void {
    this.#periodCheckedAt = now
    let hosts = 0
    for (const h of this.ctx.membership.all()) if (h.state === 'alive' || h.state === 'suspect') hosts++
    const { heartbeatMs, maxHeartbeatsPerSec } = this.ctx.config().pool
    const next = heartbeatPeriod(hosts, this.#periodMs, heartbeatMs, maxHeartbeatsPerSec)
    if (next === this.#periodMs) return
    this.ctx.log.info({ hosts, from: this.#periodMs, to: next, maxHeartbeatsPerSec }, `hosts now beat every ${next} ms (${hosts} hosts, at most ${maxHeartbeatsPerSec} heartbeats/s)`)
    this.#periodMs = next
  }

  /**
   * How much longer than at pool.heartbeatMs the orphan check waits: the slowest period a host of
   * the pool says it beats at (read from membership, only while the check is due).
   */
  private slowerHostsGrace(): number {
    const { hostDeadMs, heartbeatMs } = this.ctx.config().pool
    let factor = 1
    for (const h of this.ctx.membership.all()) factor = Math.max(factor, silenceFactor(h.heartbeat.periodMs, heartbeatMs))
    return (factor - 1) * (hostDeadMs + heartbeatMs)
  }

  /** The balancer could not hear or act from `from` to `to`: that time is nobody's silence. */
  private excuse(from: number, to: number): void {
    this.ctx.membership.excuse(from, to)
    if (!this.#orphanCheckDone && this.#orphanCheckAt > from) this.#orphanCheckAt += to - from
    const { assignedAt } = this.ctx.tracking
    for (const [id, at] of assignedAt) if (at < to) assignedAt.set(id, at + (to - Math.max(from, at)))
  }
}
