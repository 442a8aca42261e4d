/**
 * `shoal auth init` / `add-host` on the file system, the permissions they write (plain data), and
 * the credential settings every process reads — with the bad input each must refuse by name.
 */

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { addHost, authInit, readManifest } from '../../lib/auth/generate.ts'
import { identityOf, permissionsFor } from '../../lib/auth/permissions.ts'
import { loadConfig } from '../../lib/config/mod.ts'
import { authOptions } from '../../lib/nats-connect.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { expectShoalError } from '../support/processes.ts'

describe('auth: permissions per identity', () => {
  const s = new Subjects('c')

  it('lets a host publish only on subjects that name it, and receive only its own commands', () => {
    const p = permissionsFor('c', identityOf('host-h1'))
    expect(p.publish.sort()).to.deep.equal([s.heartbeat('h1'), s.leave('h1'), s.report('h1'), s.blob('h1')].sort())
    expect(p.subscribe).to.include(s.hostCommand('h1'))
    expect(p.subscribe.filter((x) => x.includes('.cmd'))).to.deep.equal([s.hostCommand('h1')])
    // No JetStream at all: JetStream would answer to any reply subject the host names, with its own rights.
    expect([...p.publish, ...p.subscribe].filter((x) => x.startsWith('$'))).to.deep.equal([])
    expect(p.allowResponses).to.equal(true)
  })

  it('lets a submitter ask only the submitter operations, as itself, and read only its own job events', () => {
    const p = permissionsFor('c', identityOf('submitter-alice'))
    expect(p.publish).to.deep.equal(['submit', 'cancel', 'job', 'status'].map((op) => `shoal.c.api.${op}.submitter-alice`))
    expect(p.subscribe).to.deep.equal(['shoal.c.job.submitter-alice.>', '_INBOX.c.submitter-alice.>'])
    expect(p.allowResponses).to.equal(false)
  })

  it('gives an operator every operation as itself, and the JetStream API to the balancer alone', () => {
    const op = permissionsFor('c', identityOf('operator-ann'))
    expect(op.publish).to.include('shoal.c.api.drain.operator-ann')
    expect(op.publish.every((x) => x.endsWith('.operator-ann'))).to.equal(true)
    for (const id of ['operator', 'submitter', 'host-h1']) {
      expect(permissionsFor('c', identityOf(id)).publish.some((x) => x.startsWith('$JS.API.>') || x.startsWith('$KV.')), id).to.equal(false)
    }
    expect(permissionsFor('c', identityOf('balancer')).publish).to.include('$JS.API.>')
  })

  it('never grants a wildcard over every subject, nor another cluster\'s', () => {
    for (const id of ['balancer', 'operator', 'submitter', 'host-h1']) {
      const p = permissionsFor('c', identityOf(id))
      for (const x of [...p.publish, ...p.subscribe]) {
        expect(x, `${id}: ${x}`).not.to.match(/^(>|\*\.>|shoal\.>|shoal\.\*)/)
        expect(/shoal\.c\.|_INBOX\.c\.|shoal_c_|\$JS\.API\.>/.test(x), `${id}: ${x}`).to.equal(true)
      }
    }
  })
})

