/**
 * Host ↔ balancer: large checkpoint states in chunks.
 *
 * Part of the protocol's messages (../messages.ts says what every message is); must never do I/O.
 */

import { z } from 'zod'
import { count, id, v } from './common.ts'

/** Object names a host gives its states: `<shareId>.<epoch>.<hostId>.<seq>`. */
const blobName = z.string().regex(/^[A-Za-z0-9_-]{1,64}-s[0-9]{1,9}\.[0-9]{1,15}\.[A-Za-z0-9_-]{1,64}\.[0-9]{1,15}$/)
const bytes = z.custom<Uint8Array>((x) => x instanceof Uint8Array, { message: "expected bytes" })

/**
 * A checkpoint state too large for one message travels in chunks through the balancer, which
 * alone writes the Object Store (lib/balancer/blob-proxy.ts says why).
 */
export const blobRequestSchema = z.discriminatedUnion('t', [
  /** Chunk `index` of `count` of the packed state `name` of `total` bytes; index 0 starts over. */
  z.object({ v, t: z.literal('blob-put'), hostId: id, name: blobName, index: count, count: z.number().int().min(1).max(100_000), total: count, chunk: bytes }),
  /** Bytes [offset, offset + length) of the state `name`. */
  z.object({ v, t: z.literal('blob-get'), hostId: id, name: blobName, offset: count, length: z.number().int().min(1) }),
])
export type BlobRequest = z.infer<typeof blobRequestSchema>

export const blobReplySchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('ok') }),
  z.object({ v, t: z.literal('blob'), total: count, chunk: bytes }),
])
export type BlobReply = z.infer<typeof blobReplySchema>
