/**
 * Live migration: pause the share on its host at the next safe point and take its final
 * checkpoint, store it durably with epoch + 1 and the target as host, then resume it on the
 * target. Stun = pause request sent → target confirmed (an upper bound: the source stops at the
 * first safe point after the request).
 */

import { ShoalError, toWire } from '../../errors.ts'
import { PROTOCOL_VERSION as V, type Migration, type MoveReason } from '../../protocol/messages.ts'
import { assignCommand } from '../assign-command.ts'
import type { BalancerContext } from '../context.ts'
import { qualifies, spreadCap } from '../core/eligibility.ts'
import { planPlacement, type PendingShare, type PlacementHost } from '../core/placement.ts'
import type { LoadHistory } from '../core/load-history.ts'
import type { History } from '../history.ts'
import { adopt, type Records } from '../records.ts'
import type { ShareFate } from '../share-fate.ts'

/** A pause answers within one step (milliseconds); longer means the source is in trouble. */
export const PAUSE_TIMEOUT_MS = 2_000

export class Migrator {
  constructor(
    private readonly ctx: BalancerContext,
    private readonly records: Records,
    private readonly fate: Pick<ShareFate, 'requeue'>,
    private readonly history: History,
    private readonly loads: LoadHistory,
  ) {}

  /**
   * Moves a running share to `toHost`. Throws E_MIGRATION_REFUSED when it cannot start, and the
   * share keeps running where it was.
   */
  async migrate(shareId: string, toHost: string, reason: MoveReason): Promise<Migration> {
    const { ledger, tracking, fence, metrics, log } = this.ctx
    const s = ledger.share(shareId)
    if (!s) throw new ShoalError('E_NO_SUCH_SHARE', `no share ${shareId}`)
    const job = ledger.job(s.jobId)
    const refuse = (why: string) => new ShoalError('E_MIGRATION_REFUSED', `cannot migrate ${shareId} to ${toHost}: ${why}`)
    if (s.status !== 'running' || !s.host || !job) throw refuse(`the share is ${s.status}, not running`)
    if (tracking.moving.has(shareId)) throw refuse('it is already being moved')
    if (s.host === toHost) throw refuse('it already runs there')
    // Only the target is built: the whole pool would cost a pass over every share per host.
    const target = this.placementHost(toHost)
    if (!target) throw refuse(`host ${toHost} is not alive in the pool`)
    const probe: PendingShare = { shareId, jobId: job.jobId, processor: job.processor, requiredTags: job.requiredTags, memoryBytes: job.memoryBytesPerShare }
    const fit = planPlacement([target], [probe])
    if (!fit.placements.length) throw refuse(fit.unplaced[0]?.reason ?? 'the host cannot take it')
    // The spread limit the policy keeps (core/eligibility.ts): a move past it would be undone by
    // the next balancing pass.
    if (job.spread) {
      const open = ledger.sharesOf(job.jobId).filter((x) => x.status === 'running' || x.status === 'pending')
      const qualifying = this.ctx.membership.alive().filter((h) => !tracking.draining.has(h.hostId) && qualifies({ processors: new Set(h.heartbeat.processors), tags: h.heartbeat.tags }, job)).length
      const cap = spreadCap(open.length, qualifying)
      const there = open.filter((x) => x.status === 'running' && x.host === toHost).length
      if (there >= cap) throw refuse(`job ${job.jobId} spreads its shares: ${toHost} runs ${there} of them already, the most one host may (${open.length} shares over ${qualifying} hosts)`)
    }

    const fromHost = s.host
    const epoch = s.epoch
    tracking.moving.add(shareId)
    tracking.promise(toHost)
    const t0 = performance.now()
    const record = (ok: boolean, pauseMs: number, bytes: number, error?: unknown): Migration => {
      const m: Migration = { shareId, jobId: job.jobId, fromHost, toHost, reason, epoch: s.epoch, at: Date.now(), ok, stunMs: performance.now() - t0, pauseMs, checkpointBytes: bytes }
      if (error !== undefined) m.error = toWire(error)
      metrics.migrations.inc({ reason, result: ok ? 'ok' : 'failed' })
      if (ok) metrics.stun.observe({ reason }, m.stunMs / 1000)
      this.history.addMigration(m)
      log.info({ share: shareId, from: fromHost, to: toHost, reason, ok, stunMs: +m.stunMs.toFixed(2), pauseMs: +pauseMs.toFixed(2), bytes }, ok ? 'share migrated' : 'migration failed')
      return m
    }
    try {
      let reply
      try {
        reply = await this.ctx.command(fromHost, { v: V, t: 'pause', term: fence.term, shareId, epoch }, PAUSE_TIMEOUT_MS)
      } catch (e) {
        // Nothing changed yet: the share still runs on the source (or finished there).
        record(false, performance.now() - t0, 0, e)
        throw refuse(`the source did not hand it over: ${(e as Error).message}`)
      }
      const pauseMs = performance.now() - t0
      if (reply.t !== 'paused') throw new ShoalError('E_INTERNAL', `unexpected pause reply '${reply.t}'`)
      if (s.status !== 'running' || s.epoch !== epoch || s.host !== fromHost) {
        // The source was declared dead meanwhile and the share re-dispatched: that path owns it now.
        this.records.dropState(reply.checkpoint.stateRef?.name)
        return record(false, pauseMs, reply.checkpoint.stateBytes, refuse('the share was re-dispatched during the migration'))
      }
      const cp = reply.checkpoint
      const garbage = adopt(s, cp)
      ledger.moveTo(s, toHost, Date.now())
      tracking.assignedAt.set(shareId, s.updatedAt)
      tracking.migratedAt.set(shareId, s.updatedAt)
      tracking.live.delete(shareId)
      const newEpoch = s.epoch
      await this.records.persistShare(s)
      this.records.dropState(garbage)
      // Declared lost or cancelled while the write waited: that path owns the share now.
      if (s.status !== 'running' || s.epoch !== newEpoch || s.host !== toHost) return record(false, pauseMs, cp.stateBytes, refuse('the share changed while its checkpoint was being stored'))
      try {
        await this.ctx.command(toHost, assignCommand(job, s, s.epoch, fence.term))
      } catch (e) {
        // Paused and durable, but the target did not take it: place it anew from that checkpoint.
        this.fate.requeue(s, reason)
        return record(false, pauseMs, cp.stateBytes, e)
      }
      return record(true, pauseMs, cp.stateBytes)
    } finally {
      tracking.moving.delete(shareId)
      tracking.release(toHost)
    }
  }

  /** One alive host as placement sees it, or undefined: the migration's target is checked with it. */
  private placementHost(hostId: string): PlacementHost | undefined {
    const { membership, ledger, tracking } = this.ctx
    const h = membership.get(hostId)
    if (!h || h.state !== 'alive') return undefined
    const hb = h.heartbeat
    return {
      hostId: h.hostId,
      slots: hb.capacity.slots,
      freeSlots: tracking.freeSlots(h.hostId, hb.capacity.slots, ledger.runningOn(h.hostId).size),
      cores: hb.capacity.cores,
      memFreeBytes: hb.load.memFreeBytes,
      externalLoad: this.loads.external(h.hostId)?.level ?? Math.max(0, hb.load.cpuMachine - hb.load.cpuShoal),
      tags: hb.tags,
      processors: new Set(hb.processors),
      draining: tracking.draining.has(h.hostId),
    }
  }
}