describe('auth: shoal auth init and add-host', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'shoal-authgen-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('writes one identity per role, host and submitter, seeds 0600, and a server config including auth.conf', async () => {
    const r = await authInit({ dir: path.join(dir, 'a'), cluster: 'prod', hosts: ['h1'], submitters: ['alice'], port: 4999 })
    expect(r.manifest.identities).to.deep.equal(['balancer', 'operator', 'submitter-alice', 'host-h1'])
    const a = path.join(dir, 'a')
    expect(statSync(path.join(a, 'submitter-alice.nk')).mode & 0o777).to.equal(0o600)
    const conf = readFileSync(path.join(a, 'server.conf'), 'utf8')
    expect(conf).to.include('port: 4999').and.include('include ./auth.conf').and.not.include('tls {')
    const alice = loadConfig({ file: path.join(a, 'submitter-alice.yaml'), env: {} })
    expect(alice.client.identity).to.equal('submitter-alice')
    expect(alice.cluster).to.equal('prod')
    expect(loadConfig({ file: path.join(a, 'host-h1.yaml'), env: {} }).host.id).to.equal('h1')
    // Without --submitters: one identity, `submitter`.
    const b = await authInit({ dir: path.join(dir, 'b') })
    expect(b.manifest.identities).to.deep.equal(['balancer', 'operator', 'submitter'])
  })

  it('adds a host, keeping every other seed, and regenerates auth.conf with its user', async () => {
    await authInit({ dir, hosts: ['h1'] })
    const seedBefore = readFileSync(path.join(dir, 'host-h1.nk'), 'utf8')
    const r = addHost(dir, 'h2')
    expect(r.manifest.identities.at(-1)).to.equal('host-h2')
    expect(readFileSync(path.join(dir, 'host-h1.nk'), 'utf8')).to.equal(seedBefore)
    expect(readFileSync(path.join(dir, 'auth.conf'), 'utf8')).to.include('# host-h2').and.include('"shoal.default.pool.hb.h2"')
    expect(readManifest(dir).identities).to.include('host-h2')
  })

  it('refuses bad input by name, and never overwrites a directory or a host', async () => {
    expect((await expectShoalError(authInit({ dir, cluster: 'a.b' }), 'E_CONFIG')).message).to.include('--cluster')
    expect((await expectShoalError(authInit({ dir, hosts: ['h1', 'h1'] }), 'E_CONFIG')).message).to.include('--hosts').and.include('twice')
    expect((await expectShoalError(authInit({ dir, hosts: ['h 1'] }), 'E_CONFIG')).message).to.include('--hosts')
    expect((await expectShoalError(authInit({ dir, submitters: ['a-b'] }), 'E_CONFIG')).message).to.include('--submitters')
    expect((await expectShoalError(authInit({ dir, port: 70_000 }), 'E_CONFIG')).message).to.include('--port')
    await authInit({ dir, hosts: ['h1'] })
    expect((await expectShoalError(authInit({ dir }), 'E_CONFIG')).message).to.include('already holds')
    expect((await expectShoalError(() => addHost(dir, 'h1'), 'E_CONFIG')).message).to.include('already')
    expect((await expectShoalError(() => addHost(dir, 'x.y'), 'E_CONFIG')).message).to.include('host ids')
    expect((await expectShoalError(() => addHost(path.join(dir, 'nowhere'), 'h3'), 'E_CONFIG')).message).to.include("shoal auth init")
  })
})

describe('auth: credential settings', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'shoal-cred-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('reads nats.nkeySeedFile, nats.creds and nats.tls.* from env, resolved against cwd, and from a file, against its directory', () => {
    const env = { SHOAL_NATS_NKEY_SEED_FILE: 'x.nk', SHOAL_NATS_TLS_CA: '/etc/ca.pem', SHOAL_CLIENT_IDENTITY: 'submitter-z' }
    const c = loadConfig({ env })
    expect(c.nats.nkeySeedFile).to.equal(path.resolve('x.nk'))
    expect(c.nats.tls.ca).to.equal('/etc/ca.pem')
    expect(c.client.identity).to.equal('submitter-z')
    writeFileSync(path.join(dir, 'c.yaml'), 'nats:\n  creds: me.creds\n  tls: { cert: c.pem, key: k.pem }\n')
    const f = loadConfig({ file: path.join(dir, 'c.yaml'), env: {} })
    expect([f.nats.creds, f.nats.tls.cert, f.nats.tls.key]).to.deep.equal(['me.creds', 'c.pem', 'k.pem'].map((x) => path.join(dir, x)))
  })

  it('refuses a bad identity naming the key', () => {
    expect(() => loadConfig({ env: { SHOAL_CLIENT_IDENTITY: 'root' } })).to.throw(/client\.identity/)
  })

  it('names the key and file of a missing or bad credential, never its content', async () => {
    const seed = path.join(dir, 'bad.nk')
    writeFileSync(seed, 'not-a-seed-SECRETSECRET')
    const bad = await expectShoalError(() => authOptions({ url: 'x', nkeySeedFile: seed }), 'E_CONFIG')
    expect(bad.message).to.include('nats.nkeySeedFile').and.include(seed).and.not.include('SECRETSECRET')
    const missing = await expectShoalError(() => authOptions({ url: 'x', creds: path.join(dir, 'none.creds') }), 'E_CONFIG')
    expect(missing.message).to.include('nats.creds').and.include('ENOENT')
    expect((await expectShoalError(() => authOptions({ url: 'x', nkeySeedFile: seed, creds: seed }), 'E_CONFIG')).message).to.include('both')
    writeFileSync(path.join(dir, 'c.pem'), 'x')
    expect((await expectShoalError(() => authOptions({ url: 'x', tls: { cert: path.join(dir, 'c.pem') } }), 'E_CONFIG')).message).to.include('nats.tls.key')
    expect((await expectShoalError(() => authOptions({ url: 'x', tls: { ca: path.join(dir, 'no.pem') } }), 'E_CONFIG')).message).to.include('nats.tls.ca')
  })
})
