/**
 * The checkpoint journal (issue 12, point 4): the durable checkpoints of the shares running on one
 * host, kept in one record per host instead of one share record write per checkpoint. A host's
 * batch of checkpoints then costs one store write, so the store's write rate grows with hosts, not
 * with shares (JetStream KV here does ≈ 21,000 writes/s; 1,000,000 shares checkpointing every
 * second would need as many).
 *
 * The rule that keeps it honest: a share record is the truth about a share's place (status, host,
 * epoch); an entry only ever adds a later checkpoint of the run that record describes. Recovery
 * takes an entry when, and only when, its share's record says the share runs on that host under
 * that epoch and the entry is further along (`newerThan`). So an entry left behind by a crash, or
 * made stale by a move, is ignored, never wrong; and an entry is forgotten only once a share record
 * that makes it stale is durable (`covered`), so no acknowledged checkpoint is ever lost.
 *
 * An entry must be small: a state too large to share one record with its host's others goes to
 * its share record as before (`fits` says which way a checkpoint goes).
 *
 * Must never import NATS: it writes through the narrow writer the store gives it.
 */

import type { StateRef } from '../checkpoints/state-blobs.ts'

/** One share's latest durable checkpoint, as the journal keeps it. */
export interface JournalEntry {
  shareId: string
  epoch: number
  position: number
  unitsDone: number
  state?: unknown
  stateRef?: StateRef | undefined
  stateBytes?: number | undefined
}

/** A host's journal record in the store. */
export interface JournalRecord {
  hostId: string
  entries: JournalEntry[]
  term?: number | undefined
}

/** What a durable share record says about a share's run (enough to tell whether an entry is stale). */
export interface DurableRun {
  status: string
  host: string | null
  epoch: number
  position: number
}

/** The writes the journal needs: put or delete one host's record, durably (record-writer.ts). */
export interface JournalWriter {
  put(hostId: string, rec: JournalRecord): Promise<void>
  remove(hostId: string): Promise<void>
}

export interface JournalLimits {
  /** Largest encoded record of one host (bytes): well under the store's largest value. */
  maxRecordBytes: number
  /** Largest entry (bytes): a host's record holds many. */
  maxEntryBytes: number
}

/** Whether `entry` of a run on `hostId` says more than the durable record `run` of its share. */
export function newerThan(entry: JournalEntry, hostId: string, run: DurableRun): boolean {
  return run.status === 'running' && run.host === hostId && run.epoch === entry.epoch && entry.position > run.position
}

export class CheckpointJournal {
  /** Entries by host, then share, with their encoded sizes. */
  private readonly hosts = new Map<string, Map<string, { entry: JournalEntry; bytes: number }>>()
  private readonly bytes = new Map<string, number>()
  /** Host by share, for `covered` (which learns of a share only by its id). */
  private readonly hostOf = new Map<string, string>()

  constructor(
    private readonly writer: JournalWriter,
    private readonly sizeOf: (x: unknown) => number,
    private readonly limits: JournalLimits,
  ) {}

  /** Entries held, over all hosts (for tests and metrics). */
  get size(): number {
    return this.hostOf.size
  }

  /** The entry held for a share, if any. */
  entry(shareId: string): JournalEntry | undefined {
    const h = this.hostOf.get(shareId)
    return h === undefined ? undefined : this.hosts.get(h)?.get(shareId)?.entry
  }

  /**
   * Whether `entry` may go in `hostId`'s record: small enough, and the record with it (replacing
   * the share's older entry) still under the limit. When not, the checkpoint goes to the share
   * record, and the share's older entry stays until that write makes it stale (`covered`).
   */
  fits(hostId: string, entry: JournalEntry): { ok: true; bytes: number } | { ok: false } {
    const bytes = this.sizeOf(entry)
    if (bytes > this.limits.maxEntryBytes) return { ok: false }
    const old = this.hosts.get(hostId)?.get(entry.shareId)?.bytes ?? 0
    const total = (this.bytes.get(hostId) ?? 0) - old + bytes
    return total + 64 <= this.limits.maxRecordBytes ? { ok: true, bytes } : { ok: false }
  }

