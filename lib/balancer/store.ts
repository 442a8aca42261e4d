/**
 * Durable balancer state in JetStream KV: one bucket of job records, one of share records (a share
 * record carries its last durable checkpoint). The balancer writes here before it acts or
 * acknowledges, so a restarted balancer can rebuild everything from these two buckets.
 *
 * Must never decide anything: it only reads and writes records.
 */

import type { NatsConnection } from '@nats-io/transport-node'
import { Kvm, type KV } from '@nats-io/kv'
import { Packr } from 'msgpackr'
import { ShoalError, type WireError } from '../errors.ts'
import type { JobState, ShareState } from '../protocol/messages.ts'
import type { Subjects } from '../protocol/subjects.ts'
import { StateBlobs, type StateRef } from '../checkpoints/state-blobs.ts'

export interface JobRecord {
  jobId: string
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
}

/** Operator state of a host that must outlive a balancer restart. */
export interface HostRecord {
  hostId: string
  draining: boolean
}

export class Store {
  private readonly packr = new Packr({ useRecords: false, mapsAsObjects: true })

  private constructor(
    private readonly jobs: KV,
    private readonly shares: KV,
    private readonly hosts: KV,
    private readonly blobs: StateBlobs,
  ) {}

  static async open(nc: NatsConnection, subjects: Subjects): Promise<Store> {
    try {
      const kvm = new Kvm(nc)
      // Kvm.create mutates its options object: a fresh literal each time.
      const jobs = await kvm.create(subjects.bucket('jobs'), { history: 1 })
      const shares = await kvm.create(subjects.bucket('shares'), { history: 1 })
      const hosts = await kvm.create(subjects.bucket('hosts'), { history: 1 })
      return new Store(jobs, shares, hosts, await StateBlobs.open(nc, subjects))
    } catch (e) {
      throw new ShoalError('E_STORE', `cannot open JetStream KV buckets (is JetStream enabled on nats-server? start it with -js): ${(e as Error).message}`, { cause: e })
    }
  }

  async putJob(rec: JobRecord): Promise<void> {
    await this.put(this.jobs, rec.jobId, rec)
  }

  async putShare(rec: ShareRecord): Promise<void> {
    await this.put(this.shares, rec.shareId, rec)
  }

  /** Deletes a checkpoint state object (best effort). */
  async deleteState(name: string): Promise<void> {
    await this.blobs.delete(name)
  }

  async putHost(rec: HostRecord): Promise<void> {
    await this.put(this.hosts, rec.hostId, rec)
  }

  async loadAll(): Promise<{ jobs: JobRecord[]; shares: ShareRecord[]; hosts: HostRecord[] }> {
    return {
      jobs: await this.load<JobRecord>(this.jobs),
      shares: await this.load<ShareRecord>(this.shares),
      hosts: await this.load<HostRecord>(this.hosts),
    }
  }

  private async put(kv: KV, key: string, rec: object): Promise<void> {
    try {
      await kv.put(key, this.packr.pack(rec))
    } catch (e) {
      throw new ShoalError('E_STORE', `cannot store ${key}: ${(e as Error).message}`, { cause: e })
    }
  }

  private async load<T>(kv: KV): Promise<T[]> {
    const out: T[] = []
    const keys: string[] = []
    for await (const k of await kv.keys()) keys.push(k)
    for (const k of keys) {
      const e = await kv.get(k)
      if (e && e.operation === 'PUT' && e.value.length) out.push(this.packr.unpack(e.value) as T)
    }
    return out
  }
}
