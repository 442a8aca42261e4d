/**
 * Balancer → host: commands (assign, assign-batch, pause, split, drop, merge, validate), their
 * replies, and the checkpoint a pause returns.
 *
 * Part of the protocol's messages (../messages.ts says what every message is); must never do I/O.
 */

import { z } from 'zod'
import { count, errReplySchema, id, shareId, stateRefSchema, term, unit, v, wireErrorSchema } from './common.ts'

export const shareAssignmentSchema = z.object({
  shareId,
  jobId: id,
  epoch: count,
  processor: z.string(),
  input: z.unknown(),
  from: unit,
  to: unit,
  position: unit,
  state: z.unknown().optional(),
  stateRef: stateRefSchema.optional(),
  unitsDone: count,
})
export type ShareAssignment = z.infer<typeof shareAssignmentSchema>

/**
 * Most assignments in one `assign-batch` (and bytes: a batch is also cut to fit a message). The
 * balancer sends a host's assignments in batches as a host sends its reports (lib/protocol/batcher.ts);
 * a batch of one goes as a plain `assign`, which every host release understands.
 */
export const MAX_ASSIGNMENTS_PER_BATCH = 256

export const hostCommandSchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('assign'), term, share: shareAssignmentSchema }),
  /** Several assignments, answered by `assigned`: one answer per share, in order. */
  z.object({ v, t: z.literal('assign-batch'), term, shares: z.array(shareAssignmentSchema).min(2).max(MAX_ASSIGNMENTS_PER_BATCH) }),
  z.object({ v, t: z.literal('pause'), term, shareId, epoch: count }),
  z.object({ v, t: z.literal('split'), term, shareId, epoch: count, fraction: z.number().gt(0).lt(1) }),
  z.object({ v, t: z.literal('drop'), term, shareId, epoch: count }),
  z.object({ v, t: z.literal('merge'), term, processor: z.string(), input: z.unknown(), results: z.array(z.unknown()).min(1) }),
  z.object({ v, t: z.literal('validate'), term, processor: z.string(), input: z.unknown() }),
])
export type HostCommand = z.infer<typeof hostCommandSchema>

export const checkpointSchema = z.object({
  shareId,
  epoch: count,
  position: unit,
  to: unit,
  /** The state inline, or absent when `stateRef` names it in the Object Store. */
  state: z.unknown(),
  stateRef: stateRefSchema.optional(),
  unitsDone: count,
  stateBytes: count,
})
export type CheckpointMsg = z.infer<typeof checkpointSchema>

const okReplySchema = z.object({ v, t: z.literal('ok') })

export const hostReplySchema = z.discriminatedUnion('t', [
  okReplySchema,
  /** The answers to an `assign-batch`, one per share in order: taken (`ok`) or refused (`err`). */
  z.object({ v, t: z.literal('assigned'), answers: z.array(z.union([okReplySchema, errReplySchema])).max(MAX_ASSIGNMENTS_PER_BATCH) }),
  z.object({ v, t: z.literal('paused'), checkpoint: checkpointSchema }),
  z.object({ v, t: z.literal('split'), keptTo: unit, tail: z.tuple([unit, unit]).nullable() }),
  z.object({ v, t: z.literal('merged'), result: z.unknown() }),
  z.object({ v, t: z.literal('err'), error: wireErrorSchema }),
])
export type HostReply = z.infer<typeof hostReplySchema>