  /**
   * Keeps `entry` as the share's latest checkpoint on `hostId` and writes the host's record.
   * Resolves once a record holding it (or a later one) is durable; rejects only as the writer does
   * (E_NOT_LEADER). The caller checked `fits`.
   */
  record(hostId: string, entry: JournalEntry, bytes: number): Promise<void> {
    const prevHost = this.hostOf.get(entry.shareId)
    // A share that moved: its old host's entry is stale by its new epoch, and goes with the next
    // write of that record (recovery would ignore it meanwhile).
    if (prevHost !== undefined && prevHost !== hostId) {
      this.drop(prevHost, entry.shareId)
      // Safe to delete: the share record of the run reported here (its new host and epoch) was
      // durable before that host was told to run it. A failure leaves a record recovery ignores.
      if (!this.hosts.has(prevHost)) this.writer.remove(prevHost).catch(() => undefined)
    }
    let m = this.hosts.get(hostId)
    if (!m) {
      m = new Map()
      this.hosts.set(hostId, m)
    }
    const old = m.get(entry.shareId)?.bytes ?? 0
    m.set(entry.shareId, { entry, bytes })
    this.bytes.set(hostId, (this.bytes.get(hostId) ?? 0) - old + bytes)
    this.hostOf.set(entry.shareId, hostId)
    return this.write(hostId)
  }

  /**
   * A share record is durable as `run`: the share's entry is forgotten if that record makes it
   * stale. A host left with no entries has its record deleted (in the background: a record left
   * over is ignored by recovery, and the next write replaces it). Returns the write it started, if any.
   */
  covered(shareId: string, run: DurableRun): Promise<void> | undefined {
    const hostId = this.hostOf.get(shareId)
    if (hostId === undefined) return undefined
    const held = this.hosts.get(hostId)?.get(shareId)
    if (!held || newerThan(held.entry, hostId, run)) return undefined
    this.drop(hostId, shareId)
    return this.hosts.has(hostId) ? undefined : this.writer.remove(hostId)
  }

  /**
   * At recovery: the entries of the journal records read back that say more than their share's
   * record (`runOf` gives it, or undefined when the share is unknown). Those are held again, so
   * they stay in their host's record until a share record covers them; the others are dropped at
   * the next write of their host's record.
   */
  recover(records: readonly JournalRecord[], runOf: (shareId: string) => DurableRun | undefined): JournalEntry[] {
    const adopted: JournalEntry[] = []
    for (const rec of records) {
      for (const e of rec.entries ?? []) {
        const run = runOf(e.shareId)
        if (!run || !newerThan(e, rec.hostId, run)) continue
        const bytes = this.sizeOf(e)
        let m = this.hosts.get(rec.hostId)
        if (!m) {
          m = new Map()
          this.hosts.set(rec.hostId, m)
        }
        m.set(e.shareId, { entry: e, bytes })
        this.bytes.set(rec.hostId, (this.bytes.get(rec.hostId) ?? 0) + bytes)
        this.hostOf.set(e.shareId, rec.hostId)
        adopted.push(e)
      }
    }
    return adopted
  }

  private drop(hostId: string, shareId: string): void {
    const m = this.hosts.get(hostId)
    const held = m?.get(shareId)
    if (!m || !held) return
    m.delete(shareId)
    this.hostOf.delete(shareId)
    const left = (this.bytes.get(hostId) ?? 0) - held.bytes
    if (m.size) this.bytes.set(hostId, left)
    else {
      this.hosts.delete(hostId)
      this.bytes.delete(hostId)
    }
  }

  private write(hostId: string): Promise<void> {
    const m = this.hosts.get(hostId)
    if (!m?.size) return this.writer.remove(hostId)
    return this.writer.put(hostId, { hostId, entries: [...m.values()].map((x) => x.entry) })
  }
}
