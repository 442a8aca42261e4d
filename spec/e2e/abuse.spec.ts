/**
 * Defence in depth on an OPEN cluster (no auth), where no permission stops anyone: the rows of
 * issue 10's attack table that Shoal itself must make harmless — a forged job event, a flood of
 * fake hosts, an input that no assignment could carry, a host that refuses every assignment.
 * Real nats-server, balancer and host processes; the attacker is a raw NATS connection.
 */

import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { Packr } from 'msgpackr'
import { MAX_ASSIGN_REFUSALS } from '../../lib/balancer/assign-refusals.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { useNatsServer } from '../support/nats.ts'
import { startCluster, type TestCluster } from '../support/cluster.ts'
import { expectShoalError } from '../support/processes.ts'

const LIMIT = 1024 * 1024 - 4096
const pack = new Packr({ useRecords: false, mapsAsObjects: true })

describe('abuse of an open cluster (defence without auth)', function () {
  this.timeout(90_000)
  const nats = useNatsServer()
  let c: TestCluster
  let raw: NatsConnection
  let s: Subjects
  const balancerLines: string[] = []

  before(async () => {
    c = await startCluster(nats.url, { hosts: [{ id: 'h1' }], onLine: (name, line) => name === 'b1' && balancerLines.push(line) })
    s = new Subjects(c.cluster)
    raw = await connect({ servers: nats.url })
  })
  after(async () => {
    await raw?.close()
    await c?.stop()
  })

  /** One real heartbeat of h1, to forge others from. */
  async function realHeartbeat(): Promise<Record<string, unknown>> {
    const sub = raw.subscribe(s.heartbeat('h1'), { max: 1 })
    for await (const m of sub) return pack.unpack(m.data) as Record<string, unknown>
    throw new Error('no heartbeat from h1')
  }

  it('a forged "completed, 42" job event does not resolve result(): the balancer\'s answer does', async () => {
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 2_000_000], shares: 2 })
    const forged = { ...job.summary!, state: 'completed', result: 42, unitsDone: 2_000_000, sharesDone: 2 }
    raw.publish(s.jobEvents('operator', job.id), pack.pack({ v: 1, t: 'job', job: forged }))
    expect(await job.result()).to.equal(148_933)
  })

  it('refuses at submission an input no assignment could carry, at once, with the sizes', async () => {
    // The largest input whose submission fits: its assignment (input plus share fields) does not.
    const codec = new Codec(LIMIT)
    const sub = (n: number) => codec.sizeOf({ v: 1, t: 'submit', jobId: 'big-input-1', processor: 'count-primes', input: 'x'.repeat(n), from: 0, to: 1000, shares: 1 })
    let n = LIMIT - 200
    while (sub(n + 1) <= LIMIT) n++
    const started = Date.now()
    const err = await expectShoalError(c.client.submit({ processor: 'count-primes', range: [0, 1000], input: 'x'.repeat(n), shares: 1, jobId: 'big-input-1' }), 'E_MSG_TOO_LARGE')
    expect(err.message).to.include('protocol.maxMessageBytes').and.include('keep the input under')
    expect(Date.now() - started).to.be.below(5000)
    expect(balancerLines.filter((l) => l.includes('big-input-1') && l.includes('assignment failed'))).to.deep.equal([])
  })

  it('benches a host that refuses every assignment, and the job finishes exactly on the others', async () => {
    const hb = await realHeartbeat()
    const capacity = hb.capacity as Record<string, unknown>
    let assigns = 0
    // A rogue host with many slots that says no to everything.
    const cmd = raw.subscribe(s.hostCommand('rogue'), {
      callback: (_e, m) => {
        // Assignments come alone or several to a message (assign-batch): each counts.
        const c = pack.unpack(m.data) as { t: string; shares?: unknown[] }
        if (c.t === 'assign') assigns++
        if (c.t === 'assign-batch') assigns += c.shares?.length ?? 0
        m.respond(pack.pack({ v: 1, t: 'err', error: { code: 'E_INTERNAL', message: 'no', retryable: false } }))
      },
    })
    let seq = 0
    const beat = () => raw.publish(s.heartbeat('rogue'), pack.pack({ ...hb, hostId: 'rogue', seq: ++seq, shares: [], capacity: { ...capacity, slots: 16 } }))
    beat()
    const beating = setInterval(beat, 200)
    try {
      await c.waitFor(async () => (await c.aliveHosts()).some((h) => h.hostId === 'rogue'), 10_000, 'the rogue host to join')
      const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 2_000_000], shares: 6 })
      expect(await job.result()).to.equal(148_933)
      expect(balancerLines.some((l) => l.includes('failed assignments again and again'))).to.equal(true)
      // Benched after three refusals in a row: a handful of tries, not hundreds.
      expect(assigns).to.be.within(3, 12)
    } finally {
      clearInterval(beating)
      cmd.unsubscribe()
    }
  })

  it('fails a job whose only host keeps refusing, after a bounded number of tries, naming the refusal', async () => {
    await c.waitFor(async () => !(await c.aliveHosts()).some((h) => h.hostId === 'rogue'), 10_000, 'the rogue host to be gone')
    await c.client.drain('h1')
    const hb = await realHeartbeat()
    let assigns = 0
    const cmd = raw.subscribe(s.hostCommand('rogue2'), {
      callback: (_e, m) => {
        if ((pack.unpack(m.data) as { t: string }).t === 'assign') assigns++
        m.respond(pack.pack({ v: 1, t: 'err', error: { code: 'E_INTERNAL', message: 'refused by rogue2', retryable: false } }))
      },
    })
    let seq = 0
    const beat = () => raw.publish(s.heartbeat('rogue2'), pack.pack({ ...hb, hostId: 'rogue2', seq: ++seq, shares: [] }))
    beat()
    const beating = setInterval(beat, 200)
    try {
      await c.waitFor(async () => (await c.aliveHosts()).some((h) => h.hostId === 'rogue2'), 10_000, 'rogue2 to join')
      const job = await c.client.submit({ processor: 'count-primes', range: [0, 1000], shares: 1 })
      const err = await expectShoalError(job.result(), 'E_JOB_FAILED')
      expect(err.message).to.include('E_UNPLACEABLE').and.include('refused by rogue2')
      expect(assigns).to.equal(MAX_ASSIGN_REFUSALS)
    } finally {
      clearInterval(beating)
      cmd.unsubscribe()
      await c.client.drain('h1', false)
    }
  })

  it('keeps every `status` reply under the message limit with thousands of (fake) hosts, paging the hosts; the SDK lists them all', async () => {
    const hb = await realHeartbeat()
    for (let i = 0; i < 6000; i++) raw.publish(s.heartbeat(`fake-${i}-${'x'.repeat(40)}`), pack.pack({ ...hb, hostId: `fake-${i}-${'x'.repeat(40)}`, processors: [], shares: [] }))
    await raw.flush()
    // One raw request: the first page, under the limit, saying how many hosts there are.
    const page = async (hostsAfter?: string) => {
      const m = await raw.request(s.api('status', 'operator'), pack.pack({ v: 1, t: 'status', ...(hostsAfter === undefined ? {} : { hostsAfter }) }), { timeout: 10_000, noMux: true, reply: `${s.inbox('operator')}.${Date.now()}` })
      expect(m.data.length).to.be.at.most(LIMIT)
      return pack.unpack(m.data) as { hosts: Array<{ hostId: string }>; hostsTotal: number; jobs: unknown[]; omitted?: { hosts: number } }
    }
    await c.waitFor(async () => (await page()).hostsTotal >= 6001, 20_000, 'the balancer to hear the fake hosts')
    const first = await page()
    expect(first.hosts.length).to.be.below(first.hostsTotal)
    expect(first.omitted!.hosts).to.equal(first.hostsTotal - first.hosts.length)
    // Ordered by id, and paged by it: the next page starts after the last id of this one.
    const ids = first.hosts.map((h) => h.hostId)
    expect(ids).to.deep.equal([...ids].sort())
    const second = await page(ids.at(-1))
    expect(second.hosts.length).to.be.above(0)
    expect(second.hosts.every((h) => h.hostId > ids.at(-1)!)).to.equal(true)
    expect(second.jobs).to.deep.equal([])
    // The SDK reads every page: every host, once, with its state.
    const st = await c.client.status()
    expect(st.hosts.length).to.be.at.least(6001)
    expect(new Set(st.hosts.map((h) => h.hostId)).size).to.equal(st.hosts.length)
    expect(st.hosts.every((h) => typeof h.state === 'string')).to.equal(true)
    expect(st.omitted?.hosts ?? 0).to.equal(0)
    expect(st.hosts.some((h) => h.hostId === 'h1')).to.equal(true)
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1_000_000], shares: 2 })
    expect(await job.result()).to.equal(78_498)
  })
})
