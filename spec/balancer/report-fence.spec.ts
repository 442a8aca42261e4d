/**
 * Reports read while the leader's lease is unconfirmed: a real Balancer (in this process, on a
 * real nats-server) with a fence this spec drives. A report read while the lease has lapsed waits
 * for the next renewal and is answered then, rather than dropped; one whose lease stays
 * unconfirmed for a whole lease, or that reaches a deposed leader, gets no answer at all, and a
 * checkpoint among them is counted as not-leader.
 */

import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { Balancer } from '../../lib/balancer/balancer.ts'
import { openBuckets } from '../../lib/balancer/buckets.ts'
import { notLeader, type Fence, type FenceState } from '../../lib/balancer/fence.ts'
import { loadConfig } from '../../lib/config/mod.ts'
import { silentLogger } from '../../lib/log.ts'
import { BalancerMetrics } from '../../lib/metrics/balancer-metrics.ts'
import { Bus } from '../../lib/protocol/bus.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import { reportBatchReplySchema, type Report } from '../../lib/protocol/messages.ts'
import { Subjects, hostIdentity } from '../../lib/protocol/subjects.ts'
import { useNatsServer } from '../support/nats.ts'

/** A fence whose state the test sets; waiters wake when it turns valid or revoked. */
class TestFence implements Fence {
  readonly term = 1
  private s: FenceState = 'valid'
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = []
  state(): FenceState {
    return this.s
  }
  set(s: FenceState): void {
    this.s = s
    if (s === 'suspended') return
    for (const w of this.waiters.splice(0)) s === 'valid' ? w.resolve() : w.reject(notLeader(1, 'test'))
  }
  whenValid(): Promise<void> {
    if (this.s === 'valid') return Promise.resolve()
    if (this.s === 'revoked') return Promise.reject(notLeader(1, 'test'))
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }
  deposed(): void {
    this.set('revoked')
  }
}

describe('reports read while the lease is unconfirmed', function () {
  this.timeout(30_000)
  const nats = useNatsServer()
  let nc: NatsConnection
  let balancer: Balancer
  let fence: TestFence
  let metrics: BalancerMetrics
  let subjects: Subjects
  let host: Bus
  let n = 0
  const LEASE_MS = 1_000

  beforeEach(async () => {
    const cluster = `rf${++n}`
    const config = loadConfig({ env: {}, overrides: { cluster, nats: { url: nats.url }, balancer: { leaseMs: LEASE_MS } } as never })
    nc = await connect({ servers: nats.url })
    subjects = new Subjects(cluster)
    const buckets = await openBuckets(nc, subjects, { leaseMs: LEASE_MS })
    fence = new TestFence()
    metrics = new BalancerMetrics(() => ({ hostsByState: {}, hosts: [], sharesByState: {}, jobsByState: {}, jobProgress: [], settings: {} }))
    balancer = await Balancer.start({ config, logger: silentLogger(), nc, buckets, fence, metrics, hearing: () => true, lastHeard: () => Date.now(), leadership: () => ({ leader: { id: 'b', pid: 1, term: 1, since: 0 }, standbys: [] }) })
    host = new Bus(nc, new Codec(config.protocol.maxMessageBytes), { inbox: subjects.inbox(hostIdentity('h1')) })
  })

  afterEach(async () => {
    await balancer.stop()
    await nc.close()
  })

  // A checkpoint of a share the balancer does not know: once handled, it is refused (a nack).
  const checkpoint: Report = { v: 1, t: 'checkpoint', hostId: 'h1', checkpoint: { shareId: 'nope-s0', epoch: 1, position: 1, to: 2, state: 1, unitsDone: 1, stateBytes: 1 } }
  const send = (timeoutMs: number) => host.request(subjects.report('h1'), { v: 1, t: 'reports', hostId: 'h1', reports: [checkpoint] }, reportBatchReplySchema, timeoutMs)
  const notLeaderCount = async () => (await metrics.registry.getSingleMetric('shoal_checkpoint_failures_total')!.get()).values.find((v) => v.labels.cause === 'not-leader')?.value ?? 0

  it('answers a report read during a lapse once the lease is confirmed again', async () => {
    fence.set('suspended')
    const reply = send(5_000)
    // Renewed a moment later (the next renewal of a leader whose event loop ran late).
    setTimeout(() => fence.set('valid'), 300)
    const r = await reply
    expect(r.answers.map((a) => a.t)).to.deep.equal(['nack'])
    expect(await notLeaderCount()).to.equal(0)
  })

  it('gives no answer when the lease stays unconfirmed for a whole lease, and counts the checkpoint', async () => {
    fence.set('suspended')
    const err = await send(LEASE_MS + 1_500).catch((e: { code: string }) => e)
    expect((err as { code: string }).code).to.equal('E_TIMEOUT')
    expect(await notLeaderCount()).to.equal(1)
  })

  it('gives no answer once deposed, at once', async () => {
    fence.set('suspended')
    const reply = send(LEASE_MS / 2).catch((e: { code: string }) => e)
    setTimeout(() => fence.set('revoked'), 50)
    expect(((await reply) as { code: string }).code).to.equal('E_TIMEOUT')
    expect(await notLeaderCount()).to.equal(1)
  })
})
