/**
 * The balancing policy driven by the real balancer process over a real nats-server: a host that
 * joins idle gets the tail of a running share (dynamic split), a spread job keeps one share per
 * host, and `shoal status` shows the imbalance against the tolerated imbalance. Every job's result
 * is checked exactly: a split must neither lose nor double a unit.
 *
 * Uneven hosts and a background hog are exercised for real by `bench/uneven.ts` (taskset); here
 * the hosts share the machine's cores, so the tests assert what the policy must do whatever the
 * measured loads are.
 */

import { expect } from 'chai'
import { useNatsServer } from '../support/nats.ts'
import { runShoal } from '../support/shoal-cli.ts'
import { spawnShoal } from '../../lib/cli/spawn.ts'
import { startCluster, type TestCluster } from '../support/cluster.ts'

/** π(10⁹): long enough (≈ 2 s of CPU per share) for the policy to act while it runs. */
const PI_1E9 = 50_847_534

describe('balancing with real processes', function () {
  this.timeout(90_000)
  const nats = useNatsServer()
  let c: TestCluster

  afterEach(async () => c?.stop())

  it('splits a running share onto a host that joins idle, and the result stays exact', async () => {
    c = await startCluster(nats.url, { hosts: [{ id: 'first', args: ['--slots', '1'] }] })
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1e9], shares: 1 })
    // The share must have a measured rate before it can be split (the policy skips unmeasured jobs).
    await c.waitFor(async () => ((await job.fetch(true)).shares![0]!.unitsDone ?? 0) > 0, 20_000, 'progress on the first host')
    c.startHost('late', ['--slots', '1'])
    await c.waitFor(async () => (await job.fetch(true)).shares!.some((s) => s.hosts.includes('late')), 20_000, 'a split tail on the late host')
    expect(await job.result()).to.equal(PI_1E9)
    const shares = (await job.fetch(true)).shares!
    expect(shares.length).to.be.greaterThan(1)
    // The shares tile the range exactly: no gap, no overlap.
    const sorted = [...shares].sort((a, b) => a.from - b.from)
    expect(sorted[0]!.from).to.equal(0)
    expect(sorted.at(-1)!.to).to.equal(1e9)
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.from, `${sorted[i]!.shareId} starts where the previous ends`).to.equal(sorted[i - 1]!.to)
    const st = await c.client.status()
    expect(st.balance?.splitsTotal).to.be.greaterThan(0)
  })

  it('keeps a spread job at one share per host', async () => {
    c = await startCluster(nats.url, { hosts: [{ id: 'x' }, { id: 'y' }, { id: 'z' }], env: { SHOAL_BALANCER_SPLIT_MIN_UNITS: '1000000000000' } })
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 2e8], shares: 3, spread: true })
    await c.waitFor(async () => (await job.fetch(true)).shares!.every((s) => s.host !== null || s.state === 'done'), 20_000, 'every share placed')
    expect(await job.result()).to.equal(11_078_937)
    const first = (await job.fetch(true)).shares!.map((s) => s.hosts[0])
    expect(new Set(first).size, `first hosts ${first.join(', ')}`).to.equal(3)
  })

  it('shows the imbalance against the tolerated imbalance and the threshold in `shoal status`', async () => {
    c = await startCluster(nats.url, { hosts: [{ id: 'p' }, { id: 'q' }] })
    await c.waitFor(async () => (await c.client.status()).balance !== undefined, 10_000, 'a balancing pass')
    const st = await c.client.status()
    expect(st.balance!.threshold).to.equal(3)
    expect(st.balance!.toleratedImbalance).to.be.closeTo(0.2 / Math.SQRT2, 1e-9)
    expect(Object.keys(st.balance!.loads).sort()).to.deep.equal(['p', 'q'])
    const text = await runShoal(['status'], c.env)
    expect(text.code, text.stderr).to.equal(0)
    expect(text.stdout).to.match(/BALANCE {2}imbalance \d+\.\d{3}, tolerated 0\.141/)
    expect(text.stdout).to.include('migrationThreshold 3')
    const json = await runShoal(['status', '--json'], c.env)
    expect(JSON.parse(json.stdout).balance.threshold).to.equal(3)

    // --watch redraws until interrupted, then exits 0.
    const w = spawnShoal(['status', '--watch', '--interval', '200'], { env: c.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    w.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    await c.waitFor(() => (out.match(/^shoal {2}\d\d:\d\d/gm) ?? []).length >= 2, 10_000, 'two frames of status --watch')
    const exit = new Promise<number | null>((r) => w.once('exit', (code) => r(code)))
    w.kill('SIGINT')
    expect(await exit).to.equal(0)
    expect(out).to.include('HOSTS (2)').and.include('imbalance').and.include('threshold 3').and.include('RECENT MIGRATIONS')
  })
})
