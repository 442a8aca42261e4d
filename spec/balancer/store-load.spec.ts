/**
 * Recovery's read of the store against a real nats-server: every record in bulk through one
 * consumer, with the revisions the writers then compare-and-set against; deleted records left out;
 * and, when the bulk read fails (a consumer on a node that is down, on nats-server 2.9.10), the
 * same records key by key, once each even when the bulk read failed halfway.
 */

import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { openFence } from '../../lib/balancer/fence.ts'
import { openBuckets, type Buckets } from '../../lib/balancer/buckets.ts'
import { Store, type JobRecord, type ShareRecord } from '../../lib/balancer/store.ts'
import { CheckpointJournal } from '../../lib/balancer/checkpoint-journal.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { useNatsServer } from '../support/nats.ts'

const job = (jobId: string): JobRecord => ({ jobId, processor: 'p', input: null, from: 0, to: 10, state: 'completed', submittedAt: 1, finishedAt: 2, nextShare: 1 })
const share = (jobId: string): ShareRecord => ({ shareId: `${jobId}-s0`, jobId, from: 0, to: 10, position: 10, status: 'done', epoch: 1, host: 'h1', hosts: ['h1'], unitsDone: 10, attempts: 0, failedOn: [], updatedAt: 2, result: 4 })

