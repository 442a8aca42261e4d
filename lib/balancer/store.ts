/**
 * Durable balancer state in JetStream KV: job records, share records (a share record carries a
 * durable checkpoint), journal records (per host, its shares' later checkpoints:
 * checkpoint-journal.ts) and host records (drain state). The leader writes here before it acts or
 * acknowledges, so a restarted balancer or a standby taking over rebuilds everything from these
 * buckets. Every record carries the term of the leader that wrote it; the writers (one per bucket,
 * record-writer.ts) retry until a write is durable and refuse to write once another term leads.
 *
 * One Store per leadership term: its writers know the revisions read at that term's recovery.
 *
 * Must never decide anything: it only reads and writes records.
 */

import { Packr } from 'msgpackr'
import { ShoalError, type WireError } from '../errors.ts'
import type { JobState, ShareState } from '../protocol/messages.ts'
import type { StateRef } from '../checkpoints/state-blobs.ts'
import type { Bucket, Buckets } from './buckets.ts'
import type { Fence } from './fence.ts'
import { RecordWriter, type WriterOptions } from './record-writer.ts'
import type { JournalRecord, JournalWriter } from './checkpoint-journal.ts'

export interface JobRecord {
  jobId: string
  /** Identity that submitted the job (`submitter-alice`, `operator`); unset on records from before identities. */
  owner?: string | undefined
  processor: string
  input: unknown
  from: number
  to: number
  requiredTags?: Record<string, string> | undefined
  memoryBytesPerShare?: number | undefined
  /** Spread the shares over the eligible hosts (a constraint the policy keeps). */
  spread?: boolean | undefined
  state: JobState
  submittedAt: number
  finishedAt?: number | undefined
  reason?: string | undefined
  result?: unknown
  error?: WireError | undefined
  /** Next share number: splits add shares. */
  nextShare: number
  /**
   * Shares the range was cut into at admission (`splitRange(from, to, initialShares)` gives them
   * again). A share gets its own record when it is first assigned: until then recovery makes it
   * again from this, so admission costs one write, not one per share (issue 12). Absent on records
   * from before: every share of those has a record.
   */
  initialShares?: number | undefined
  /** Term of the leader that wrote the record (set by the store on every write). */
  term?: number | undefined
}

export interface ShareRecord {
  shareId: string
  jobId: string
  from: number
  /** Exclusive end; shrinks when the share is split. */
  to: number
  /** Durable position: every unit in [from, position) is in `state`. */
  position: number
  /** Processor state at `position`; undefined until the first checkpoint, or when in `stateRef`. */
  state?: unknown
  /** The state's Object Store object, for states too large to keep inline. */
  stateRef?: StateRef | undefined
  /** Encoded size of the last checkpoint's state: what a migration of this share carries. */
  stateBytes?: number | undefined
  status: ShareState
  epoch: number
  host: string | null
  hosts: string[]
  /** Units processed for this share over all its runs (including units redone after a loss). */
  unitsDone: number
  result?: unknown
  error?: WireError | undefined
  /** Times the processor failed on this share; retried from the checkpoint up to shares.maxAttempts. */
  attempts: number
  /** Hosts where the processor failed on this share: a retry goes elsewhere when it can. */
  failedOn: string[]
  updatedAt: number
  /** Term of the leader that wrote the record (set by the store on every write). */
  term?: number | undefined
}

/** Operator state of a host that must outlive a balancer restart. */
export interface HostRecord {
  hostId: string
  draining: boolean
  term?: number | undefined
}

/** Gets in flight at once while loading a bucket key by key (one at a time took 11 s for 50,000 records). */
const LOAD_CONCURRENCY = 64
/** A bulk read that delivers nothing for this long is given up for gets. */
const BULK_STALL_MS = 2_000

export class Store {
  private readonly packr = new Packr({ useRecords: false, mapsAsObjects: true })
  private readonly jobs: RecordWriter
  private readonly shares: RecordWriter
  private readonly hosts: RecordWriter
  private readonly journalWriter: RecordWriter

  /** A bulk read gave up and the bucket is read key by key instead (for the log). */
  onBulkFailed?: (bucket: string, err: unknown) => void

