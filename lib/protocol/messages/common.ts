/**
 * Pieces every message is built of: the version, ids, counts, errors, terms and state references.
 *
 * Part of the protocol's messages (../messages.ts says what every message is); must never do I/O.
 */

import { z } from 'zod'

export const PROTOCOL_VERSION = 1 as const

export const v = z.literal(PROTOCOL_VERSION)
export const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/)
export const shareId = z.string().regex(/^[A-Za-z0-9_-]{1,64}-s[0-9]{1,9}$/)
export const count = z.number().int().nonnegative()
export const unit = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
export const ms = z.number().nonnegative()
export const fraction = z.number().min(0).max(1)
export const tags = z.record(z.string(), z.string())

export const wireErrorSchema: z.ZodType<import('../../errors.ts').WireError> = z.lazy(() =>
  z.object({
    code: z.string() as z.ZodType<import('../../errors.ts').ErrorCode>,
    message: z.string(),
    retryable: z.boolean(),
    details: z.record(z.string(), z.unknown()).optional(),
    cause: wireErrorSchema.optional(),
  }),
)

/** The answer of any request whose handler failed (see Bus.serve): the error in wire form. */
export const errReplySchema = z.object({ v, t: z.literal('err'), error: wireErrorSchema })


/** Where a large checkpoint state lives in the Object Store (instead of inline `state`). */
export const stateRefSchema = z.object({ name: z.string().min(1).max(200), bytes: count })

/**
 * The leading balancer's term (its own epoch, one higher at every takeover). Every command carries
 * it; a host refuses a command from a lower term than the highest it has seen (E_STALE_TERM), so a
 * deposed leader can change nothing on a host.
 */
export const term = count
