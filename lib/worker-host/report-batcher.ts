/**
 * Gathers a host's reports into batches (issue 12, point 4): one message per batch, answered with
 * one answer per report, so the balancer's message rate — and, through its checkpoint journal, its
 * store writes — grows with hosts rather than with shares. The rule (Nagle's) is the protocol's
 * batcher's (lib/protocol/batcher.ts); what is particular to reports: a result or failure leaves
 * at once, while a checkpoint waits up to `lingerMs` for company. It is one of many and the next
 * supersedes it, so a little delay costs nothing that the host's checkpoint pace does not already
 * make up for (checkpoint-pace.ts leads by the measured delay).
 *
 * Must never import NATS or decide what a report's answer means: the host sends, and reads
 * answers; this only groups and routes them.
 */

import { Batcher } from '../protocol/batcher.ts'
import { MAX_REPORTS_PER_BATCH, type Report, type ReportAnswer, type ReportReply } from '../protocol/messages.ts'

export interface BatcherOptions {
  /** Sends one batch; resolves with one answer per report, in order (rejects for the whole batch). */
  send(reports: Report[]): Promise<ReportAnswer[]>
  /** Encoded size of one report (bytes). */
  sizeOf(report: Report): number
  /** Bytes a batch adds around its reports (envelope, array header), with room to spare. */
  overheadBytes: number
  maxBytes: number
  /** How long a checkpoint may wait for company (ms). */
  lingerMs: number
}

export class ReportBatcher extends Batcher<Report, ReportReply> {
  constructor(opts: BatcherOptions) {
    super({
      send: opts.send,
      sizeOf: opts.sizeOf,
      overheadBytes: opts.overheadBytes,
      maxBytes: opts.maxBytes,
      maxItems: MAX_REPORTS_PER_BATCH,
      lingerOf: (r) => (r.t === 'checkpoint' ? opts.lingerMs : 0),
      closedMessage: 'this host is stopping: report not sent',
    })
  }
}
