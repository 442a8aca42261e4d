/**
 * Reports from hosts: checkpoints made durable before they are acknowledged, results recorded, and
 * failures handed to the share's fate. A report must come from the host it names (its subject,
 * which NATS permissions tie to that host, says so) and carry the share's current epoch; anything
 * else is refused and counted. Not leading means no answer at all, so the host's request reaches
 * the leader or times out and is sent again.
 */

import { ShoalError, toWire } from '../errors.ts'
import { NO_REPLY } from '../protocol/bus.ts'
import { PROTOCOL_VERSION as V, type Report, type ReportAnswer, type ReportBatch, type ReportBatchReply, type ReportReply } from '../protocol/messages.ts'
import type { Splitter } from './apply/split.ts'
import type { Completion } from './completion.ts'
import type { BalancerContext } from './context.ts'
import { adopt, type Records } from './records.ts'
import type { ShareFate } from './share-fate.ts'

export class Reports {
  constructor(
    private readonly ctx: BalancerContext,
    private readonly records: Records,
    private readonly fate: Pick<ShareFate, 'failed'>,
    private readonly completion: Pick<Completion, 'complete'>,
    private readonly tails: Pick<Splitter, 'addTail'>,
  ) {}

  /** One report, checked against the host its subject names. */
  async onReportFrom(r: Report, subject: string): Promise<ReportReply | typeof NO_REPLY> {
    const from = this.ctx.subjects.parseReport(subject)
    if (from !== r.hostId) {
      this.ctx.bus.rejects.count(subject, 'identity')
      this.ctx.log.warn({ subject, claimed: r.hostId, t: r.t }, 'refused a report that names another host than its subject')
      return this.nack('E_FORBIDDEN', `a report on ${subject} must name host ${from ?? '(none)'}, not ${r.hostId}`)
    }
    const start = performance.now()
    const answer = await this.onReport(r)
    if (answer !== NO_REPLY) this.ctx.metrics.reportAnswer.observe({ t: r.t }, (performance.now() - start) / 1000)
    return answer
  }

  /**
   * A host's reports of one interval: each answered in order, as it would have been alone. Not
   * leading: no answer at all, as for a single report.
   */
  async onBatchFrom(b: ReportBatch, subject: string): Promise<ReportBatchReply | typeof NO_REPLY> {
    const from = this.ctx.subjects.parseReport(subject)
    if (from !== b.hostId) {
      this.ctx.bus.rejects.count(subject, 'identity')
      this.ctx.log.warn({ subject, claimed: b.hostId }, 'refused a report batch that names another host than its subject')
      throw new ShoalError('E_FORBIDDEN', `reports on ${subject} must name host ${from ?? '(none)'}, not ${b.hostId}`)
    }
    if (!(await this.ctx.actingSoon())) {
      for (const r of b.reports) if (r.t === 'checkpoint') this.ctx.metrics.checkpointFailures.inc({ cause: 'not-leader' })
      return NO_REPLY
    }
    const answers = await Promise.all(
      b.reports.map(async (r): Promise<ReportAnswer> => {
        try {
          const a = await this.onReportFrom(r, subject)
          // The lease lapsed while this batch was handled: this one is for the host to send again.
          return a === NO_REPLY ? { v: V, t: 'err', error: toWire(new ShoalError('E_NOT_LEADER', 'this balancer no longer leads: send the report again')) } : a
        } catch (e) {
          return { v: V, t: 'err', error: toWire(e) }
        }
      }),
    )
    return { v: V, t: 'answers', term: this.ctx.fence.term, answers }
  }

