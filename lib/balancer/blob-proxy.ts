/**
 * The balancer's side of large checkpoint states: hosts send a state too large for one message in
 * chunks, and read one back in chunks, through the balancer, which alone talks to the JetStream
 * Object Store. Hosts get no JetStream access at all: any JetStream API or stream publish sends
 * its answer to a reply subject the caller picks, and JetStream's answers are not bound by the
 * caller's permissions — a host with the object store's permissions could write its bytes into
 * the KV buckets (the lease, job records) or onto any Shoal subject (issue 10's review found it on
 * nats-server 2.9.10).
 *
 * Holds uploads in memory until their last chunk (bounded per upload by shares.maxCheckpointBytes
 * and in number), and keeps recently stored or read states in a small cache, since a state put
 * during a migration is read by the target moments later. Who may put or read which object is
 * the caller's decision (the share must be that host's).
 *
 * Must never talk to NATS itself: it is given the store.
 */

import { ShoalError } from '../errors.ts'

/** The raw bytes store (the Object Store bucket of the cluster). */
export interface BlobStore {
  putBytes(name: string, data: Uint8Array): Promise<void>
  getBytes(name: string): Promise<Uint8Array>
}

export interface BlobProxyLimits {
  /** Largest state (shares.maxCheckpointBytes, plus msgpack's framing). */
  maxBytes: number
  /** Most uploads in progress at once (later ones are refused until one ends or expires). */
  maxUploads?: number
  /** An upload with no chunk for this long is dropped. */
  uploadIdleMs?: number
  /** Bytes of states kept in the read cache. */
  cacheBytes?: number
}

interface Upload {
  chunks: Uint8Array[]
  received: number
  total: number
  count: number
  touchedAt: number
}

export class BlobProxy {
  private readonly uploads = new Map<string, Upload>()
  /** name → bytes, oldest first (a Map keeps insertion order; a hit is re-inserted). */
  private readonly cache = new Map<string, Uint8Array>()
  private cached = 0
  private readonly maxUploads: number
  private readonly idleMs: number
  private readonly cacheBytes: number

  constructor(
    private readonly store: BlobStore,
    private readonly limits: BlobProxyLimits,
  ) {
    this.maxUploads = limits.maxUploads ?? 64
    this.idleMs = limits.uploadIdleMs ?? 60_000
    this.cacheBytes = limits.cacheBytes ?? 128 * 1024 * 1024
  }

  /**
   * Takes chunk `index` of `count` of object `name` from `hostId` (chunks in order; index 0
   * starts over). Resolves once the chunk is held — for the last one, once the whole object is
   * stored durably.
   */
  async put(hostId: string, name: string, index: number, count: number, total: number, chunk: Uint8Array, now: number): Promise<void> {
    this.expire(now)
    const key = `${hostId}/${name}`
    if (total > this.limits.maxBytes) throw new ShoalError('E_CHECKPOINT_TOO_LARGE', `state ${name} is ${total} bytes, over the ${this.limits.maxBytes} a checkpoint may have`)
    if (index >= count) throw new ShoalError('E_MSG_INVALID', `chunk ${index} of ${count} of ${name}: index out of range`)
    let up = this.uploads.get(key)
    if (index === 0) {
      if (!up && this.uploads.size >= this.maxUploads) throw new ShoalError('E_STORE', `too many checkpoint uploads in progress (${this.uploads.size}); try again`)
      up = { chunks: [], received: 0, total, count, touchedAt: now }
      this.uploads.set(key, up)
    }
    if (!up || up.chunks.length !== index || up.count !== count || up.total !== total) {
      this.uploads.delete(key)
      throw new ShoalError('E_STORE', `chunk ${index} of ${count} of ${name} does not follow what was received (${up ? `${up.chunks.length} of ${up.count}` : 'nothing'}): send the state again from chunk 0`)
    }
    if (up.received + chunk.length > total) {
      this.uploads.delete(key)
      throw new ShoalError('E_MSG_INVALID', `chunks of ${name} add up to more than its ${total} bytes`)
    }
    up.chunks.push(chunk)
    up.received += chunk.length
    up.touchedAt = now
    if (index < count - 1) return
    this.uploads.delete(key)
    if (up.received !== total) throw new ShoalError('E_MSG_INVALID', `${name}: ${up.received} bytes received, ${total} announced`)
    const data = concat(up.chunks, total)
    await this.store.putBytes(name, data)
    this.remember(name, data)
  }

  /** Bytes [offset, offset + length) of object `name`, with its total size. */
  async get(name: string, offset: number, length: number): Promise<{ chunk: Uint8Array; total: number }> {
    let data = this.cache.get(name)
    if (data) {
      this.cache.delete(name)
      this.cache.set(name, data)
    } else {
      data = await this.store.getBytes(name)
      this.remember(name, data)
    }
    return { chunk: data.subarray(Math.min(offset, data.length), Math.min(offset + length, data.length)), total: data.length }
  }

  /** The object is deleted: forget it. */
  forget(name: string): void {
    const d = this.cache.get(name)
    if (d) this.cached -= d.length
    this.cache.delete(name)
  }

  /** Uploads in progress (for tests and metrics). */
  uploading(): number {
    return this.uploads.size
  }

  private remember(name: string, data: Uint8Array): void {
    if (data.length > this.cacheBytes) return
    this.forget(name)
    this.cache.set(name, data)
    this.cached += data.length
    for (const [n, d] of this.cache) {
      if (this.cached <= this.cacheBytes) break
      this.cache.delete(n)
      this.cached -= d.length
    }
  }

  private expire(now: number): void {
    for (const [k, u] of this.uploads) if (now - u.touchedAt > this.idleMs) this.uploads.delete(k)
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}
