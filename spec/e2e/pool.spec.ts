/**
 * End to end over a real nats-server with a balancer process and three host processes: submit →
 * split → place → run → checkpoint → merge, through the SDK and the CLI; bad input of every kind
 * (unknown processor, a processor that throws, malformed and oversized messages); membership when
 * a host is SIGKILLed.
 */

import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { Packr } from 'msgpackr'
import { ShoalError } from '../../lib/errors.ts'
import { MAX_REJECT_SUBJECTS, OTHER_SUBJECT } from '../../lib/protocol/codec.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { replyAs, useNatsServer } from '../support/nats.ts'
import { runShoal } from '../support/shoal-cli.ts'
import { startCluster, killAndWait, type TestCluster } from '../support/cluster.ts'

const throwsFixture = fileURLToPath(new URL('../fixtures/processors/throws.ts', import.meta.url))

const shoal = (args: string[], env: Record<string, string>) => runShoal(args, env)

describe('a pool of three host processes over a real nats-server', function () {
  this.timeout(60_000)
  const nats = useNatsServer()
  let c: TestCluster

  before(async () => {
    c = await startCluster(nats.url, {
      hosts: [
        { id: 'h1', args: ['--processor', throwsFixture] },
        { id: 'h2', args: ['--processor', throwsFixture] },
        { id: 'h3', args: ['--processor', throwsFixture] },
      ],
    })
  })
  after(async () => c?.stop())

  it('counts the primes below 2·10⁶ exactly (148,933) in 12 shares spread over the hosts, through the SDK', async () => {
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 2_000_000], shares: 12 })
    expect(await job.result()).to.equal(148_933)
    const detail = await job.fetch(true)
    expect(detail.state).to.equal('completed')
    expect(detail.shares).to.have.length(12)
    expect(detail.unitsDone).to.equal(2_000_000)
    const hostsUsed = new Set(detail.shares!.flatMap((s) => s.hosts))
    expect(hostsUsed.size, 'shares should run on more than one host').to.be.greaterThan(1)
    for (const s of detail.shares!) expect(s.state).to.equal('done')
  })

  it('reports progress while a job runs and ends the iterator on the final state', async () => {
    const job = await c.client.submit<number>({ processor: 'cpu-burn', range: [0, 3000], input: { workPerUnit: 20000 }, shares: 6 })
    const seen: number[] = []
    let last = ''
    for await (const s of job.progress()) {
      seen.push(s.unitsDone)
      last = s.state
    }
    expect(last).to.equal('completed')
    expect(seen.at(-1)).to.equal(3000)
    for (let i = 1; i < seen.length; i++) expect(seen[i]).to.be.at.least(seen[i - 1]!)
  })

  it('prints one JSON object with the result, job id, state, shares and elapsed time from `shoal submit --wait --json`', async () => {
    const r = await shoal(['submit', 'count-primes', '--range', '0:2000000', '--shares', '12', '--wait', '--json'], c.env)
    expect(r.code, r.stderr).to.equal(0)
    const out = JSON.parse(r.stdout) as { result: number; jobId: string; state: string; shares: unknown[]; elapsedMs: number }
    expect(out.result).to.equal(148_933)
    expect(out.jobId).to.be.a('string').and.not.empty
    expect(out.state).to.equal('completed')
    expect(out.shares).to.have.length(12)
    expect(out.elapsedMs).to.be.a('number').and.greaterThan(0)
  })

  it('rejects an unknown processor with E_UNKNOWN_PROCESSOR naming it and the registered ones', async () => {
    const err = await c.client.submit({ processor: 'no-such-thing', range: [0, 10] }).then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).to.be.instanceOf(ShoalError)
    expect((err as ShoalError).code).to.equal('E_UNKNOWN_PROCESSOR')
    expect((err as ShoalError).message).to.include("'no-such-thing'").and.include('count-primes')
    const r = await shoal(['submit', 'no-such-thing', '--range', '0:10', '--wait'], c.env)
    expect(r.code).to.equal(1)
    expect(r.stderr).to.include("no host in the pool registers processor 'no-such-thing'").and.include('E_UNKNOWN_PROCESSOR')
  })

  it('rejects an empty range with E_BAD_RANGE before anything runs', async () => {
    const err = await c.client.submit({ processor: 'count-primes', range: [5, 5] }).catch((e: unknown) => e)
    expect((err as ShoalError).code).to.equal('E_BAD_RANGE')
    const r = await shoal(['submit', 'count-primes', '--range', '9:3', '--json'], c.env)
    expect(r.code).to.equal(1)
    expect(JSON.parse(r.stdout).error.code).to.equal('E_BAD_RANGE')
  })

  it("fails a job whose processor throws, with the processor's message visible to the client", async () => {
    const job = await c.client.submit({ processor: 'throws-at', range: [0, 5000], input: { cursedUnit: 1234 }, shares: 4 })
    const err = await job.result().then(
      () => null,
      (e: unknown) => e as ShoalError,
    )
    expect(err).to.be.instanceOf(ShoalError)
    expect(err!.code).to.equal('E_JOB_FAILED')
    expect(err!.message).to.include('unit 1234 is cursed')
    expect((err!.cause as ShoalError).code).to.equal('E_PROCESSOR_THREW')
    const r = await shoal(['submit', 'throws-at', '--range', '0:5000', '--input', '{"cursedUnit":10}', '--wait'], c.env)
    expect(r.code).to.equal(1)
    expect(r.stderr).to.include('unit 10 is cursed')
  })

  it('cancels a running job through an AbortSignal: the result rejects with E_CANCELLED and the hosts free their slots', async () => {
    const abort = new AbortController()
    const job = await c.client.submit({ processor: 'cpu-burn', range: [0, 10_000_000], input: { workPerUnit: 20000 }, shares: 6, signal: abort.signal })
    await c.waitFor(async () => (await job.fetch()).state === 'running' && (job.summary?.unitsDone ?? 0) > 0, 10_000, 'the job to make progress')
    abort.abort()
    const err = await job.result().catch((e: unknown) => e as ShoalError)
    expect((err as ShoalError).code).to.equal('E_CANCELLED')
    const detail = await job.fetch(true)
    expect(detail.state).to.equal('cancelled')
    expect(detail.shares!.every((s) => s.state === 'cancelled')).to.equal(true)
    await c.waitFor(async () => (await c.client.hosts()).every((h) => h.load.busySlots === 0), 5000, 'hosts to drop the cancelled shares')
  })

  it('refuses an input larger than the message limit with E_MSG_TOO_LARGE, before sending it', async () => {
    const err = await c.client.submit({ processor: 'count-primes', range: [0, 10], input: 'x'.repeat(2 * 1024 * 1024) }).catch((e: unknown) => e)
    expect((err as ShoalError).code).to.equal('E_MSG_TOO_LARGE')
    expect((err as ShoalError).message).to.match(/over protocol\.maxMessageBytes/)
  })

  describe('malformed messages', () => {
    let raw: NatsConnection
    before(async () => {
      raw = await connect({ servers: nats.url })
    })
    after(async () => raw?.close())

    it('are counted by subject and dropped, and the balancer and hosts keep working', async () => {
      const s = new Subjects(c.cluster)
      const pack = new Packr({ useRecords: false })
      const garbage = new Uint8Array([0xc1, 0xff, 0x00, 0x13])
      const wrongShape = pack.pack({ v: 1, t: 'checkpoint', hostId: 'h1' })
      const unknownType = pack.pack({ v: 1, t: 'teleport' })
      const before = (await c.client.status()).rejected
      const sum = (r: Record<string, number>, prefix: string) => Object.entries(r).filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0)

      raw.publish(s.heartbeat('h9'), garbage)
      raw.publish(s.heartbeat('h9'), pack.pack({ v: 1, t: 'hb', hostId: 'h9' }))
      const r1 = await raw.request(s.report('h1'), wrongShape, replyAs(s, 'host-h1'))
      const r2 = await raw.request(s.api('submit', 'operator'), garbage, replyAs(s, 'operator'))
      const r3 = await raw.request(s.hostCommand('h1'), unknownType, replyAs(s, 'balancer'))
      raw.publish(s.report('h1'), new Uint8Array(1024 * 1024 - 64)) // oversized for the codec (zeros)
      await raw.flush()
      // Requests get an error reply naming the problem rather than silence.
      for (const r of [r1, r2, r3]) expect(JSON.stringify(pack.unpack(r.data))).to.include('E_MSG_INVALID')

      await c.waitFor(async () => sum((await c.client.status()).rejected, s.heartbeat('h9')) >= (sum(before, s.heartbeat('h9')) + 2), 5000, 'heartbeat rejects to be counted')
      const after = (await c.client.status()).rejected
      expect(sum(after, s.report('h1'))).to.be.at.least(sum(before, s.report('h1')) + 2)
      expect(sum(after, s.api('submit', 'operator'))).to.be.at.least(sum(before, s.api('submit', 'operator')) + 1)
      expect(Object.keys(after).some((k) => k.endsWith(' oversized'))).to.equal(true)

      const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 100_000], shares: 3 })
      expect(await job.result()).to.equal(9592)
      expect([...c.hosts.values()].every((h) => h.exitCode === null)).to.equal(true)
      expect(c.balancer!.exitCode).to.equal(null)
    })

    it('on thousands of distinct junk subjects, are counted under a bounded set of names, and status stays small', async () => {
      const s = new Subjects(c.cluster)
      const garbage = new Uint8Array([0xc1])
      const total = (r: Record<string, number>) => Object.values(r).reduce((n, v) => n + v, 0)
      const before = total((await c.client.status()).rejected)
      for (let i = 0; i < 3000; i++) raw.publish(s.heartbeat(`junk${i}`), garbage)
      await raw.flush()
      await c.waitFor(async () => total((await c.client.status()).rejected) >= before + 3000, 15_000, 'the 3,000 junk messages to be counted')
      const st = await c.client.status()
      // 128 named subjects at most, then "other": not one entry per junk subject.
      expect(Object.keys(st.rejected).length).to.be.at.most(MAX_REJECT_SUBJECTS + 8)
      expect(st.rejected[`${OTHER_SUBJECT} malformed`]).to.be.greaterThan(0)
      expect(Buffer.byteLength(JSON.stringify(st))).to.be.below(64 * 1024)
    })
  })

  it('marks a SIGKILLed host dead within pool.hostDeadMs plus one heartbeat', async () => {
    c.startHost('h-victim')
    await c.waitFor(async () => (await c.aliveHosts()).some((h) => h.hostId === 'h-victim'), 20_000, 'h-victim to join')
    const killedAt = Date.now()
    await killAndWait(c.hosts.get('h-victim')!, 'SIGKILL')
    await c.waitFor(async () => (await c.client.hosts()).some((h) => h.hostId === 'h-victim' && h.state === 'dead'), 5000, 'h-victim to be declared dead')
    const detectedMs = Date.now() - killedAt
    // Defaults: pool.hostDeadMs 1000, pool.heartbeatMs 250.
    expect(detectedMs).to.be.at.most(1000 + 250)
    expect(detectedMs).to.be.at.least(1000 - 250)
  })
})

describe('a job submitted before any host can run it', function () {
  this.timeout(60_000)
  const nats = useNatsServer()
  let c: TestCluster
  before(async () => {
    c = await startCluster(nats.url, { hosts: [] })
  })
  after(async () => c?.stop())

  it('waits with a reason the client can see, then runs when a host joins', async () => {
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 100_000], shares: 2 })
    expect(job.summary?.state).to.equal('waiting')
    expect(job.summary?.reason).to.equal('no hosts in the pool yet')
    c.startHost('late')
    expect(await job.result()).to.equal(9592)
  })

  it('waits for a host with the required tags, naming the processor and tags', async () => {
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1000], tags: { zone: 'mars' } })
    await c.waitFor(async () => /zone=mars/.test((await job.fetch()).reason ?? ''), 5000, 'a waiting reason')
    expect(job.summary!.state).to.equal('waiting')
    expect(job.summary!.reason).to.include("'count-primes'")
    c.startHost('martian', ['--tags', 'zone=mars'])
    expect(await job.result()).to.equal(168)
    const detail = await job.fetch(true)
    expect(detail.shares!.every((s) => s.hosts.every((h) => h === 'martian'))).to.equal(true)
  })
})
