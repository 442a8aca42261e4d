/**
 * Durable, fenced writes of one bucket's records: the only way the leader writes job, share and
 * host records. Three things at once:
 *
 * - **Must-happen writes.** A write that fails for a transient reason (NATS away, a JetStream
 *   leader election, a timeout) is retried with back-off for as long as this balancer leads; the
 *   caller's promise settles only when a write carrying this version (or a later one) is durable.
 *   So memory and store never disagree for good: memory may run ahead of the store while a write
 *   is pending, and whoever acts on a change (commands a host, acks a report) awaits it first.
 * - **One write per key at a time, coalesced.** A write takes the record as it is when the write
 *   is encoded, and answers every put made until then: puts of one turn (a host's batch of five
 *   checkpoints, each touching the host's journal record) cost one write, not one plus one more.
 *   While a key's write is in flight, further puts only mark it dirty; the next write takes the
 *   record as it is then. Writes of one key never overtake each other.
 * - **Fencing by compare-and-set.** Each write names the revision this writer last saw for the key
 *   (0: the key must not exist). A conflict means someone else wrote the key: the writer reads it,
 *   and if its term is higher than ours another balancer leads (the fence is revoked and the put
 *   rejects with E_NOT_LEADER); if not, it was a lower term's late write or our own write whose
 *   answer was lost, and our record, the current one, is written over it.
 *
 * Must never import NATS: the bucket is a narrow interface, so the spec drives it with a fake.
 */

import { ShoalError } from '../errors.ts'
import { notLeader, type Fence } from './fence.ts'

/** The few KV operations the writer needs. `create` and `update` throw `RevisionConflict` on a CAS mismatch. */
export interface KvBucket {
  readonly name: string
  create(key: string, value: Uint8Array): Promise<number>
  update(key: string, value: Uint8Array, revision: number): Promise<number>
  /** The current entry, or null when the key does not exist (or was deleted). */
  get(key: string): Promise<{ revision: number; value: Uint8Array } | null>
  /** Deletes the key if it is still at `revision` (RevisionConflict otherwise). */
  remove(key: string, revision: number): Promise<void>
}

/** The queued "record" of a key that is to be deleted. */
const REMOVED: object = Object.freeze({})

/** The store already holds another revision of the key than the one named. */
export class RevisionConflict extends Error {
  constructor(key: string, cause?: unknown) {
    super(`revision conflict on ${key}`, { cause })
    this.name = 'RevisionConflict'
  }
}

export interface WriterEvents {
  /** A write failed and will be retried after `delayMs` (for logs and metrics). */
  retry?: (bucket: string, key: string, err: unknown, attempt: number, delayMs: number) => void
  /** A record written by a lower term was found and overwritten (a deposed leader's late write). */
  fencedWrite?: (bucket: string, key: string, theirTerm: number) => void
}

export interface WriterOptions {
  /** First retry delay; doubles up to `maxRetryMs`. */
  minRetryMs?: number
  maxRetryMs?: number
  /** Sleeps (injected so the spec can run without real time). */
  sleep?: (ms: number) => Promise<void>
  events?: WriterEvents
}

interface KeyState {
  latest: object
  /** Puts waiting for the next write to start. */
  waiting: Array<{ resolve: () => void; reject: (e: unknown) => void }>
  running: boolean
}

/** Records of one bucket, written as `encode({ ...record, term })`. */
export class RecordWriter {
  /** Last revision of each key this writer knows (0 = absent). */
  private readonly revisions = new Map<string, number>()
  private readonly keys = new Map<string, KeyState>()
  private readonly minRetryMs: number
  private readonly maxRetryMs: number
  private readonly sleep: (ms: number) => Promise<void>

