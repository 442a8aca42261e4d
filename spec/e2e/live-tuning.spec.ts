/**
 * Balancing settings changed on a running balancer, for real: by editing its config file and with
 * `shoal config set`. Two hosts pinned to one CPU each (taskset) and a CPU hog make the policy
 * want a migration; at threshold 1 it must not make one, at 3 it must. A bad value is refused with
 * the key named and the old value kept. Skipped, saying why, where taskset is missing.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { useNatsServer } from '../support/nats.ts'
import { runShoal } from '../support/shoal-cli.ts'
import { startCluster, tasksetPath, type TestCluster } from '../support/cluster.ts'
import { readCpuTimes } from '../../lib/worker-host/load-sampler.ts'

/** Busy fraction of each CPU (by id) over `ms`, whatever runs there. */
async function busyFractions(cpus: string[], ms: number): Promise<number[]> {
  const a = readCpuTimes()
  await new Promise((r) => setTimeout(r, ms))
  const b = readCpuTimes()
  return cpus.map((id) => {
    const x = a.get(Number(id))
    const y = b.get(Number(id))
    if (!x || !y || y.total <= x.total) return 0
    return (y.busy - x.busy) / (y.total - x.total)
  })
}

const CPU: Record<string, string> = { a: '0', b: '1' }

describe('live tuning of the balancing settings', function () {
  this.timeout(90_000)
  const nats = useNatsServer()
  let c: TestCluster | undefined
  let hog: ChildProcess | undefined
  let dir: string

  before(function () {
    try {
      tasksetPath()
    } catch (e) {
      this.skip() // taskset (util-linux) is needed to pin hosts and the hog: apt-get install util-linux
    }
    if (os.availableParallelism() < 2) this.skip() // two CPUs are needed: one per host
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-live-'))
  })

  beforeEach(async function () {
    // The scenario needs both CPUs: one for its own hog under the share, the other idle to move
    // the share to. When other work keeps a CPU busy (another test run, a CPU hog), the policy is
    // right not to move a share onto it, so the test could not tell anything: it says so and
    // skips, naming the load it measured.
    const busy = await busyFractions(['0', '1'], 500)
    if (busy.some((b) => b > 0.6)) {
      this.test!.title += ` (skipped: a CPU is busy with other work, CPU 0 ${Math.round(busy[0]! * 100)} %, CPU 1 ${Math.round(busy[1]! * 100)} %)`
      this.skip()
    }
  })
  afterEach(async () => {
    hog?.kill('SIGKILL')
    hog = undefined
    await c?.stop()
    c = undefined
  })
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  function startHog(cpu: string): ChildProcess {
    hog?.kill('SIGKILL')
    hog = spawn(tasksetPath(), ['-c', cpu, process.execPath, '-e', 'for(;;){}'], { stdio: 'ignore' })
    return hog
  }

  it('stops balancing migrations within one interval of threshold 3 → 1 (config file), and resumes them with `shoal config set`', async () => {
    const file = path.join(dir, 'shoal.yaml')
    fs.writeFileSync(file, 'balancer:\n  migrationThreshold: 3\n')
    c = await startCluster(nats.url, {
      hosts: [{ id: 'a', cpus: CPU.a, args: ['--slots', '1'] }, { id: 'b', cpus: CPU.b, args: ['--slots', '1'] }],
      balancerArgs: ['--config', file],
      env: { SHOAL_BALANCER_SPLIT_MIN_UNITS: '1000000000000' },
    })
    const cl = c
    const job = await cl.client.submit<number>({ processor: 'cpu-burn', range: [0, 50_000_000], shares: 1 })
    const hostOfShare = async () => (await job.fetch(true)).shares![0]!.host
    await cl.waitFor(async () => ((await job.fetch(true)).shares![0]!.unitsDone ?? 0) > 0, 20_000, 'the share running')
    const imbalanceMoves = async () => (await cl.client.status()).migrations.filter((m) => m.reason === 'imbalance' && m.ok).length
    // Poll slowly: this process floats onto the idle CPU, and its own polling there would read as
    // load on the very host the share should move to (the policy then rightly refuses the move).
    const POLL_MS = 250
    const why = async () => `\n--- balancer reasons when the wait began: ${((await cl.client.status()).balance?.reasons ?? []).join(' | ')}`

    // Threshold 3: a hog on the share's CPU makes the balancer move it to the idle host.
    const first = (await hostOfShare())!
    startHog(CPU[first]!)
    await cl.waitFor(async () => (await imbalanceMoves()) === 1, 20_000, `the first balancing migration${await why()}`, POLL_MS)
    const second = (await hostOfShare())!
    expect(second).to.not.equal(first)

    // Edit the file: threshold 1. Once the balancer has taken it, move the hog onto the share's new CPU.
    fs.writeFileSync(file, 'balancer:\n  migrationThreshold: 1\n')
    await cl.waitFor(async () => (await cl.client.settings())['balancer.migrationThreshold'] === 1, 5_000, 'the file change to be taken')
    // One interval for a pass already under way to finish, then the hog.
    await cl.waitFor(async () => (await cl.client.status()).balance?.threshold === 1, 3_000, 'a balancing pass at threshold 1')
    startHog(CPU[second]!)
    const until = Date.now() + 4_000 // four balancing intervals
    while (Date.now() < until) {
      expect(await imbalanceMoves(), 'a balancing migration at threshold 1').to.equal(1)
      await new Promise((r) => setTimeout(r, POLL_MS))
    }
    expect(await hostOfShare()).to.equal(second)

    // A bad value is refused, naming the key, and the old value stays.
    const bad = await runShoal(['config', 'set', 'balancer.migrationThreshold', '9'], cl.env)
    expect(bad.code).to.not.equal(0)
    expect(bad.stderr).to.include('balancer.migrationThreshold').and.include('1 to 5')
    const restartOnly = await cl.client.setSetting('pool.heartbeatMs', '100').catch((e: { code: string; message: string }) => e)
    expect(restartOnly).to.have.property('code', 'E_CONFIG')
    expect((restartOnly as { message: string }).message).to.include('restart')
    expect((await cl.client.settings())['balancer.migrationThreshold']).to.equal(1)

    // `shoal config set` back to 3: the balancer moves the share off the hogged CPU again.
    const set = await runShoal(['config', 'set', 'balancer.migrationThreshold', '3'], cl.env)
    expect(set.code, set.stderr).to.equal(0)
    expect(set.stdout).to.include('balancer.migrationThreshold: 1 → 3')
    await cl.waitFor(async () => (await imbalanceMoves()) === 2, 20_000, `a balancing migration after the threshold went back to 3${await why()}`, POLL_MS)
    expect(await hostOfShare()).to.equal(first)
  })
})
