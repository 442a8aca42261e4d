/**
 * Shoal's own control plane under faults, with real processes: a standby balancer that takes over
 * from a SIGKILLed leader, a leader SIGSTOPped past its lease that steps down and can change
 * nothing afterwards, two balancers started at once, and a balancer and a host started before
 * NATS. Every test demands the exact result. (The 3-node NATS cluster tests are in
 * nats-cluster.spec.ts.)
 */

import { expect } from 'chai'
import { Kvm } from '@nats-io/kv'
import { connect } from '@nats-io/transport-node'
import { Packr } from 'msgpackr'
import { freePort } from '../../lib/free-port.ts'
import { startNatsServer, type RunningNatsServer } from '../../lib/nats-server/launcher.ts'
import { useNatsServer } from '../support/nats.ts'
import { startCluster, killAndWait, TestCluster, type ClusterOptions } from '../support/cluster.ts'

/** π(10⁹): long enough (≈ 2 s of CPU on two cores) to break things in the middle of. */
const PI_1E9 = 50_847_534
/** Only the mechanism under test moves shares: no balancing moves, no dynamic splits. */
const POLICY_OFF = { SHOAL_BALANCER_MIGRATION_THRESHOLD: '1', SHOAL_BALANCER_SPLIT_MIN_UNITS: '1000000000000' }
const packr = new Packr({ useRecords: false, mapsAsObjects: true })

