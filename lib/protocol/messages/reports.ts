/**
 * Host → balancer: reports (checkpoint, done, failed), one at a time or batched, and their answers.
 *
 * Part of the protocol's messages (../messages.ts says what every message is); must never do I/O.
 */

import { z } from 'zod'
import { count, errReplySchema, id, ms, shareId, term, unit, v, wireErrorSchema } from './common.ts'
import { checkpointSchema } from './commands.ts'

export const reportSchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('checkpoint'), hostId: id, checkpoint: checkpointSchema }),
  z.object({
    v,
    t: z.literal('done'),
    hostId: id,
    shareId,
    epoch: count,
    to: unit,
    result: z.unknown(),
    unitsDone: count,
    elapsedMs: ms,
  }),
  z.object({
    v,
    t: z.literal('failed'),
    hostId: id,
    shareId,
    epoch: count,
    error: wireErrorSchema,
    checkpoint: checkpointSchema.optional(),
  }),
])
export type Report = z.infer<typeof reportSchema>

/**
 * The balancer's answer to a report: `ack` once durable; `nack` (a definite refusal: stale epoch,
 * share or job gone) tells the host to drop the share. Both carry the leader's term: a host treats
 * an answer from a lower term than it knows as no answer and sends the report again.
 */
export const reportReplySchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('ack'), term }),
  z.object({ v, t: z.literal('nack'), term, error: wireErrorSchema }),
])
export type ReportReply = z.infer<typeof reportReplySchema>

/** Reports one batch may carry: a host's reports of one interval, at most one per share it runs. */
export const MAX_REPORTS_PER_BATCH = 1_024

/**
 * How long a host waits for the answer to a report (or a batch of them) before it gives up: a
 * result or failure is sent again, a checkpoint left to the next one. The balancer drops a report
 * that waited half of this in its work queue unread (lib/protocol/work-queue.ts, "expiring").
 */
export const REPORT_TIMEOUT_MS = 3_000

/**
 * A host's reports of one interval in one message (issue 12, point 4): the balancer's message
 * rate and its store writes grow with hosts, not with shares. Answered with one answer per report,
 * in order.
 */
export const reportBatchSchema = z.object({ v, t: z.literal('reports'), hostId: id, reports: z.array(reportSchema).min(1).max(MAX_REPORTS_PER_BATCH) })
export type ReportBatch = z.infer<typeof reportBatchSchema>

/** One report's answer in a batch: its ack or nack, or `err` (not handled now: send it again). */
export const reportAnswerSchema = z.union([reportReplySchema, errReplySchema])
export type ReportAnswer = z.infer<typeof reportAnswerSchema>

export const reportBatchReplySchema = z.object({ v, t: z.literal('answers'), term, answers: z.array(reportAnswerSchema) })
export type ReportBatchReply = z.infer<typeof reportBatchReplySchema>
