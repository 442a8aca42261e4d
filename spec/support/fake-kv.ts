/**
 * An in-memory KV bucket with JetStream's compare-and-set rules, for the pure specs of the record
 * writer and the lease: a revision per key from one sequence, `create` only when absent, `update`
 * only at the named revision. Faults are injected per call: fail (the write does not happen), or
 * lose the answer (the write happens, the caller gets an error).
 *
 * Must never be used where the real thing is the point: e2e specs run real nats-server.
 */

import { RevisionConflict, type KvBucket } from '../../lib/balancer/record-writer.ts'

type Fault = 'fail' | 'lose-answer'

export class FakeKv implements KvBucket {
  readonly entries = new Map<string, { revision: number; value: Uint8Array }>()
  private seq = 0
  /** Faults for the next write calls, in order. */
  readonly faults: Fault[] = []
  /** Get calls fail while this is set. */
  getsFail = false
  /**
   * Added to the revision every other get answers with, while set: two replicas that number the
   * same message differently (nats-server 2.9.10 after a node restart), read in turn.
   */
  divergedBy = 0
  private gets = 0
  /** Every write fails while this is set (the store is away). */
  writesFail = false
  writes = 0

  constructor(readonly name = 'fake') {}

  async create(key: string, value: Uint8Array): Promise<number> {
    return this.write(key, value, 0)
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    return this.write(key, value, revision)
  }

  async get(key: string): Promise<{ revision: number; value: Uint8Array } | null> {
    await Promise.resolve()
    if (this.getsFail) throw new Error('jetstream is not enabled')
    const e = this.entries.get(key)
    if (!e || !this.divergedBy || this.gets++ % 2 === 0) return e ?? null
    return { revision: e.revision + this.divergedBy, value: e.value }
  }

  async remove(key: string, revision: number): Promise<void> {
    await Promise.resolve()
    this.writes++
    const fault = this.writesFail ? 'fail' : this.faults.shift()
    if (fault === 'fail') throw new Error('TimeoutError: timeout')
    if ((this.entries.get(key)?.revision ?? 0) !== revision) throw new RevisionConflict(key)
    this.entries.delete(key)
    this.seq++
    if (fault === 'lose-answer') throw new Error('TimeoutError: timeout (the delete went through)')
  }

  /** Writes behind the writer's back (another balancer, a deposed one). */
  putRaw(key: string, value: Uint8Array): number {
    const revision = ++this.seq
    this.entries.set(key, { revision, value })
    return revision
  }

  private async write(key: string, value: Uint8Array, expected: number): Promise<number> {
    await Promise.resolve()
    this.writes++
    const fault = this.writesFail ? 'fail' : this.faults.shift()
    if (fault === 'fail') throw new Error('TimeoutError: timeout')
    const cur = this.entries.get(key)
    if ((cur?.revision ?? 0) !== expected) throw new RevisionConflict(key)
    const revision = this.putRaw(key, value)
    if (fault === 'lose-answer') throw new Error('TimeoutError: timeout (the write went through)')
    return revision
  }
}