  constructor(
    private readonly kv: KvBucket,
    private readonly fence: Fence,
    private readonly encode: (rec: object) => Uint8Array,
    private readonly termOf: (value: Uint8Array) => number,
    private readonly opts: WriterOptions = {},
  ) {
    this.minRetryMs = opts.minRetryMs ?? 50
    this.maxRetryMs = opts.maxRetryMs ?? 1_000
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)))
  }

  /** The revision the key had when the store was read (recovery), so the first write names it. */
  known(key: string, revision: number): void {
    this.revisions.set(key, revision)
  }

  /**
   * Stops remembering the key's revision (a finished job's records that left memory): a later
   * remove reads it first, a later put learns it from the conflict.
   */
  forget(key: string): void {
    this.revisions.delete(key)
  }

  /** How many keys have a known revision (recovery compares it with the records it read). */
  get knownCount(): number {
    return this.revisions.size
  }

  /** Writes in flight or waiting, by key (for tests and shutdown). */
  get pending(): number {
    return this.keys.size
  }

  /**
   * Makes `rec` durable under `key`. Resolves once a write of this record as it is at some moment
   * after this call has been stored; rejects only with E_NOT_LEADER (deposed or stopped).
   */
  put(key: string, rec: object): Promise<void> {
    let k = this.keys.get(key)
    if (!k) {
      k = { latest: rec, waiting: [], running: false }
      this.keys.set(key, k)
    }
    k.latest = rec
    const done = new Promise<void>((resolve, reject) => k.waiting.push({ resolve, reject }))
    // drain() settles every waiter itself and never rejects.
    if (!k.running) this.drain(key, k).catch(() => undefined)
    return done
  }

  /**
   * Deletes the key once the writes queued before are done (a put after it writes the key anew).
   * Fenced like a write: a compare-and-set on the revision this writer knows (read first when it
   * knows none), so a key another term rewrote meanwhile is never deleted by a deposed leader.
   * Resolves once deleted (or absent).
   */
  remove(key: string): Promise<void> {
    return this.put(key, REMOVED)
  }

  private async drain(key: string, k: KeyState): Promise<void> {
    k.running = true
    while (k.waiting.length) {
      // Filled by writeOnce with the puts its write answers (those made before it encoded).
      const batch: KeyState['waiting'] = []
      try {
        await this.writeOnce(key, k, batch)
        for (const w of batch) w.resolve()
      } catch (e) {
        for (const w of batch) w.reject(e)
        for (const w of k.waiting.splice(0)) w.reject(e)
      }
    }
    k.running = false
    this.keys.delete(key)
  }

  /**
   * Writes the key's latest record until it is stored, or the fence is revoked; moves the puts it
   * answers into `batch`, at each attempt (a retry writes the record as it is then). Never throws
   * anything else.
   */
  private async writeOnce(key: string, k: KeyState, batch: KeyState['waiting']): Promise<void> {
    let attempt = 0
    let delay = this.minRetryMs
    for (;;) {
      await this.fence.whenValid()
      const term = this.fence.term
      const rev = this.revisions.get(key) ?? 0
      // From here to the encode nothing yields: the record written is the one these puts left.
      const rec = k.latest
      for (const w of k.waiting.splice(0)) batch.push(w)
      try {
        if (rec === REMOVED) {
          // A key whose revision this writer never knew or forgot: read it (and check its term).
          if (!this.revisions.has(key)) await this.resolveConflict(key, term)
          const known = this.revisions.get(key) ?? 0
          // Absent already (as far as this term knows): nothing to delete. Once deleted, the next
          // write creates the key again (JetStream's create accepts a deleted key). The revision
          // is not kept: a bucket's deleted keys would otherwise stay in memory for ever.
          if (known !== 0) await this.kv.remove(key, known)
          this.revisions.delete(key)
          return
        }
        const next = rev === 0 ? await this.kv.create(key, this.encode({ ...rec, term })) : await this.kv.update(key, this.encode({ ...rec, term }), rev)
        this.revisions.set(key, next)
        return
      } catch (e) {
        if (e instanceof ShoalError && e.code === 'E_NOT_LEADER') throw e // the read before a delete found a newer term
        if (e instanceof RevisionConflict) {
          const resolved = await this.resolveConflict(key, term).catch((err: unknown) => err)
          if (resolved === true) continue // the revision is current now: write again at once
          if (resolved instanceof ShoalError && resolved.code === 'E_NOT_LEADER') throw resolved
          e = resolved
        }
        attempt++
        this.opts.events?.retry?.(this.kv.name, key, e, attempt, delay)
        await this.sleep(delay)
        delay = Math.min(this.maxRetryMs, delay * 2)
      }
    }
  }

  /** After a CAS conflict: true when our write may go on over the current revision; throws when deposed. */
  private async resolveConflict(key: string, term: number): Promise<true> {
    const cur = await this.kv.get(key)
    if (!cur) {
      this.revisions.set(key, 0)
      return true
    }
    const theirs = this.termOf(cur.value)
    if (theirs > term) {
      const why = `${this.kv.name}/${key} was written under term ${theirs}`
      this.fence.deposed(why)
      throw notLeader(term, why)
    }
    if (theirs < term) this.opts.events?.fencedWrite?.(this.kv.name, key, theirs)
    this.revisions.set(key, cur.revision)
    return true
  }
}
