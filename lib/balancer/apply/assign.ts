/**
 * Placing a pending share: a new epoch on a host, durably, then the host is told. A host that
 * keeps failing assignments is benched for a while; a share refused again and again fails its job
 * instead of looping (issue 10).
 */

import { ShoalError, toWire } from '../../errors.ts'
import { MAX_ASSIGN_REFUSALS } from '../assign-refusals.ts'
import { assignCommand } from '../assign-command.ts'
import type { AssignSender } from './assign-sender.ts'
import type { BalancerContext } from '../context.ts'
import { isFinalJob as isFinal } from '../ledger.ts'
import type { Records } from '../records.ts'
import type { ShareFate } from '../share-fate.ts'
import type { ShareRecord } from '../store.ts'

/** After a failed assignment, the next pass waits this long: the host may be briefly busy. */
const RETRY_AFTER_MS = 250

export class Assigner {
  constructor(
    private readonly ctx: BalancerContext,
    private readonly records: Records,
    private readonly fate: Pick<ShareFate, 'failed'>,
    private readonly sender: Pick<AssignSender, 'send'>,
  ) {}

  /** Gives a pending share a new epoch on a host, durably, then tells the host. */
  async assign(shareId: string, hostId: string): Promise<void> {
    const { ledger, tracking, bus, fence, log } = this.ctx
    const s = ledger.share(shareId)
    const job = s && ledger.job(s.jobId)
    if (!s || !job || s.status !== 'pending' || isFinal(job.state)) return
    // Measured before anything changes: no host could ever be sent an assignment over the limit
    // (an input admitted under an older limit, or with a large inline state), so the job fails
    // rather than being tried again and again.
    const bytes = bus.codec.sizeOf(assignCommand(job, s, s.epoch + 1, fence.term))
    if (bytes > bus.codec.maxMessageBytes) {
      await this.fate.failed(s, hostId, toWire(new ShoalError('E_UNPLACEABLE', `share ${shareId} cannot be sent to any host: its assignment is ${bytes} bytes, over protocol.maxMessageBytes (${bus.codec.maxMessageBytes}). The job's input and the share's inline checkpoint state must fit in it together`)))
      return
    }
    ledger.assign(s, hostId, Date.now())
    const reason = tracking.pendingReason.get(shareId)
    tracking.pendingReason.delete(shareId)
    const failover = tracking.openFailover.get(shareId)
    if (failover) {
      failover.toHost = hostId
      failover.redispatchedAt = s.updatedAt
      tracking.openFailover.delete(shareId)
    }
    // The job turns running together with its first share, before any await: a client must
    // never read a running share in a job that still says it waits.
    const started = job.state === 'waiting'
    if (started) ledger.startJob(job)
    const epoch = s.epoch
    await this.records.persistShare(s)
    if (started) {
      await this.records.persistJob(job)
      this.records.publishJob(job)
    }
    // While the write waited (a store outage), the share may have been put back or moved on.
    // (Read through a wider type: the ledger changed the status TypeScript narrowed above.)
    const cur: ShareRecord = s
    const current = () => cur.status === 'running' && s.epoch === epoch && s.host === hostId && !isFinal(job.state)
    if (!current()) return
    // The missing-from-heartbeat grace counts from when the host is told, not from the decision:
    // a write that waited out a JetStream election (4-6 s) is not the host's silence (a 3-node
    // chaos test saw three shares re-dispatched as lost for it). Set now, and again as the
    // assignment leaves its host's batcher (it may wait behind a batch on its way).
    tracking.assignedAt.set(shareId, Date.now())
    try {
      await this.sender.send(hostId, assignCommand(job, s, epoch, fence.term), { current, leaving: () => tracking.assignedAt.set(shareId, Date.now()) })
      // Put back, moved or cancelled while the host took it: that path owns the share now.
      if (!current()) return
      // A routine placement is a debug line: at thousands of tiny shares a second, a line each
      // was 4 % of the balancer's CPU (bench tiny); the metrics count them. A re-dispatch is news.
      if (reason) log.info({ share: shareId, host: hostId, epoch, position: s.position, reason }, `share re-dispatched (${reason})`)
      else log.debug({ share: shareId, host: hostId, epoch, position: s.position, reason: 'place' }, 'share placed')
      tracking.refusals.hostAccepted(hostId)
      tracking.refusals.shareSettled(shareId)
    } catch (e) {
      // Not sent, or refused, after the share changed: whoever changed it owns it now.
      if (!current()) return
      if (await this.refused(s, epoch, hostId, e)) return
      // The host did not take it: back to pending. If it did take it after all (a timeout), its
      // reports carry this epoch, which the next assignment makes stale, so nothing counts twice.
      log.warn({ share: shareId, host: hostId, err: (e as Error).message }, 'assignment failed; share back to pending')
      if (cur.status === 'running' && s.epoch === epoch && !this.ctx.stopped()) {
        ledger.requeue(s, Date.now())
        tracking.assignedAt.delete(shareId)
        await this.records.persistShare(s)
        setTimeout(() => this.ctx.kick(), RETRY_AFTER_MS)
      }
    }
  }

  /**
   * Bookkeeping of a failed assignment: a host that keeps failing them is benched for a while; a
   * share refused MAX_ASSIGN_REFUSALS times fails its job. True when the share was failed here.
   */
  private async refused(s: ShareRecord, epoch: number, hostId: string, e: unknown): Promise<boolean> {
    const err = e instanceof ShoalError ? e : new ShoalError('E_INTERNAL', String(e))
    if (s.status !== 'running' || s.epoch !== epoch || this.ctx.stopped()) return false
    // Not the host's doing: this balancer was deposed, or the checkpoint store is out for a while.
    if (err.code === 'E_NOT_LEADER' || err.code === 'E_STALE_TERM' || err.code === 'E_STORE') return false
    const { refusals } = this.ctx.tracking
    const benchMs = refusals.hostRefused(hostId, Date.now())
    if (benchMs !== undefined) this.ctx.log.warn({ host: hostId, benchMs, err: err.message }, `host ${hostId} failed assignments again and again: nothing new goes there for ${benchMs} ms`)
    // A host that answered no (not one that could not be reached) counts against the share.
    if (err.code === 'E_TIMEOUT' || err.code === 'E_UNAVAILABLE') return false
    const current = () => s.status === 'running' && s.epoch === epoch
    const tries = refusals.shareRefused(s.shareId)
    if (tries < MAX_ASSIGN_REFUSALS || !current()) return false
    refusals.shareSettled(s.shareId)
    await this.fate.failed(s, hostId, toWire(new ShoalError('E_UNPLACEABLE', `share ${s.shareId} was refused by hosts ${tries} times; the last refusal, by ${hostId}: ${err.code}: ${err.message}`, { cause: err })))
    return true
  }
}