  constructor(
    private readonly b: Buckets,
    private readonly fence: Fence,
    writerOptions: WriterOptions = {},
  ) {
    const encode = (rec: object) => this.packr.pack(rec)
    const termOf = (v: Uint8Array) => {
      const rec = this.packr.unpack(v) as { term?: unknown } | null
      return typeof rec?.term === 'number' ? rec.term : 0
    }
    this.jobs = new RecordWriter(b.jobs, fence, encode, termOf, writerOptions)
    this.shares = new RecordWriter(b.shares, fence, encode, termOf, writerOptions)
    this.hosts = new RecordWriter(b.hosts, fence, encode, termOf, writerOptions)
    this.journalWriter = new RecordWriter(b.journal, fence, encode, termOf, writerOptions)
  }

  /** The journal's writes: one record per host (checkpoint-journal.ts), fenced like the others. */
  get journal(): JournalWriter {
    return {
      put: (hostId: string, rec: JournalRecord) => this.journalWriter.put(hostId, rec),
      remove: (hostId: string) => this.journalWriter.remove(hostId),
    }
  }

  /** Resolves once the record (as it is then or later) is durable; rejects only with E_NOT_LEADER. */
  putJob(rec: JobRecord): Promise<void> {
    return this.jobs.put(rec.jobId, rec)
  }

  putShare(rec: ShareRecord): Promise<void> {
    return this.shares.put(rec.shareId, rec)
  }

  putHost(rec: HostRecord): Promise<void> {
    return this.hosts.put(rec.hostId, rec)
  }

  /**
   * Deletes a forgotten job's record and its shares' records (each by compare-and-set, after any
   * write of it still queued). The shares go first: a crash in between leaves a finished job with
   * fewer shares, which the next leader forgets in turn, never shares without their job.
   * Resolves once all are gone; rejects only with E_NOT_LEADER.
   */
  async removeJob(jobId: string, shareIds: readonly string[]): Promise<void> {
    await Promise.all(shareIds.map((id) => this.shares.remove(id)))
    await this.jobs.remove(jobId)
  }

  /**
   * A finished job's records leave memory but stay in the store (archive.ts): their revisions are
   * no longer kept, and `removeJob` reads each one before deleting it.
   */
  forgetRevisions(jobIds: readonly string[], shareIds: readonly string[]): void {
    for (const id of jobIds) this.jobs.forget(id)
    for (const id of shareIds) this.shares.forget(id)
  }

