/**
 * The `shoal` command line as a user meets it: --help on every command, a bad config refused with
 * the key named and a non-zero exit, a missing nats-server explained with the install command.
 * Runs the real CLI as a child process.
 */

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
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
