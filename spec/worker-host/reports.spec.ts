/**
 * A host keeps a finished share's result until a balancer of the current term answers for good:
 * error replies and silence are retried, an answer from a deposed term is not taken, a nack ends
 * it; meanwhile its heartbeats list the share as finished, so nobody takes it for lost. Commands
 * from a lower term are refused. A real host (in this process) on a real nats-server, with this
 * spec playing the balancer.
 */

import { expect } from 'chai'
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node'
import { loadConfig } from '../../lib/config/mod.ts'
import { silentLogger } from '../../lib/log.ts'
import { Bus } from '../../lib/protocol/bus.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import { heartbeatSchema, hostReplySchema, reportBatchSchema, type Heartbeat, type Report } from '../../lib/protocol/messages.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { Host } from '../../lib/worker-host/host.ts'
import { useNatsServer } from '../support/nats.ts'

let n = 0

describe('host result delivery and term fencing', function () {
  this.timeout(30_000)
  const nats = useNatsServer()
  let nc: NatsConnection
  let host: Host
  let bus: Bus
  let subjects: Subjects
  const subs: Subscription[] = []
  const beats: Heartbeat[] = []

  beforeEach(async () => {
    const cluster = `hr${process.pid}x${++n}`
    subjects = new Subjects(cluster)
    nc = await connect({ servers: nats.url })
    // Plays the balancer: the host answers only requests from the balancer's inbox.
    bus = new Bus(nc, new Codec(1 << 20), { inbox: subjects.inbox('balancer') })
    beats.length = 0
    subs.push(bus.subscribe(subjects.heartbeat('h1'), heartbeatSchema, (hb) => beats.push(hb)))
    const config = loadConfig({ env: {}, overrides: { cluster, nats: { url: nats.url }, host: { id: 'h1', slots: 1 }, shares: { checkpointMs: 60_000 } } as never })
    host = await Host.start({ config, logger: silentLogger() })
    // The host subscribes to its commands before its first heartbeat, on the same connection:
    // once a beat arrives, the server knows the subscription.
    await until(() => beats.length > 0, 'the first heartbeat')
  })

  afterEach(async () => {
    for (const s of subs.splice(0)) s.unsubscribe()
    await host.stop()
    await nc.close()
  })

  /**
   * Plays the balancer on the report subject: `answer` decides each reply (undefined = silence);
   * `i` counts the reports of the same type.
   */
  function balancer(answer: (r: Report, i: number) => unknown): Report[] {
    const got: Report[] = []
    subs.push(
      // Hosts send their reports in batches: each report is answered as if it had come alone, and
      // a batch with a report left unanswered gets no answer at all.
      bus.serve(subjects.report('h1'), reportBatchSchema, async (b) => {
        const answers = await Promise.all(
          b.reports.map((r) => {
            const i = got.filter((g) => g.t === r.t).length
            got.push(r)
            return answer(r, i)
          }),
        )
        if (answers.some((a) => a === undefined)) return new Promise(() => undefined)
        return { v: 1, t: 'answers', term: 1, answers }
      }),
    )
    return got
  }

  const assign = (term: number, epoch = 1) =>
    bus.request(subjects.hostCommand('h1'), { v: 1, t: 'assign', term, share: { shareId: 'j-s0', jobId: 'j', epoch, processor: 'count-primes', input: null, from: 0, to: 20_000, position: 0, unitsDone: 0 } }, hostReplySchema, 5_000)

  async function until(cond: () => boolean, what: string | (() => string), ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  it('sends a result again after error replies and an answer from a deposed term, until an ack of the current term', async () => {
    const got = balancer((r, i) => {
      if (r.t !== 'done') return { v: 1, t: 'ack', term: 2 }
      if (i === 0) return { v: 1, t: 'err', error: { code: 'E_STORE', message: 'jetstream is not enabled', retryable: true } }
      if (i === 1) return undefined // no answer: times out
      if (i === 2) return { v: 1, t: 'ack', term: 1 } // a deposed leader's ack: not taken
      return { v: 1, t: 'ack', term: 2 }
    })
    await assign(2)
    await until(() => got.filter((r) => r.t === 'done').length >= 4, () => `the fourth delivery of the result (got ${got.map((r) => r.t).join(', ')})`)
    const dones = got.filter((r) => r.t === 'done')
    expect(dones.map((r) => (r as { result: unknown }).result)).to.deep.equal([2262, 2262, 2262, 2262]) // π(20,000)
    // While the result waited, the share stayed in the heartbeats as finished.
    expect(beats.some((b) => b.shares.some((s) => s.shareId === 'j-s0' && s.finished === true))).to.equal(true)
    await until(() => beats.at(-1)!.shares.length === 0, 'the share to leave the heartbeats once acknowledged')
    await new Promise((r) => setTimeout(r, 400))
    expect(got.filter((r) => r.t === 'done')).to.have.length(4)
  })

  it('stops sending a result the balancer refuses for good (nack), and forgets the share', async () => {
    const got = balancer((r) => (r.t === 'done' ? { v: 1, t: 'nack', term: 1, error: { code: 'E_STALE_EPOCH', message: 'old', retryable: false } } : { v: 1, t: 'ack', term: 1 }))
    await assign(1)
    await until(() => got.some((r) => r.t === 'done'), 'the result')
    await until(() => beats.length > 0 && beats.at(-1)!.shares.length === 0, 'the share to leave the heartbeats')
    await new Promise((r) => setTimeout(r, 400))
    expect(got.filter((r) => r.t === 'done')).to.have.length(1)
  })

  it('sends only the newest of the checkpoints that queued behind a slow answer, and leads by the delay it measured', async () => {
    // A host checkpointing every 50 ms, and a balancer that takes 300 ms to make each one durable.
    await host.stop()
    beats.length = 0
    const cluster = subjects.heartbeat('h1').split('.')[1]!
    const config = loadConfig({ env: {}, overrides: { cluster, nats: { url: nats.url }, host: { id: 'h1', slots: 1 }, shares: { checkpointMs: 50 } } as never })
    host = await Host.start({ config, logger: silentLogger() })
    await until(() => beats.length > 0, 'the first heartbeat')
    const got = balancer(() => new Promise((r) => setTimeout(() => r({ v: 1, t: 'ack', term: 1 }), 300)))
    await bus.request(subjects.hostCommand('h1'), { v: 1, t: 'assign', term: 1, share: { shareId: 'k-s0', jobId: 'k', epoch: 1, processor: 'count-primes', input: null, from: 0, to: 4e10, position: 0, unitsDone: 0 } }, hostReplySchema, 5_000)
    const metric = async (name: string) => (await host.metrics.registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0
    await until(() => got.filter((r) => r.t === 'checkpoint').length >= 5, () => `five checkpoints at the balancer (got ${got.map((r) => r.t).join(', ')}; beats ${JSON.stringify(beats.at(-1)?.shares)})`)
    const superseded = await metric('shoal_host_checkpoints_superseded_total')
    // About six 50 ms checkpoints are taken per 300 ms answer: most are dropped, not queued.
    expect(superseded, 'checkpoints superseded').to.be.at.least(10)
    const positions = got.filter((r) => r.t === 'checkpoint').map((r) => (r as { checkpoint: { position: number } }).checkpoint.position)
    for (let i = 1; i < positions.length; i++) expect(positions[i]).to.be.greaterThan(positions[i - 1]!)
    expect(await metric('shoal_host_checkpoint_lead_seconds'), 'lead').to.be.within(0.29, 1)
    expect(await metric('shoal_host_checkpoint_lateness_max_seconds'), 'worst lateness').to.be.greaterThan(0)
  })

  it('takes an assign-batch share by share: each answered in order, a bad one refused alone, the good ones run to their results', async () => {
    const got = balancer(() => ({ v: 1, t: 'ack', term: 1 }))
    const share = (i: number, processor = 'count-primes') => ({ shareId: `j-s${i}`, jobId: 'j', epoch: 1, processor, input: null, from: i * 1000, to: i * 1000 + 1000, position: i * 1000, unitsDone: 0 })
    const reply = await bus.request(subjects.hostCommand('h1'), { v: 1, t: 'assign-batch', term: 1, shares: [share(0), share(1, 'no-such-processor'), share(2)] }, hostReplySchema, 5_000)
    expect(reply.t).to.equal('assigned')
    const answers = reply.t === 'assigned' ? reply.answers : []
    expect(answers.map((a) => (a.t === 'err' ? a.error.code : a.t))).to.deep.equal(['ok', 'E_UNKNOWN_PROCESSOR', 'ok'])
    await until(() => got.filter((r) => r.t === 'done').length === 2, () => `both results (got ${got.map((r) => r.t).join(', ')})`)
    // π(1,000) = 168 and π(3,000) − π(2,000) = 430 − 303 = 127.
    expect(got.filter((r) => r.t === 'done').map((r) => `${(r as { shareId: string }).shareId} ${(r as { result: unknown }).result}`).sort()).to.deep.equal(['j-s0 168', 'j-s2 127'])
  })

  it('refuses a command from a lower term than one it obeyed, with E_STALE_TERM, and counts it', async () => {
    balancer(() => undefined)
    await assign(5)
    expect(host.term).to.equal(5)
    const err = await bus.request(subjects.hostCommand('h1'), { v: 1, t: 'drop', term: 4, shareId: 'j-s0', epoch: 1 }, hostReplySchema, 5_000).catch((e: { code: string }) => e)
    expect((err as { code: string }).code).to.equal('E_STALE_TERM')
    expect(Object.entries(host.rejected()).some(([k, v]) => k.endsWith('stale-term') && v === 1)).to.equal(true)
    // A higher term is obeyed and becomes the one to follow.
    expect((await bus.request(subjects.hostCommand('h1'), { v: 1, t: 'drop', term: 6, shareId: 'j-s0', epoch: 1 }, hostReplySchema, 5_000)).t).to.equal('ok')
    expect(host.term).to.equal(6)
  })
})