  /** A job's record as stored now, or undefined. Rejects with E_STORE when the store cannot answer. */
  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const [rec] = await this.getEach<JobRecord>(this.b.jobs, [jobId])
    return rec
  }

  /** The share records of these ids that exist, LOAD_CONCURRENCY reads at a time. Rejects with E_STORE. */
  getShares(ids: readonly string[]): Promise<ShareRecord[]> {
    return this.getEach<ShareRecord>(this.b.shares, ids)
  }

  private async getEach<T>(bucket: Bucket, keys: readonly string[], seen?: (key: string, revision: number) => void): Promise<T[]> {
    const out: T[] = []
    try {
      await eachLimited(keys, LOAD_CONCURRENCY, async (k) => {
        const e = await bucket.get(k)
        if (!e) return
        seen?.(k, e.revision)
        out.push(this.packr.unpack(e.value) as T)
      })
    } catch (e) {
      throw new ShoalError('E_STORE', `cannot read ${bucket.name}: ${(e as Error).message}`, { cause: e })
    }
    return out
  }

  /** The object store of large checkpoint states, as bytes (hosts reach it through the balancer). */
  blobStore(): { putBytes(name: string, data: Uint8Array): Promise<void>; getBytes(name: string): Promise<Uint8Array> } {
    return this.b.blobs
  }

  /** Deletes a checkpoint state object. Best effort: never rejects (a leftover only wastes space). */
  async deleteState(name: string): Promise<void> {
    await this.b.blobs.delete(name)
  }

  /**
   * Reads every record, remembering each key's revision for the writers. Retried while the store
   * is away; rejects with E_NOT_LEADER if this term ends meanwhile.
   */
  async loadAll(onRetry?: (err: unknown) => void): Promise<{ jobs: JobRecord[]; shares: ShareRecord[]; hosts: HostRecord[]; journal: JournalRecord[] }> {
    let delay = 100
    for (;;) {
      await this.fence.whenValid()
      try {
        // The four buckets at once: the small ones are read while the server prepares the large
        // one. Each falls back to gets on its own when its bulk read fails (a node down).
        const [jobs, shares, hosts, journal] = await settleAll([
          this.load<JobRecord>(this.b.jobs, this.jobs, 'jobId'),
          this.load<ShareRecord>(this.b.shares, this.shares, 'shareId'),
          this.load<HostRecord>(this.b.hosts, this.hosts, 'hostId'),
          this.load<JournalRecord>(this.b.journal, this.journalWriter, 'hostId'),
        ] as const)
        return { jobs, shares, hosts, journal }
      } catch (e) {
        onRetry?.(e)
        await new Promise((r) => setTimeout(r, delay))
        delay = Math.min(1_000, delay * 2)
      }
    }
  }

  /**
   * One bucket's records: in bulk through a consumer, or — when that stalls (a consumer placed on
   * a node that is down) — key by key, LOAD_CONCURRENCY gets at a time. `idField` names the
   * record's own key (the writers store each record under it).
   */
  private async load<T>(bucket: Bucket, writer: RecordWriter, idField: keyof T & string): Promise<T[]> {
    // Decoded as each record arrives: the raw messages die young, only the records stay.
    const bulk: T[] = []
    // A key written while the read runs (a deposed leader's late write) comes again, later in the
    // stream. The writer's count of known keys says whether that happened, so the common read
    // pays nothing for it; then the later value of each key is kept.
    const knownBefore = writer.knownCount
    try {
      await bucket.entries(BULK_STALL_MS, (key, revision, value) => {
        const rec = this.packr.unpack(value) as T
        // The writer remembers the revision under the record's own id string when it is the key
        // (it always is for records this code wrote): the key cut from the message's subject
        // would keep the whole subject alive, and 100,000 of those are collector work.
        const id = (rec as Record<string, unknown> | null)?.[idField]
        writer.known(id === key ? id : key, revision)
        bulk.push(rec)
      })
      return writer.knownCount - knownBefore === bulk.length ? bulk : lastOfEachKey(bulk, idField)
    } catch (e) {
      // The records read so far are dropped: the gets below read every key again (and set its
      // revision anew).
      this.onBulkFailed?.(bucket.name, e)
    }
    let keys: string[]
    try {
      keys = await bucket.list()
    } catch (e) {
      throw new ShoalError('E_STORE', `cannot list ${bucket.name}: ${(e as Error).message}`, { cause: e })
    }
    return this.getEach<T>(bucket, keys, (k, revision) => writer.known(k, revision))
  }
}

/** Runs `each` over the keys with at most `limit` at once; rejects with the first failure. */
async function eachLimited(keys: readonly string[], limit: number, each: (key: string) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < keys.length) await each(keys[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, keys.length) }, worker))
}

/**
 * Like Promise.all, but settles only once every promise has: a failed load must not go on reading
 * in the background while the next attempt starts. Rejects with the first failure.
 */
/** The records with the last one of each id, in the order of those last ones (stream order). */
function lastOfEachKey<T>(records: readonly T[], idField: keyof T & string): T[] {
  const seen = new Set<unknown>()
  const out: T[] = []
  for (let i = records.length - 1; i >= 0; i--) {
    const id = (records[i] as Record<string, unknown> | null)?.[idField]
    if (seen.has(id)) continue
    seen.add(id)
    out.push(records[i]!)
  }
  return out.reverse()
}

async function settleAll<T extends readonly unknown[]>(ps: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const r = await Promise.allSettled(ps)
  const failed = r.find((x) => x.status === 'rejected')
  if (failed) throw failed.reason
  return r.map((x) => (x as PromiseFulfilledResult<unknown>).value) as unknown as T
}
