/**
 * msgpack encoding with a size limit, decoding with validation, and the counter of rejected
 * messages. A message that fails to decode or validate is counted by subject and cause and then
 * dropped: it is never thrown into the event loop.
 *
 * Must never do I/O.
 */

import { Packr } from 'msgpackr'
import type { z } from 'zod'
import { ShoalError } from '../errors.ts'

/**
 * Why a message was dropped. `identity`: its body speaks for another host than its subject names;
 * `forbidden`: its sender's identity may not do what it asks (a submitter draining, another's job).
 */
export type RejectCause = 'malformed' | 'invalid' | 'oversized' | 'stale-epoch' | 'stale-term' | 'identity' | 'forbidden' | 'overload' | 'expired'

/** Distinct subjects a RejectCounter names; rejects on any other subject count as OTHER_SUBJECT. */
export const MAX_REJECT_SUBJECTS = 128
export const OTHER_SUBJECT = 'other'

/**
 * Counts dropped messages by subject and cause; `onReject` lets metrics follow along. The set of
 * subjects it names is bounded (MAX_REJECT_SUBJECTS, then `other`): junk sent to thousands of
 * distinct subjects must not grow `shoal status` or the metric series without end (issue 10: 20,000
 * junk subjects once made 20,042 series and a 5 MB status reply).
 */
export class RejectCounter {
  private readonly counts = new Map<string, number>()
  private readonly named = new Set<string>()
  onReject: ((subject: string, cause: RejectCause) => void) | undefined

  count(subject: string, cause: RejectCause): void {
    if (!this.named.has(subject) && this.named.size < MAX_REJECT_SUBJECTS) this.named.add(subject)
    const s = this.named.has(subject) ? subject : OTHER_SUBJECT
    const key = `${s} ${cause}`
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
    this.onReject?.(s, cause)
  }

  /** `{ "<subject> <cause>": n }` */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts)
  }

  total(cause?: RejectCause): number {
    let n = 0
    for (const [k, c] of this.counts) if (cause === undefined || k.endsWith(` ${cause}`)) n += c
    return n
  }
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; cause: RejectCause; detail: string }

export class Codec {
  // Records (msgpackr's shared-structure extension) would make messages unreadable to a peer
  // that has not seen the structure: plain maps only.
  private readonly packr = new Packr({ useRecords: false, mapsAsObjects: true })

  constructor(readonly maxMessageBytes: number) {}

  /** Encodes a message; throws E_MSG_TOO_LARGE past `maxMessageBytes` (the caller must not send it). */
  encode(msg: unknown): Uint8Array {
    const bytes = this.packr.pack(msg)
    if (bytes.length > this.maxMessageBytes) {
      const t = typeof msg === 'object' && msg !== null ? (msg as { t?: unknown }).t : undefined
      throw new ShoalError(
        'E_MSG_TOO_LARGE',
        `message${t ? ` '${String(t)}'` : ''} is ${bytes.length} bytes, over protocol.maxMessageBytes (${this.maxMessageBytes})`,
        { details: { bytes: bytes.length, limit: this.maxMessageBytes } },
      )
    }
    return bytes
  }

  /** Size in bytes of a value once packed (used to measure checkpoint state). */
  sizeOf(value: unknown): number {
    return this.packr.pack(value).length
  }

  /** Decodes and validates; never throws. */
  decode<S extends z.ZodType>(schema: S, data: Uint8Array): Decoded<z.infer<S>> {
    if (data.length > this.maxMessageBytes) {
      return { ok: false, cause: 'oversized', detail: `${data.length} bytes > ${this.maxMessageBytes}` }
    }
    let raw: unknown
    try {
      raw = this.packr.unpack(data)
    } catch (err) {
      return { ok: false, cause: 'malformed', detail: `not msgpack: ${(err as Error).message}` }
    }
    // msgpackr decodes the reserved byte 0xC1 to a placeholder object instead of throwing.
    if (data[0] === 0xc1) return { ok: false, cause: 'malformed', detail: 'not msgpack: reserved byte 0xc1' }
    const parsed = schema.safeParse(raw)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const where = issue && issue.path.length ? issue.path.join('.') : '(root)'
      return { ok: false, cause: 'invalid', detail: `${where}: ${issue?.message ?? 'invalid'}` }
    }
    return { ok: true, value: parsed.data }
  }
}
