/**
 * The attack table of issue 10, replayed against a secured cluster: a real nats-server started
 * from `shoal auth init --tls`'s own server.conf (TLS with a CA made by openssl at test time,
 * nkeys, the generated permissions), and a balancer and hosts as child processes, each on its own
 * identity. Every forgery must be refused — by NATS (a permission violation) or by Shoal (an
 * E_FORBIDDEN answer, counted) — and every job's result must stay exact.
 */

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { createUser } from '@nats-io/nkeys'
import { headers, type NatsConnection } from '@nats-io/transport-node'
import { Packr } from 'msgpackr'
import { authInit } from '../../lib/auth/generate.ts'
import { loadConfig } from '../../lib/config/mod.ts'
import { freePort } from '../../lib/free-port.ts'
import { authOptions, closeNats, connectNats, type NatsSettings } from '../../lib/nats-connect.ts'
import { startNatsServer, type RunningNatsServer } from '../../lib/nats-server/launcher.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { ShoalClient } from '../../lib/sdk/client.ts'
import { startCluster, type TestCluster } from '../support/cluster.ts'
import { expectShoalError } from '../support/processes.ts'

const bigState = fileURLToPath(new URL('../fixtures/processors/big-state.ts', import.meta.url))
const CLUSTER = 'sec'
const pack = new Packr({ useRecords: false })
/** protocol.maxMessageBytes as the balancer has it by default. */
const LIMIT = 1024 * 1024 - 4096