describe('store: loading every record at recovery', function () {
  this.timeout(60_000)
  const nats = useNatsServer()
  let nc: NatsConnection
  let buckets: Buckets
  let n = 0

  beforeEach(async () => {
    nc = await connect({ servers: nats.url })
    buckets = await openBuckets(nc, new Subjects(`load${++n}`), { leaseMs: 1000 })
  })
  afterEach(async () => nc?.close())

  async function writeSome(count: number): Promise<Store> {
    const store = new Store(buckets, openFence(1))
    await Promise.all(Array.from({ length: count }, (_, i) => Promise.all([store.putJob(job(`j${i}`)), store.putShare(share(`j${i}`))])))
    // Two forgotten: their records are deleted and must not come back.
    await store.removeJob('j0', ['j0-s0'])
    await store.removeJob('j1', ['j1-s0'])
    return store
  }

  it('reads 2,000 records in bulk, leaves deleted ones out, and a new term writes over them by compare-and-set', async () => {
    await writeSome(1000)
    const failed: string[] = []
    // A get after the load would be a conflict being resolved: the revision the load gave was wrong.
    let gets = 0
    const counted: Buckets = { ...buckets, jobs: { ...buckets.jobs, get: (k) => (gets++, buckets.jobs.get(k)) } }
    const next = new Store(counted, openFence(2))
    next.onBulkFailed = (b) => failed.push(b)
    const t0 = performance.now()
    const { jobs, shares } = await next.loadAll()
    const ms = performance.now() - t0
    expect(failed, 'the bulk read failed').to.deep.equal([])
    expect(jobs.map((j) => j.jobId).sort()).to.deep.equal(Array.from({ length: 998 }, (_, i) => `j${i + 2}`).sort())
    expect(shares).to.have.length(998)
    expect(shares.find((s) => s.shareId === 'j5-s0')).to.include({ result: 4, status: 'done' })
    // The revisions came with the records: the next term's first writes are no conflicts.
    await Promise.all(jobs.slice(0, 20).map((j) => next.putJob({ ...j, reason: 'rewritten' })))
    expect(gets).to.equal(0)
    console.log(`      (${jobs.length + shares.length} records in ${ms.toFixed(0)} ms)`)
  })

  it('falls back to reading key by key when the bulk read fails, with the same records', async () => {
    await writeSome(50)
    const failing: Buckets = { ...buckets, jobs: { ...buckets.jobs, entries: () => Promise.reject(new Error('consumer stalled')) } }
    const failed: string[] = []
    const next = new Store(failing, openFence(2))
    next.onBulkFailed = (b) => failed.push(b)
    const { jobs, shares } = await next.loadAll()
    expect(failed).to.deep.equal([buckets.jobs.name])
    expect(jobs).to.have.length(48)
    expect(shares).to.have.length(48)
    await next.putJob({ ...jobs[0]!, reason: 'rewritten' })
  })

  it('drops what a bulk read gave before it failed, and reads every record once key by key', async () => {
    await writeSome(50)
    // A consumer that delivers a few records, then stalls: those records must not come twice.
    const halfway: Buckets = {
      ...buckets,
      shares: {
        ...buckets.shares,
        entries: async (stallMs, each) => {
          let n = 0
          await buckets.shares.entries(stallMs, (k, rev, v) => {
            if (n++ < 10) each(k, rev, v)
          })
          throw new Error('consumer stalled after 10 records')
        },
      },
    }
    const failed: string[] = []
    const next = new Store(halfway, openFence(2))
    next.onBulkFailed = (b) => failed.push(b)
    const { shares } = await next.loadAll()
    expect(failed).to.deep.equal([buckets.shares.name])
    expect(shares.map((s) => s.shareId).sort()).to.deep.equal(Array.from({ length: 48 }, (_, i) => `j${i + 2}-s0`).sort())
    await next.putShare({ ...shares[0]!, result: 5 })
  })

  it('keeps one record per key when a key comes twice in one read (written while the read ran): the later', async () => {
    await writeSome(5)
    const older = new Store(buckets, openFence(1))
    const twice: Buckets = {
      ...buckets,
      shares: {
        ...buckets.shares,
        // The stream order a write during the read gives: the old value, the others, the new one.
        entries: async (stallMs, each) => {
          let first: [string, number, Uint8Array] | undefined
          const n = await buckets.shares.entries(stallMs, (k, rev, v) => {
            if (k === 'j3-s0') first = [k, rev, v.slice()]
            each(k, rev, v)
          })
          const [k, rev] = first!
          await older.putShare({ ...share('j3'), result: 99 })
          const e = await buckets.shares.get(k)
          each(k, e!.revision, e!.value)
          expect(e!.revision).to.be.greaterThan(rev)
          return n + 1
        },
      },
    }
    const { shares } = await new Store(twice, openFence(2)).loadAll()
    expect(shares.filter((x) => x.shareId === 'j3-s0').map((x) => x.result)).to.deep.equal([99])
    expect(shares).to.have.length(3)
  })

  it('reads back the checkpoint journal: a later checkpoint than the share record, taken again by the next term', async () => {
    const codec = new Codec(1024 * 1024)
    const limits = { maxRecordBytes: 512 * 1024, maxEntryBytes: 16 * 1024 }
    const store = new Store(buckets, openFence(1))
    const running: ShareRecord = { ...share('j9'), status: 'running', position: 0, epoch: 2, unitsDone: 0 }
    await store.putShare(running)
    const journal = new CheckpointJournal(store.journal, (x) => codec.sizeOf(x), limits)
    const e = { shareId: running.shareId, epoch: 2, position: 7, unitsDone: 7, state: { sum: 28 }, stateBytes: 5 }
    await journal.record('h1', e, journal.fits('h1', e).ok ? codec.sizeOf(e) : 0)
    const next = new Store(buckets, openFence(2))
    const loaded = await next.loadAll()
    expect(loaded.journal).to.have.length(1)
    const again = new CheckpointJournal(next.journal, (x) => codec.sizeOf(x), limits)
    const taken = again.recover(loaded.journal, (id) => loaded.shares.find((s) => s.shareId === id))
    expect(taken).to.deep.equal([e])
    // The next term covers it with a share record write: the host's journal record is deleted.
    await next.putShare({ ...running, position: 7 })
    await again.covered(running.shareId, { status: 'running', host: 'h1', epoch: 2, position: 7 })
    expect((await new Store(buckets, openFence(3)).loadAll()).journal).to.deep.equal([])
  })
})