describe('control plane: standby balancers and leadership terms, with real processes', function () {
  this.timeout(120_000)
  const nats = useNatsServer()
  let c: TestCluster | undefined

  afterEach(async () => {
    await c?.stop()
    c = undefined
  })

  const twoBalancers = (extra: Partial<ClusterOptions> = {}): Promise<TestCluster> =>
    startCluster(nats.url, { balancers: ['b1', 'b2'], hosts: [{ id: 'a' }, { id: 'b' }], env: { SHOAL_SHARES_CHECKPOINT_MS: '200', ...POLICY_OFF }, ...extra })

  it('starts two balancers at once: one leads (term 1), the other stands by, and a job is exact', async () => {
    c = await twoBalancers()
    const st = await c.client.status()
    expect(st.leader, 'status names a leader').to.not.equal(undefined)
    expect(st.leader!.term).to.equal(1)
    expect(['b1', 'b2']).to.include(st.leader!.id)
    expect(st.standbys!.map((s) => s.id)).to.deep.equal([st.leader!.id === 'b1' ? 'b2' : 'b1'])
    // The same submission twice at once (an SDK retry racing the first): one job, admitted once.
    const [job, again] = await Promise.all([0, 1].map(() => c!.client.submit<number>({ jobId: 'twice', processor: 'count-primes', range: [0, 1e9], shares: 6 })))
    expect(await job!.result()).to.equal(PI_1E9)
    expect(await again!.result()).to.equal(PI_1E9)
    const detail = await job!.fetch(true)
    expect(detail.sharesTotal).to.equal(6)
    expect(detail.shares!.map((s) => s.shareId).sort()).to.deep.equal([0, 1, 2, 3, 4, 5].map((i) => `twice-s${i}`).sort())
  })

  it('hands the job to the standby when the leader is SIGKILLed: higher term, work placed, exact result, no host declared dead', async () => {
    c = await twoBalancers({ hosts: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] })
    const before = (await c.leader())!
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1e9], shares: 12 })
    await c.waitFor(async () => (await job.fetch(true)).shares!.some((s) => s.state === 'running' && s.unitsDone > 0), 20_000, 'progress')
    const killedAt = Date.now()
    await killAndWait(c.balancers.get(before.id)!, 'SIGKILL')
    // A second job submitted into the gap: the SDK waits for the new leader, which places it.
    const second = await c.client.submit<number>({ processor: 'count-primes', range: [0, 2_000_000], shares: 2 })
    let after: Awaited<ReturnType<TestCluster['leader']>>
    await c.waitFor(async () => (after = await c!.leader().catch(() => undefined))?.id !== undefined && after!.id !== before.id, 20_000, 'the standby to lead')
    expect(after!.term).to.be.greaterThan(before.term)
    expect(after!.since).to.be.at.least(killedAt - 50)
    expect(await second.result()).to.equal(148_933)
    expect(await job.result()).to.equal(PI_1E9)
    const st = await c.client.status()
    expect(st.hosts.filter((h) => h.state !== 'alive').map((h) => `${h.hostId} ${h.state}`)).to.deep.equal([])
    expect(st.failovers, 'no share was re-dispatched from a host').to.deep.equal([])
    const detail = await job.fetch(true)
    // Shares kept running where they were through the takeover: one epoch each.
    for (const s of detail.shares!) expect(s.epoch, s.shareId).to.equal(1)
  })

  it('deposes a leader SIGSTOPped past its lease: after SIGCONT it stands by and nothing it writes or sends counts', async () => {
    c = await twoBalancers({ hosts: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] })
    const before = (await c.leader())!
    const other = before.id === 'b1' ? 'b2' : 'b1'
    const frozen = c.balancers.get(before.id)!
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1e9], shares: 12 })
    await c.waitFor(async () => (await job.fetch(true)).shares!.some((s) => s.state === 'running' && s.unitsDone > 0), 20_000, 'progress')
    frozen.kill('SIGSTOP')
    let after: Awaited<ReturnType<TestCluster['leader']>>
    try {
      await c.waitFor(async () => (after = await c!.leader().catch(() => undefined))?.id === other, 20_000, 'the standby to take over')
      // Let the new leader write under its term (checkpoints) before the old one wakes up.
      await c.waitFor(async () => (await shareRecords(nats.url, c!.cluster)).some((r) => r.term === after!.term), 20_000, 'a record of the new term')
    } finally {
      frozen.kill('SIGCONT')
    }
    const wokeAt = Date.now()
    await c.waitFor(async () => (await c!.client.status()).standbys?.some((s) => s.id === before.id) === true, 20_000, 'the old leader to stand by')
    expect(c.log(before.id)).to.match(/no longer the leader/)
    expect(await job.result()).to.equal(PI_1E9)
    expect(frozen.exitCode, 'the deposed balancer is still running').to.equal(null)
    // No record was written under the old term once it woke up: the store refused it (CAS) and
    // its fence kept it from trying.
    const late = (await shareRecords(nats.url, c.cluster)).filter((r) => (r.term ?? 0) < after!.term && r.updatedAt >= wokeAt)
    expect(late.map((r) => `${r.shareId} term ${r.term}`)).to.deep.equal([])
    const st = await c.client.status()
    expect(st.leader!.id).to.equal(other)
    expect(st.hosts.every((h) => h.state === 'alive')).to.equal(true)
  })

  it('refuses a command from a lower term on a host (E_STALE_TERM), once the host follows a higher one', async () => {
    c = await twoBalancers()
    const before = (await c.leader())!
    await killAndWait(c.balancers.get(before.id)!, 'SIGKILL')
    let after: Awaited<ReturnType<TestCluster['leader']>>
    await c.waitFor(async () => (after = await c!.leader().catch(() => undefined))?.id !== undefined && after!.id !== before.id, 20_000, 'the standby to lead')
    // A deposed leader's late command, forged here with the old term: the host has heard the new
    // leader's presence and refuses it.
    const { Bus } = await import('../../lib/protocol/bus.ts')
    const { Codec } = await import('../../lib/protocol/codec.ts')
    const { Subjects } = await import('../../lib/protocol/subjects.ts')
    const { hostReplySchema } = await import('../../lib/protocol/messages.ts')
    const nc = await connect({ servers: nats.url })
    try {
      const subjects = new Subjects(c.cluster)
      const bus = new Bus(nc, new Codec(1 << 20), { inbox: subjects.inbox('balancer') })
      const subj = subjects.hostCommand('a')
      const err = await bus.request(subj, { v: 1, t: 'drop', term: before.term, shareId: 'x-s0', epoch: 1 }, hostReplySchema, 5_000).catch((e: { code: string }) => e)
      expect((err as { code: string }).code).to.equal('E_STALE_TERM')
      const ok = await bus.request(subj, { v: 1, t: 'drop', term: after!.term, shareId: 'x-s0', epoch: 1 }, hostReplySchema, 5_000)
      expect(ok.t).to.equal('ok')
    } finally {
      await nc.close()
    }
  })
})

