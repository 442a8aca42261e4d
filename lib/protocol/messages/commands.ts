/**
 * Balancer → host: commands (assign, pause, split, drop, merge, validate), their replies, and the checkpoint a pause returns.
 *
 * Part of the protocol's messages (../messages.ts says what every message is); must never do I/O.
 */

import { z } from 'zod'
import { count, id, shareId, stateRefSchema, term, unit, v, wireErrorSchema } from './common.ts'

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


export const hostCommandSchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('assign'), term, share: shareAssignmentSchema }),
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

export const hostReplySchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('ok') }),
  z.object({ v, t: z.literal('paused'), checkpoint: checkpointSchema }),
  z.object({ v, t: z.literal('split'), keptTo: unit, tail: z.tuple([unit, unit]).nullable() }),
  z.object({ v, t: z.literal('merged'), result: z.unknown() }),
  z.object({ v, t: z.literal('err'), error: wireErrorSchema }),
])
export type HostReply = z.infer<typeof hostReplySchema>