describe('a secured cluster (shoal auth init --tls)', function () {
  this.timeout(120_000)
  let dir: string
  let server: RunningNatsServer
  let c: TestCluster
  const s = new Subjects(CLUSTER)
  const opened: NatsConnection[] = []

  /** NATS settings of `identity` from its generated config. */
  const settings = (identity: string): NatsSettings => {
    const cfg = loadConfig({ file: path.join(dir, `${identity}.yaml`), env: {} })
    return { ...cfg.nats, url: server.url, inboxPrefix: s.inbox(cfg.client.identity) }
  }
  /** An SDK client as `identity`; its connection is named attacker-… so the log check below tells it from Shoal's own. */
  const client = (identity: string) =>
    ShoalClient.connect({ servers: server.url, cluster: CLUSTER, identity, nats: { ...authOptions(settings(identity)), name: `attacker-${identity}-sdk` }, requestTimeoutMs: 5000 })
  /** A raw connection as `identity` (a host's identity gets a host's inbox), to forge with. */
  const raw = async (identity: string, inbox = identity): Promise<{ nc: NatsConnection; refusals: string[] }> => {
    const nc = await connectNats({ ...settings(identity), inboxPrefix: s.inbox(inbox) }, `attacker-${identity}`)
    opened.push(nc)
    const refusals: string[] = []
    const watch = async () => {
      for await (const st of nc.status()) if (st.type === 'error') refusals.push(st.error.message)
    }
    watch().catch(() => undefined)
    return { nc, refusals }
  }
  /** Waits until NATS has told `conn` it refused `subject`. */
  const refused = async (conn: { nc: NatsConnection; refusals: string[] }, subject: string) => {
    const deadline = Date.now() + 5000
    while (!conn.refusals.some((r) => r.includes(`"${subject}"`))) {
      if (Date.now() > deadline) throw new Error(`NATS did not refuse ${subject}; refusals: ${JSON.stringify(conn.refusals)}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  before(async function () {
    dir = mkdtempSync(path.join(tmpdir(), 'shoal-auth-'))
    const port = await freePort()
    await authInit({ dir, cluster: CLUSTER, hosts: ['h1', 'h2', 'h3'], submitters: ['alice', 'bob'], tls: true, port })
    // JetStream and its store come from the generated server.conf.
    server = await startNatsServer({ port, jetstream: false, logFile: path.join(dir, 'nats.log'), args: ['-c', path.join(dir, 'server.conf')] })
    const hostArgs = ['--processor', bigState]
    c = await startCluster(server.url, {
      cluster: CLUSTER,
      hosts: ['h1', 'h2'].map((id) => ({ id, args: hostArgs, env: { SHOAL_CONFIG: path.join(dir, `host-${id}.yaml`) } })),
      balancerEnv: { SHOAL_CONFIG: path.join(dir, 'balancer.yaml') },
      client: { identity: 'operator', nats: authOptions(settings('operator')) },
    })
  })

  after(async () => {
    await Promise.all(opened.map((nc) => closeNats(nc, 500)))
    await c?.stop()
    await server?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('wrote every seed readable by its owner only, and a config per identity', () => {
    for (const id of ['balancer', 'operator', 'submitter-alice', 'submitter-bob', 'host-h1', 'host-h2', 'host-h3']) {
      expect(statSync(path.join(dir, `${id}.nk`)).mode & 0o777, id).to.equal(0o600)
      expect(loadConfig({ file: path.join(dir, `${id}.yaml`), env: {} }).nats.nkeySeedFile).to.equal(path.join(dir, `${id}.nk`))
    }
    // The seed never lands in a config or in auth.conf (which holds public keys only).
    const seed = readFileSync(path.join(dir, 'host-h1.nk'), 'utf8').trim()
    expect(readFileSync(path.join(dir, 'auth.conf'), 'utf8')).not.to.include(seed)
    expect(readFileSync(path.join(dir, 'host-h1.yaml'), 'utf8')).not.to.include(seed)
  })

  it('refuses an anonymous connection, and one with a wrong seed, without echoing a secret', async () => {
    const anon = await expectShoalError(connectNats({ url: server.url, tls: { ca: path.join(dir, 'ca.pem') } }, 'anon'), 'E_AUTH')
    expect(anon.message).to.match(/Authorization Violation/i)
    const stranger = path.join(dir, 'stranger.nk')
    writeFileSync(stranger, new TextDecoder().decode(createUser().getSeed()), { mode: 0o600 })
    const wrong = await expectShoalError(connectNats({ url: server.url, nkeySeedFile: stranger, tls: { ca: path.join(dir, 'ca.pem') } }, 'stranger'), 'E_AUTH')
    expect(wrong.message).not.to.include(readFileSync(stranger, 'utf8').trim())
    expect(wrong.message).not.to.include(readFileSync(stranger, 'utf8').trim().slice(2, 20))
    // Without the CA the server's certificate cannot be verified: TLS is really on.
    await expectShoalError(connectNats({ url: server.url }, 'no-ca'), 'E_UNAVAILABLE')
  })

  it('runs a job exactly with every process on its own identity, checkpoints in the object store included, over TLS', async () => {
    const alice = await client('submitter-alice')
    try {
      // 1,200 units of 1 KiB: states past half the message limit go through the Object Store,
      // which hosts write (and, after the drain below moves the share, read) under their narrow permissions.
      const job = await alice.submit<number>({ processor: 'big-state', range: [0, 1200], input: { bytesPerUnit: 1024, msPerUnit: 3 }, shares: 1 })
      await c.waitFor(async () => ((await alice.fetchJob(job.id)).unitsDone ?? 0) >= 700, 30_000, 'the share to pass 700 units')
      const running = (await c.client.fetchJob(job.id, true)).shares!.find((sh) => sh.state === 'running')!
      await c.client.drain(running.host!)
      expect(await job.result()).to.equal(1200)
      const done = await c.client.fetchJob(job.id, true)
      expect(done.shares![0]!.hosts.length, "the share moved to another host").to.be.at.least(2)
      await c.client.drain(running.host!, false)
    } finally {
      await alice.close()
    }
  })

  it('a host cannot speak for another: NATS refuses its heartbeat, leave and report, Shoal refuses a body naming another host, and results stay exact', async () => {
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 3_000_000], shares: 4 })
    const h3 = await raw('host-h3')
    h3.nc.publish(s.heartbeat('h1'), pack.pack({ v: 1, t: 'hb', hostId: 'h1' }))
    await refused(h3, s.heartbeat('h1'))
    h3.nc.publish(s.leave('h1'), pack.pack({ v: 1, t: 'leave', hostId: 'h1' }))
    await refused(h3, s.leave('h1'))
    const forgedDone = { v: 1, t: 'done', hostId: 'h1', shareId: `${job.id}-s0`, epoch: 1, to: 750_000, result: 0, unitsDone: 750_000, elapsedMs: 5 }
    await h3.nc.request(s.report('h1'), pack.pack(forgedDone), { timeout: 2000 }).then(
      () => expect.fail('NATS let host-h3 publish h1\'s report'),
      (e: Error) => expect(e.message).to.match(/Permissions Violation for Publish/),
    )
    // On its own subjects, naming h1 in the body: NATS lets it through, the balancer refuses it.
    const before = identityRejects((await c.client.status()).rejected)
    h3.nc.publish(s.leave('h3'), pack.pack({ v: 1, t: 'leave', hostId: 'h1' }))
    const reply = pack.unpack((await h3.nc.request(s.report('h3'), pack.pack(forgedDone), { timeout: 5000 })).data) as { t: string; error?: { code: string } }
    expect(reply.t).to.equal('nack')
    expect(reply.error?.code).to.equal('E_FORBIDDEN')
    await c.waitFor(async () => identityRejects((await c.client.status()).rejected) >= before + 2, 5000, 'two identity rejects to be counted')
    expect(await job.result()).to.equal(216816)
    expect((await c.aliveHosts()).map((h) => h.hostId).sort()).to.deep.equal(['h1', 'h2'])
  })

  it('a submitter cannot drain, migrate, retune, or see or cancel another\'s job; an operator can', async () => {
    const [alice, bob] = await Promise.all([client('submitter-alice'), client('submitter-bob')])
    try {
      await expectShoalError(alice.drain('h1'), 'E_FORBIDDEN')
      await expectShoalError(alice.migrate('x-s0', 'h2'), 'E_FORBIDDEN')
      await expectShoalError(alice.setSetting('balancer.migrationThreshold', '5'), 'E_FORBIDDEN')
      const bobs = await bob.submit<number>({ processor: 'count-primes', range: [0, 2_000_000], shares: 2 })
      const before = forbiddenRejects((await c.client.status()).rejected)
      await expectShoalError(alice.fetchJob(bobs.id), 'E_FORBIDDEN')
      await expectShoalError(alice.cancel(bobs.id), 'E_FORBIDDEN')
      await expectShoalError(alice.submit({ processor: 'count-primes', range: [0, 10], jobId: bobs.id }), 'E_FORBIDDEN')
      expect((await alice.status()).jobs.map((j) => j.jobId)).not.to.include(bobs.id)
      expect((await bob.status()).jobs.map((j) => j.jobId)).to.include(bobs.id)
      expect(forbiddenRejects((await c.client.status()).rejected)).to.be.at.least(before + 3)
      expect(await bobs.result()).to.equal(148933)
      // The operator may do what the submitters may not.
      const changed = await c.client.setSetting('balancer.migrationThreshold', '3')
      expect(changed.settings['balancer.migrationThreshold']).to.equal(3)
      const long = await bob.submit({ processor: 'big-state', range: [0, 100_000], input: { bytesPerUnit: 1, msPerUnit: 1 }, shares: 1 })
      expect((await c.client.cancel(long.id)).state).to.equal('cancelled')
      await expectShoalError(long.result(), 'E_CANCELLED')
    } finally {
      await Promise.all([alice.close(), bob.close()])
    }
  })

  it('a submitter cannot read or delete the KV buckets, read others\' traffic, forge a job event or pose as a host', async () => {
    const alice = await raw('submitter-alice')
    await new Kvm(alice.nc).open(s.bucket('jobs')).then((kv) => kv.get('x')).then(
      () => expect.fail('alice read the jobs bucket'),
      (e: Error) => expect(e.message).to.match(/Permissions Violation/),
    )
    await jetstreamManager(alice.nc, { timeout: 2000 }).then((jsm) => jsm.streams.delete(`KV_${s.bucket('shares')}`)).then(
      () => expect.fail('alice deleted the shares stream'),
      (e: Error) => expect(e.message).to.match(/Permissions Violation/),
    )
    for (const subject of ['shoal.>', `${s.prefix}.job.submitter-bob.>`, '_INBOX.>', s.hostCommand('h1'), s.reportAll()]) {
      alice.nc.subscribe(subject)
      await refused(alice, subject)
    }
    for (const subject of [s.jobEvents('submitter-alice', 'j1'), s.heartbeat('h9'), s.hostCommand('h1')]) {
      alice.nc.publish(subject, pack.pack({ v: 1, t: 'job' }))
      await refused(alice, subject)
    }
    const h3 = await raw('host-h3')
    h3.nc.subscribe(s.hostCommand('h1'))
    await refused(h3, s.hostCommand('h1'))
    await jetstreamManager(h3.nc, { timeout: 2000 }).then((jsm) => jsm.streams.delete(`KV_${s.bucket('jobs')}`)).then(
      () => expect.fail('a host deleted the jobs stream'),
      (e: Error) => expect(e.message).to.match(/Permissions Violation/),
    )
    // Everything still works, exactly.
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1_000_000], shares: 2 })
    expect(await job.result()).to.equal(78498)
  })

  it('nobody can aim the balancer\'s answer or JetStream\'s at a KV bucket or another identity, or relay through JetStream', async () => {
    const leaderBefore = (await c.client.status()).leader
    const before = identityRejects((await c.client.status()).rejected)
    const alice = await raw('submitter-alice')
    // The balancer would answer with its own rights (it may write the KV buckets): it must not answer at all.
    for (const reply of [`$KV.${s.bucket('leader')}.leader`, `$KV.${s.bucket('jobs')}.x`, `${s.inbox('submitter-bob')}.x`, s.hostCommand('h1')]) {
      alice.nc.publish(s.api('status', 'submitter-alice'), pack.pack({ v: 1, t: 'status' }), { reply })
    }
    // A host has no JetStream at all, so it cannot make JetStream answer anywhere either.
    const h3 = await raw('host-h3')
    h3.nc.publish(`$JS.API.STREAM.INFO.OBJ_${s.bucket('ckpt')}`, new Uint8Array(0), { reply: `$KV.${s.bucket('leader')}.leader` })
    await refused(h3, `$JS.API.STREAM.INFO.OBJ_${s.bucket('ckpt')}`)
    h3.nc.publish(`$O.${s.bucket('ckpt')}.C.x`, new Uint8Array(8))
    await refused(h3, `$O.${s.bucket('ckpt')}.C.x`)
    // A message that carries headers was relayed by JetStream (Shoal never sends any): dropped.
    const op = await raw('operator')
    const relayed = headers()
    relayed.set('Nats-Stream', `OBJ_${s.bucket('ckpt')}`)
    op.nc.publish(s.api('drain', 'operator'), pack.pack({ v: 1, t: 'drain', hostId: 'h2', drain: true }), { reply: `${s.inbox('operator')}.y`, headers: relayed })
    await c.waitFor(async () => identityRejects((await c.client.status()).rejected) >= before + 5, 5000, `five identity rejects (from ${before}: ${JSON.stringify((await c.client.status()).rejected)}; alice refused ${JSON.stringify(alice.refusals)})`)
    const st = await c.client.status()
    expect(st.hosts.find((h) => h.hostId === 'h2')?.draining).to.equal(false)
    expect(st.leader?.term).to.equal(leaderBefore?.term)
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1_000_000], shares: 2 })
    expect(await job.result()).to.equal(78498)
    expect((await c.client.status()).leader?.term).to.equal(leaderBefore?.term)
  })

  it('a host may store and read large states only of its own shares, through the balancer', async () => {
    const h3 = await raw('host-h3')
    const req = (host: string, body: Record<string, unknown>) =>
      h3.nc.request(s.blob(host), pack.pack({ v: 1, hostId: host, ...body }), { timeout: 3000 }).then((m) => pack.unpack(m.data) as { t: string; error?: { code: string } })
    const get = await req('h3', { t: 'blob-get', name: 'j1-s0.1.h1.1', offset: 0, length: 1000 })
    expect(get.error?.code).to.equal('E_FORBIDDEN')
    const put = await req('h3', { t: 'blob-put', name: 'j1-s0.1.h3.1', index: 0, count: 1, total: 3, chunk: new Uint8Array(3) })
    expect(put.error?.code).to.equal('E_STALE_EPOCH')
    await req('h1', { t: 'blob-get', name: 'j1-s0.1.h1.1', offset: 0, length: 1000 }).then(
      () => expect.fail('host-h3 sent on h1\'s blob subject'),
      (e: Error) => expect(e.message).to.match(/Permissions Violation/),
    )
  })

  it('an input just under the message limit is refused at submission with the sizes; junk on pool subjects from a submitter is refused by NATS', async () => {
    const bob = await client('submitter-bob')
    const spam = await raw('submitter-bob')
    try {
      // The largest input whose submission fits: its assignment (input plus share fields) does not.
      const codec = new Codec(LIMIT)
      const sub = (n: number) => codec.sizeOf({ v: 1, t: 'submit', jobId: 'big-input-sec', processor: 'count-primes', input: 'x'.repeat(n), from: 0, to: 1000, shares: 1 })
      let n = LIMIT - 200
      while (sub(n + 1) <= LIMIT) n++
      const err = await expectShoalError(bob.submit({ processor: 'count-primes', range: [0, 1000], input: 'x'.repeat(n), shares: 1, jobId: 'big-input-sec' }), 'E_MSG_TOO_LARGE')
      expect(err.message).to.include('keep the input under')
      // 1,000 junk heartbeats on distinct subjects: a submitter may not publish on pool subjects at all.
      for (let i = 0; i < 1000; i++) spam.nc.publish(s.heartbeat(`junk-${i}`), pack.pack({ v: 1, t: 'hb', hostId: `junk-${i}` }))
      await refused(spam, s.heartbeat('junk-999'))
      const st = await c.client.status()
      expect(st.hosts.filter((h) => h.hostId.startsWith('junk-'))).to.deep.equal([])
      expect(Object.keys(st.rejected).filter((k) => k.includes('junk-'))).to.deep.equal([])
      const job = await bob.submit<number>({ processor: 'count-primes', range: [0, 1_000_000], shares: 2 })
      expect(await job.result()).to.equal(78498)
    } finally {
      await bob.close()
    }
  })

  it('never refused anything Shoal\'s own processes needed (the permissions are enough)', () => {
    const log = readFileSync(path.join(dir, 'nats.log'), 'utf8')
    const violations = log.split('\n').filter((l) => /Violation/.test(l) && !/attacker-/.test(l))
    expect(violations).to.deep.equal([])
  })
})

const sumCause = (cause: string) => (r: Record<string, number>) => Object.entries(r).filter(([k]) => k.endsWith(` ${cause}`)).reduce((n, [, v]) => n + v, 0)
const identityRejects = sumCause('identity')
const forbiddenRejects = sumCause('forbidden')
