/**
 * The host's side of large checkpoint states: a state too large for one message is sent to the
 * balancer in chunks on `bal.blob.<hostId>` and read back the same way; the balancer stores it in
 * the Object Store (lib/balancer/blob-proxy.ts explains why hosts have no JetStream access).
 *
 * Errors are E_STORE (retryable): a checkpoint that could not be stored is taken again later, an
 * assignment whose state could not be read is refused and placed again.
 *
 * Must never decide when a checkpoint counts: that is the balancer's ack after its KV write.
 */

import { Packr } from 'msgpackr'
import { ShoalError } from '../errors.ts'
import type { StateRef } from '../checkpoints/state-blobs.ts'
import type { Bus } from '../protocol/bus.ts'
import { PROTOCOL_VERSION as V, blobReplySchema } from '../protocol/messages.ts'
import type { Subjects } from '../protocol/subjects.ts'

/** Room left in each chunk message for its other fields and msgpack's framing. */
const CHUNK_OVERHEAD = 16 * 1024

export class BlobClient {
  private readonly packr = new Packr({ useRecords: false, mapsAsObjects: true })
  private readonly chunkBytes: number

  constructor(
    private readonly bus: Bus,
    private readonly subjects: Subjects,
    private readonly hostId: string,
    private readonly timeoutMs: number,
  ) {
    this.chunkBytes = Math.max(1024, bus.codec.maxMessageBytes - CHUNK_OVERHEAD)
  }

  /** Stores `state` under `name`; resolves with its reference once the balancer has it durably. */
  async put(name: string, state: unknown): Promise<StateRef> {
    const data = this.packr.pack(state)
    const count = Math.max(1, Math.ceil(data.length / this.chunkBytes))
    try {
      for (let index = 0; index < count; index++) {
        const chunk = data.subarray(index * this.chunkBytes, (index + 1) * this.chunkBytes)
        await this.bus.request(this.subjects.blob(this.hostId), { v: V, t: 'blob-put', hostId: this.hostId, name, index, count, total: data.length, chunk }, blobReplySchema, this.timeoutMs)
      }
    } catch (e) {
      throw storeError(`cannot store checkpoint state ${name} (${data.length} bytes)`, e)
    }
    return { name, bytes: data.length }
  }

  /** Reads the state `ref` names. */
  async get(ref: StateRef): Promise<unknown> {
    const parts: Uint8Array[] = []
    let offset = 0
    let total = ref.bytes
    try {
      do {
        const r = await this.bus.request(this.subjects.blob(this.hostId), { v: V, t: 'blob-get', hostId: this.hostId, name: ref.name, offset, length: this.chunkBytes }, blobReplySchema, this.timeoutMs)
        if (r.t !== 'blob') throw new ShoalError('E_INTERNAL', `unexpected reply '${r.t}' to blob-get`)
        total = r.total
        if (r.chunk.length === 0 && offset < total) throw new ShoalError('E_STORE', `checkpoint state ${ref.name} ended at ${offset} of ${total} bytes`)
        parts.push(r.chunk)
        offset += r.chunk.length
      } while (offset < total)
    } catch (e) {
      throw storeError(`cannot read checkpoint state ${ref.name}`, e)
    }
    const data = new Uint8Array(offset)
    let at = 0
    for (const p of parts) {
      data.set(p, at)
      at += p.length
    }
    return this.packr.unpack(data)
  }
}

function storeError(what: string, e: unknown): ShoalError {
  const inner = e as ShoalError
  if (inner.code === 'E_CHECKPOINT_TOO_LARGE') return inner
  return new ShoalError('E_STORE', `${what}: ${inner.message}`, { cause: e })
}
