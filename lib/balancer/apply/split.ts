/**
 * Dynamic split: the share's host keeps [position, mid) and the tail [mid, to) becomes a new
 * share, placed on the host that went idle. Also cuts a tail off a share that finished short of
 * its end (a split whose answer was lost).
 */

import type { BalancerContext } from '../context.ts'
import { newPendingShare } from '../ledger.ts'
import type { Records } from '../records.ts'
import type { ShareRecord } from '../store.ts'
import { PROTOCOL_VERSION as V } from '../../protocol/messages.ts'
import type { Assigner } from './assign.ts'
import { PAUSE_TIMEOUT_MS } from './migrate.ts'

export class Splitter {
  /** Splits done in this term (for `shoal status`). */
  #count = 0

  constructor(
    private readonly ctx: BalancerContext,
    private readonly records: Records,
    private readonly assigner: Pick<Assigner, 'assign'>,
  ) {}

  get count(): number {
    return this.#count
  }

  /**
   * Splits share `shareId` for `toHost`. The tail record is stored before the original shrinks,
   * so a crash in between leaves an overlap that recovery trims, never a gap. Null when refused.
   */
  async split(shareId: string, toHost: string, fraction: number): Promise<{ tailShareId: string; keptTo: number; tail: [number, number] } | null> {
    const { ledger, tracking } = this.ctx
    const s = ledger.share(shareId)
    if (!s || s.status !== 'running' || !s.host || tracking.moving.has(shareId)) return null
    const epoch = s.epoch
    tracking.moving.add(shareId)
    // Hold a slot on the target until the tail is assigned there, so placement does not fill it.
    tracking.promise(toHost)
    let reserved = true
    const release = () => {
      if (reserved) tracking.release(toHost)
      reserved = false
    }
    try {
      const reply = await this.ctx.command(s.host, { v: V, t: 'split', term: this.ctx.fence.term, shareId, epoch, fraction }, PAUSE_TIMEOUT_MS)
      if (reply.t !== 'split' || !reply.tail) return null
      if (s.epoch !== epoch || s.status !== 'running') return null // lost meanwhile: the tail is in its checkpoint range
      const [mid, end] = reply.tail
      // A `done` that overtook this answer has cut the tail already ('split answer lost').
      if (s.to <= mid) return null
      const tail = await this.addTail(s, mid, end, `split for ${toHost}`)
      this.#count++
      this.ctx.metrics.splits.inc()
      release()
      await this.assigner.assign(tail.shareId, toHost)
      return { tailShareId: tail.shareId, keptTo: mid, tail: [mid, end] }
    } catch (e) {
      this.ctx.log.warn({ share: shareId, err: (e as Error).message }, 'split refused')
      return null
    } finally {
      tracking.moving.delete(shareId)
      release()
    }
  }

  /**
   * Cuts [mid, end) off share `s` into a new pending share. In memory both change at once, before
   * any await, so a report or split answer handled meanwhile sees the share already cut and cannot
   * cut the same tail twice (a unit counted twice). In KV the tail is stored before the original
   * shrinks, so a crash in between leaves an overlap that recovery trims, never a gap; until the
   * tail is stored it counts as moving, so no pass places it before its record exists.
   */
  async addTail(s: ShareRecord, mid: number, end: number, why: string): Promise<ShareRecord> {
    const { ledger, tracking } = this.ctx
    const job = ledger.job(s.jobId)!
    const now = Date.now()
    const tail = newPendingShare(job.jobId, job.nextShare++, mid, end, now)
    ledger.addShare(tail)
    tracking.moving.add(tail.shareId)
    s.to = mid
    s.position = Math.min(s.position, mid)
    s.updatedAt = now
    tracking.pendingReason.set(tail.shareId, 'split')
    try {
      // The tail before the original shrinks (see above); the job's share counter with the tail.
      await Promise.all([this.records.persistJob(job), this.records.persistShare(tail)])
      await this.records.persistShare(s)
    } finally {
      tracking.moving.delete(tail.shareId)
    }
    this.ctx.log.info({ share: s.shareId, tail: tail.shareId, at: mid, to: end, why }, 'share split')
    return tail
  }
}
