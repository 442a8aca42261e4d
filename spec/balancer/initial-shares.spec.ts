/**
 * Recovery of shares that never had a record of their own: admission writes only the job record
 * (with `initialShares`), and a share's record is first written when it is assigned. A real
 * Balancer (in this process, on a real nats-server) recovers from records written here: the
 * shares never assigned come back pending at their admission ranges, the ones with records as
 * their records say, and a finished job gets none made up.
 */

import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { Balancer } from '../../lib/balancer/balancer.ts'
import { openBuckets } from '../../lib/balancer/buckets.ts'
import { openFence } from '../../lib/balancer/fence.ts'
import { Store, type JobRecord, type ShareRecord } from '../../lib/balancer/store.ts'
import { loadConfig } from '../../lib/config/mod.ts'
import { silentLogger } from '../../lib/log.ts'
import { BalancerMetrics } from '../../lib/metrics/balancer-metrics.ts'
import { Bus } from '../../lib/protocol/bus.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import { apiReplySchema, type JobSummary } from '../../lib/protocol/messages.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { allRead } from '../../lib/balancer/recovery.ts'
import { useNatsServer } from '../support/nats.ts'

describe('recovery of shares that were never assigned', function () {
  this.timeout(30_000)
  const nats = useNatsServer()
  let nc: NatsConnection
  let balancer: Balancer | undefined

  afterEach(async () => {
    await balancer?.stop()
    await nc.close()
  })

  const job = (jobId: string, over: Partial<JobRecord>): JobRecord => ({ jobId, owner: 'operator', processor: 'count-primes', input: null, from: 0, to: 100, state: 'running', submittedAt: 1, nextShare: 4, initialShares: 4, ...over })
  const share = (jobId: string, i: number, over: Partial<ShareRecord>): ShareRecord => ({ shareId: `${jobId}-s${i}`, jobId, from: i * 25, to: i * 25 + 25, position: i * 25, status: 'running', epoch: 1, host: 'h9', hosts: ['h9'], unitsDone: 0, attempts: 0, failedOn: [], updatedAt: 2, ...over })

  it('makes the open jobs\' unassigned shares again at their admission ranges, and nothing for a finished job', async () => {
    const cluster = 'rec1'
    const config = loadConfig({ env: {}, overrides: { cluster, nats: { url: nats.url } } as never })
    nc = await connect({ servers: nats.url })
    const subjects = new Subjects(cluster)
    const buckets = await openBuckets(nc, subjects, { leaseMs: config.balancer.leaseMs })
    const before = new Store(buckets, openFence(1))
    // j1: s1 was assigned (and split: its tail s4 has a record too); s0, s2, s3 never were.
    // j2: finished; its records were being deleted (s1's is gone already).
    await Promise.all([
      before.putJob(job('j1', { nextShare: 5 })),
      before.putShare(share('j1', 1, { to: 40, position: 30 })),
      before.putShare(share('j1', 4, { from: 40, to: 50, position: 40, status: 'pending', epoch: 0, host: null, hosts: [] })),
      before.putJob(job('j2', { state: 'completed', initialShares: 2, nextShare: 2, to: 50, finishedAt: 3 })),
      before.putShare(share('j2', 0, { status: 'done', position: 25 })),
    ])
    const metrics = new BalancerMetrics(() => ({ hostsByState: {}, hosts: [], sharesByState: {}, jobsByState: {}, jobProgress: [], settings: {} }))
    // Splits off, so the recovered shares stay as recovered while the spec reads them.
    balancer = await Balancer.start({ config: { ...config, balancer: { ...config.balancer, splitMinUnits: 1e12 } }, logger: silentLogger(), nc, buckets, fence: openFence(2), metrics, hearing: () => true, lastHeard: () => Date.now(), leadership: () => ({ leader: { id: 'b', pid: 1, term: 2, since: 0 }, standbys: [] }) })
    const op = new Bus(nc, new Codec(config.protocol.maxMessageBytes), { inbox: subjects.inbox('operator') })
    const get = async (jobId: string): Promise<JobSummary> => {
      const r = await op.request(subjects.api('job', 'operator'), { v: 1, t: 'job', jobId, withShares: true }, apiReplySchema, 5_000)
      if (r.t !== 'job') throw new Error(`unexpected reply ${r.t}`)
      return r.job
    }
    const j1 = await get('j1')
    expect(j1.shares!.map((s) => `${s.shareId} ${s.state} ${s.host ?? '-'} [${s.from}, ${s.to})`).sort()).to.deep.equal([
      'j1-s0 pending - [0, 25)',
      'j1-s1 running h9 [25, 40)',
      'j1-s2 pending - [50, 75)',
      'j1-s3 pending - [75, 100)',
      'j1-s4 pending - [40, 50)',
    ])
    const j2 = await get('j2')
    expect(j2.shares!.map((s) => s.shareId)).to.deep.equal(['j2-s0'])
  })

  it('writes every share\'s record while a balancer that does not read initialShares is heard, and writes them out when one appears', async () => {
    const cluster = 'rec2'
    const config = loadConfig({ env: {}, overrides: { cluster, nats: { url: nats.url } } as never })
    nc = await connect({ servers: nats.url })
    const subjects = new Subjects(cluster)
    const buckets = await openBuckets(nc, subjects, { leaseMs: config.balancer.leaseMs })
    const metrics = new BalancerMetrics(() => ({ hostsByState: {}, hosts: [], sharesByState: {}, jobsByState: {}, jobProgress: [], settings: {} }))
    let lazy = false
    balancer = await Balancer.start({ config, logger: silentLogger(), nc, buckets, fence: openFence(1), metrics, hearing: () => true, lastHeard: () => Date.now(), leadership: () => ({ leader: { id: 'b', pid: 1, term: 1, since: 0 }, standbys: [] }), lazyShares: () => lazy })
    const op = new Bus(nc, new Codec(config.protocol.maxMessageBytes), { inbox: subjects.inbox('operator') })
    const submit = (jobId: string) => op.request(subjects.api('submit', 'operator'), { v: 1, t: 'submit', jobId, processor: 'count-primes', input: null, from: 0, to: 100, shares: 4 }, apiReplySchema, 5_000)
    const stored = async () => {
      const { jobs, shares } = await new Store(buckets, openFence(9)).loadAll()
      return { jobs: new Map(jobs.map((j) => [j.jobId, j])), shares: new Set(shares.map((x) => x.shareId)) }
    }
    const four = (jobId: string) => [0, 1, 2, 3].map((i) => `${jobId}-s${i}`)

    // An older balancer is heard: every share has its record at admission.
    await submit('eager')
    let st = await stored()
    expect(four('eager').every((id) => st.shares.has(id))).to.equal(true)
    expect(st.jobs.get('eager')!.initialShares).to.equal(undefined)

    // Every balancer reads the format: one write.
    lazy = true
    await submit('lazy')
    st = await stored()
    expect(four('lazy').filter((id) => st.shares.has(id))).to.deep.equal([])
    expect(st.jobs.get('lazy')!.initialShares).to.equal(4)

    // An older balancer appears: the shares get their records, then the job loses initialShares.
    lazy = false
    const deadline = Date.now() + 10_000
    for (;;) {
      st = await stored()
      if (st.jobs.get('lazy')!.initialShares === undefined) break
      if (Date.now() > deadline) expect.fail('the lazy job\'s shares were not written out within 10 s')
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(four('lazy').every((id) => st.shares.has(id))).to.equal(true)
  })

  it('takes a balancer heard lately that announces no store formats (an older release) as one that does not read initialShares', () => {
    const now = 10_000
    expect(allRead([], now, 'initial-shares')).to.equal(true)
    expect(allRead([{ at: now, reads: ['initial-shares'] }], now, 'initial-shares')).to.equal(true)
    expect(allRead([{ at: now, reads: ['initial-shares'] }, { at: now }], now, 'initial-shares')).to.equal(false)
    expect(allRead([{ at: now, reads: [] }], now, 'initial-shares')).to.equal(false)
    // Not heard since the horizon: gone, it does not count.
    expect(allRead([{ at: now - 1 }], now, 'initial-shares')).to.equal(true)
  })
})