describe('control plane: processes started before NATS', function () {
  this.timeout(120_000)
  let server: RunningNatsServer | undefined
  let c: TestCluster | undefined

  afterEach(async () => {
    await c?.stop()
    await server?.stop()
    c = undefined
    server = undefined
  })

  it('starts a balancer and a host while NATS is down: they say they wait, and join when it comes', async () => {
    const port = await freePort()
    const url = `nats://127.0.0.1:${port}`
    c = new TestCluster(url, { hosts: [{ id: 'early' }], env: POLICY_OFF })
    c.startBalancer()
    c.startHost('early')
    await c.waitFor(() => /waiting for it/.test(c!.log('balancer')) && /waiting for it/.test(c!.log('early')), 20_000, 'both to say they wait for NATS')
    expect(c.balancer!.exitCode).to.equal(null)
    expect(c.hosts.get('early')!.exitCode).to.equal(null)
    server = await startNatsServer({ port })
    const { ShoalClient } = await import('../../lib/sdk/client.ts')
    c.client = await ShoalClient.connect({ servers: url, cluster: c.cluster, requestTimeoutMs: 5_000 })
    await c.waitFor(async () => (await c!.aliveHosts()).length === 1, 30_000, 'the host to join')
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 2_000_000], shares: 2 })
    expect(await job.result()).to.equal(148_933)
    expect(c.balancer!.exitCode).to.equal(null)
  })
})

describe('control plane: stopping while NATS is away', function () {
  this.timeout(60_000)

  it('stops a balancer and a host on SIGTERM within seconds although NATS never answered', async () => {
    const port = await freePort()
    const c = new TestCluster(`nats://127.0.0.1:${port}`, { hosts: [{ id: 'lonely' }] })
    c.startBalancer()
    c.startHost('lonely')
    try {
      await c.waitFor(() => /waiting for it/.test(c.log('balancer')) && /waiting for it/.test(c.log('lonely')), 20_000, 'both to wait for NATS')
      const t0 = Date.now()
      await Promise.all([c.balancer!, c.hosts.get('lonely')!].map((p) => new Promise<void>((resolve) => {
        p.once('exit', () => resolve())
        p.kill('SIGTERM')
      })))
      // One SIGTERM each and nothing else: a stop that waited for NATS would hang here.
      expect(Date.now() - t0).to.be.lessThan(5_000)
    } finally {
      await c.stop()
    }
  })

  it('stops a host on SIGTERM within seconds after its NATS went away', async () => {
    const server = await startNatsServer()
    const c = new TestCluster(server.url, { hosts: [{ id: 'orphan' }] })
    try {
      c.startHost('orphan')
      await c.waitFor(() => /host started/.test(c.log('orphan')), 20_000, 'the host to start')
      await server.stop()
      const host = c.hosts.get('orphan')!
      const t0 = Date.now()
      await new Promise<void>((resolve) => {
        host.once('exit', () => resolve())
        host.kill('SIGTERM')
      })
      expect(Date.now() - t0, 'a flush or drain waiting for a server that is gone').to.be.lessThan(5_000)
    } finally {
      await c.stop()
      await server.stop()
    }
  })
})

/** Every share record of a Shoal cluster, read straight from JetStream KV. */
async function shareRecords(url: string, cluster: string): Promise<Array<{ shareId: string; term?: number; updatedAt: number }>> {
  const nc = await connect({ servers: url })
  try {
    const kv = await new Kvm(nc).open(`shoal_${cluster}_shares`)
    const out = []
    for await (const k of await kv.keys()) {
      const e = await kv.get(k)
      if (e && e.operation === 'PUT') out.push(packr.unpack(e.value) as { shareId: string; term?: number; updatedAt: number })
    }
    return out
  } finally {
    await nc.close()
  }
}
