/**
 * The `shoal` command line as a user meets it: --help on every command, a bad config refused with
 * the key named and a non-zero exit, a missing nats-server explained with the install command.
 * Runs the real CLI as a child process.
 */

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { useNatsServer } from '../support/nats.ts'
import { runShoal } from '../support/shoal-cli.ts'

function shoal(args: string[], env: Record<string, string> = {}) {
  return runShoal(args, { ...process.env, ...env }, 30_000)
}

describe('the shoal command line', function () {
  this.timeout(30_000)

  it('lists every command in its top-level --help', async () => {
    const r = await shoal(['--help'])
    expect(r.code).to.equal(0)
    for (const c of ['balancer', 'host', 'submit', 'status', 'migrate', 'drain', 'undrain', 'config', 'store', 'demo']) expect(r.stdout).to.include(c)
  })

  for (const [cmd, flag] of [
    ['balancer', '--config'],
    ['host', '--slots'],
    ['submit', '--wait'],
    ['status', '--json'],
    ['status', '--watch'],
    ['balancer', '--metrics-port'],
    ['host', '--metrics-port'],
    ['submit', '--spread'],
    ['config set', '<value>'],
    ['config get', '--json'],
    ['demo', '--hosts'],
    ['balancer', '--id'],
    ['store status', '--json'],
    ['store replicas', '<n>'],
  ] as const) {
    it(`prints help for '${cmd}' naming its ${flag} option`, async () => {
      const r = await shoal([...cmd.split(' '), '--help'])
      expect(r.code).to.equal(0)
      expect(r.stdout).to.include(`Usage: shoal ${cmd}`).and.include(flag)
    })
  }

  it('refuses a replica count JetStream does not take, before connecting, and exits 2', async () => {
    const r = await shoal(['store', 'replicas', '2'], { SHOAL_NATS_URL: 'nats://127.0.0.1:1' })
    expect(r.code).to.equal(2)
    expect(r.stderr).to.include('replicas must be 1, 3 or 5 (got "2")').and.include('E_CONFIG')
  })

  it('refuses a bad config file with the key, the expectation and the value, and exits 2', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-cli-'))
    const file = path.join(dir, 'shoal.yaml')
    fs.writeFileSync(file, 'balancer:\n  migrationThreshold: 9\n')
    const r = await shoal(['balancer', '--config', file])
    fs.rmSync(dir, { recursive: true, force: true })
    expect(r.code).to.equal(2)
    expect(r.stderr).to.include('balancer.migrationThreshold must be an integer from 1 to 5 (got 9)').and.include('E_CONFIG')
  })

  it('refuses a bad environment override naming the variable', async () => {
    const r = await shoal(['host'], { SHOAL_POOL_HEARTBEAT_MS: 'fast' })
    expect(r.code).to.equal(2)
    expect(r.stderr).to.include('SHOAL_POOL_HEARTBEAT_MS').and.include('pool.heartbeatMs')
  })

  it('refuses --slots 0 on a host', async () => {
    const r = await shoal(['host', '--slots', '0'])
    expect(r.code).to.equal(2)
    expect(r.stderr).to.include('--slots must be an integer >= 1')
  })

  it('explains how to install nats-server when the demo cannot find it', async () => {
    const r = await shoal(['demo', '--hosts', '1'], { NATS_SERVER_BIN: '/nonexistent/nats-server' })
    expect(r.code).to.equal(1)
    expect(r.stderr).to.include('apt-get install nats-server').and.include('E_NATS_SERVER_MISSING')
    expect(r.stderr).not.to.match(/\n\s+at /) // a paragraph, not a stack trace
  })

  it('says what to do when no NATS server answers', async () => {
    const r = await shoal(['status'], { SHOAL_NATS_URL: 'nats://127.0.0.1:1' })
    expect(r.code).to.equal(1)
    expect(r.stderr).to.include('cannot connect to NATS at nats://127.0.0.1:1')
  })
})

describe('client commands against a nats-server that wants a password', function () {
  this.timeout(60_000)
  const SECRET = 's3cret-Pa55'
  const nats = useNatsServer({ args: ['--user', 'shoal', '--pass', SECRET] })
  let dir: string
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-cli-auth-'))
  })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const withCreds = () => nats.url.replace('nats://', `nats://shoal:${SECRET}@`)
  // A clean environment for the settings under test: no SHOAL_* of the caller's.
  const clean = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SHOAL_'))) as Record<string, string>
  const run = (args: string[], env: Record<string, string> = {}) => runShoal(args, { ...clean(), ...env }, 30_000)

  it('read the credentials from the config file (--config), as balancer and hosts do', async () => {
    const file = path.join(dir, 'client.yaml')
    fs.writeFileSync(file, `cluster: authtest\nnats:\n  url: ${nats.url}\n  user: shoal\n  pass: ${SECRET}\n`)
    const r = await run(['store', 'status', '--config', file, '--json'])
    expect(r.code, r.stderr).to.equal(0)
    expect(JSON.parse(r.stdout)).to.include({ cluster: 'authtest' })
    // Also through SHOAL_CONFIG, and through SHOAL_NATS_* alone.
    expect((await run(['store', 'status'], { SHOAL_CONFIG: file })).code).to.equal(0)
    expect((await run(['store', 'status'], { SHOAL_NATS_URL: nats.url, SHOAL_NATS_USER: 'shoal', SHOAL_NATS_PASS: SECRET })).code).to.equal(0)
  })

  it('are refused without them, saying so, and never print the password, even one given in the URL', async () => {
    const without = await run(['status', '--nats', nats.url])
    expect(without.code).to.equal(1)
    expect(without.stderr).to.match(/authorization/i)
    const wrong = await run(['status', '--nats', withCreds().replace(SECRET, `${SECRET}x`)])
    expect(wrong.code).to.equal(1)
    expect(wrong.stderr).to.match(/authorization/i)
    expect(wrong.stderr + wrong.stdout).to.not.include(SECRET)
    expect(wrong.stderr).to.include('shoal:***@')
  })
})