  private async onReport(r: Report): Promise<ReportReply | typeof NO_REPLY> {
    const { ledger, tracking, metrics } = this.ctx
    // Not leading (deposed, stepping down, or the lease unconfirmed for a whole lease): stay
    // silent, so the host's request reaches the leader or times out and is sent again.
    if (!(await this.ctx.actingSoon())) {
      if (r.t === 'checkpoint') metrics.checkpointFailures.inc({ cause: 'not-leader' })
      return NO_REPLY
    }
    const shareId = r.t === 'checkpoint' ? r.checkpoint.shareId : r.shareId
    const epoch = r.t === 'checkpoint' ? r.checkpoint.epoch : r.epoch
    const s = ledger.share(shareId)
    // The same result again (our ack was lost, or went to a balancer that no longer leads): it is
    // stored already, so the answer is the ack it should have had.
    if (r.t === 'done' && s && s.status === 'done' && s.epoch === epoch && s.hosts.at(-1) === r.hostId) return this.ack()
    if (!s || s.status !== 'running' || s.host !== r.hostId || s.epoch !== epoch) {
      if (r.t === 'checkpoint') metrics.checkpointFailures.inc({ cause: 'stale' })
      this.ctx.bus.rejects.count(this.ctx.subjects.report(r.hostId), 'stale-epoch')
      this.ctx.log.warn({ host: r.hostId, share: shareId, epoch, current: s?.epoch, status: s?.status, t: r.t }, 'stale report rejected')
      return this.nack('E_STALE_EPOCH', `share ${shareId} epoch ${epoch} on ${r.hostId} is not current (current epoch ${s?.epoch ?? 'none'}, ${s?.status ?? 'unknown'} on ${s?.host ?? 'no host'}): drop it`)
    }
    const now = Date.now()
    if (r.t === 'checkpoint') {
      const cp = r.checkpoint
      const max = this.ctx.config().shares.maxCheckpointBytes
      if (cp.stateBytes > max) {
        const msg = `checkpoint of ${shareId} is ${cp.stateBytes} bytes, over shares.maxCheckpointBytes (${max})`
        this.records.dropState(cp.stateRef?.name)
        metrics.checkpointFailures.inc({ cause: 'too-large' })
        await this.fate.failed(s, r.hostId, toWire(new ShoalError('E_CHECKPOINT_TOO_LARGE', msg)))
        return this.nack('E_CHECKPOINT_TOO_LARGE', msg)
      }
      const garbage = adopt(s, cp)
      await this.records.persistCheckpoint(s, now)
      this.records.dropState(garbage)
      metrics.checkpoints.inc()
      metrics.checkpointSize.observe(cp.stateBytes)
      return this.ack()
    }
    if (r.t === 'done') {
      // The host finished short of the record's end: a split whose answer never reached us. The
      // units past r.to were never processed; they become a share of their own.
      if (r.to < s.to && r.to >= s.from) await this.tails.addTail(s, r.to, s.to, 'split answer lost')
      // Still this epoch's after the tail's write? (A loss or a cancel may have won meanwhile.)
      if (s.status !== 'running' || s.epoch !== epoch || s.host !== r.hostId) return this.nack('E_STALE_EPOCH', `share ${shareId} epoch ${epoch} changed while its result was recorded: drop it`)
      const garbage = s.stateRef?.name
      ledger.finish(s, r.result, r.unitsDone, now)
      // Nothing tracked of a running share is needed once it is done. Kept, it made every
      // membership excuse walk all shares ever finished (issue 12: a 100 ms turn at 300,000).
      tracking.forgetShare(shareId)
      await this.records.persistShare(s)
      this.records.dropState(garbage)
      // Debug: a line per share is a firehose at tiny-share rates (see apply/assign.ts).
      this.ctx.log.debug({ share: shareId, host: r.hostId, ms: Math.round(r.elapsedMs) }, 'share done')
      this.completion.complete(s.jobId)
      this.ctx.kick()
      return this.ack()
    }
    // failed: the processor threw, could not load, or its state outgrew the limit.
    const garbage = r.checkpoint ? adopt(s, r.checkpoint) : undefined
    await this.fate.failed(s, r.hostId, r.error)
    this.records.dropState(garbage)
    return this.ack()
  }

  private ack(): ReportReply {
    return { v: V, t: 'ack', term: this.ctx.fence.term }
  }

  private nack(code: 'E_STALE_EPOCH' | 'E_CHECKPOINT_TOO_LARGE' | 'E_FORBIDDEN', message: string): ReportReply {
    return { v: V, t: 'nack', term: this.ctx.fence.term, error: toWire(new ShoalError(code, message)) }
  }
}
