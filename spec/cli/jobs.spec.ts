/**
 * Jobs after submission, through the real CLI against a real cluster: `shoal job list | get | wait
 * | cancel | result`, honest resubmission (E_JOB_EXISTS), Ctrl-C on `submit --wait` detaching,
 * `config set` of a misspelt key, and the SDK's `client.job(id)`.
 */

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { shoalCommand } from '../../lib/cli/spawn.ts'
import { processorRef } from '../../lib/processors/define.ts'
import { useNatsServer } from '../support/nats.ts'
import { expectShoalError } from '../support/processes.ts'
import { runShoal } from '../support/shoal-cli.ts'
import { startCluster, type TestCluster } from '../support/cluster.ts'

const throwsFixture = fileURLToPath(new URL('../fixtures/processors/throws.ts', import.meta.url))

describe('job commands and honest submissions, through the CLI', function () {
  this.timeout(60_000)
  const nats = useNatsServer()
  let c: TestCluster
  const shoal = (...args: string[]) => runShoal(args, c.env)

  before(async () => {
    c = await startCluster(nats.url, { hosts: [{ id: 'h1', args: ['--processor', throwsFixture] }, { id: 'h2', args: ['--processor', throwsFixture] }] })
  })
  after(async () => c?.stop())

  it('lists, gets and waits for a finished job, with its shares, hosts and epochs in one JSON object', async () => {
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1_000_000], shares: 3 })
    expect(await job.result()).to.equal(78_498)
    const list = JSON.parse((await shoal('job', 'list', '--json')).stdout) as { jobs: Array<{ jobId: string }> }
    expect(list.jobs.map((j) => j.jobId)).to.include(job.id)
    const get = await shoal('job', 'get', job.id, '--json')
    expect(get.code).to.equal(0)
    const g = JSON.parse(get.stdout) as Record<string, unknown> & { shares: Array<Record<string, unknown>> }
    expect(g).to.include({ jobId: job.id, state: 'completed', result: 78_498, unitsDone: 1_000_000, unitsTotal: 1_000_000 })
    expect(g.shares).to.have.length(3)
    for (const s of g.shares) expect(s).to.have.all.keys('shareId', 'jobId', 'state', 'host', 'epoch', 'hosts', 'from', 'to', 'position', 'unitsDone')
    const wait = await shoal('job', 'wait', job.id, '--json')
    expect(wait.code).to.equal(0)
    expect(JSON.parse(wait.stdout)).to.include({ jobId: job.id, state: 'completed', result: 78_498 })
    const human = await shoal('job', 'get', job.id)
    expect(human.stdout).to.include('result: 78498').and.include('epoch 1')
    const result = await shoal('job', 'result', job.id)
    expect([result.code, result.stdout.trim()]).to.deep.equal([0, '78498'])
  })

  it('waits for a job that fails, and exits 1 with the processor\'s message printed once; it was not retried', async () => {
    const submitted = await shoal('submit', 'throws-at', '--range', '0:4000', '--input', '{"cursedUnit":77}', '--shares', '1')
    const id = submitted.stdout.trim()
    const wait = await shoal('job', 'wait', id)
    expect(wait.code).to.equal(1)
    expect(wait.stderr.split('unit 77 is cursed').length - 1, wait.stderr).to.equal(1)
    const g = JSON.parse((await shoal('job', 'get', id, '--json')).stdout) as { state: string; error: { code: string }; shares: Array<{ hosts: string[] }> }
    expect(g.state).to.equal('failed')
    expect(g.error.code).to.equal('E_JOB_FAILED')
    // E_PROCESSOR_THREW is not retryable unless the processor says so: one host, one attempt.
    expect(g.shares[0]!.hosts).to.have.length(1)
    expect((await shoal('job', 'result', id)).code).to.equal(1)
  })

  it('cancels a job that waits forever for a tag, and says a running job has no result yet (exit 2)', async () => {
    const waiting = (await shoal('submit', 'count-primes', '--range', '0:1000', '--tags', 'gpu=yes')).stdout.trim()
    expect((await shoal('job', 'result', waiting)).code).to.equal(2)
    const cancel = await shoal('job', 'cancel', waiting, '--json')
    expect(cancel.code).to.equal(0)
    expect(JSON.parse(cancel.stdout).state).to.equal('cancelled')
    const r = await shoal('job', 'result', waiting)
    expect(r.code).to.equal(1)
    expect(r.stderr).to.include('cancelled')
    expect((await shoal('job', 'get', 'no-such-job')).stderr).to.include('E_NO_SUCH_JOB')
  })

  it('refuses a job id reused with another range or input (E_JOB_EXISTS, naming it); the same submission again is the same job', async () => {
    const first = await c.client.submit<number>({ processor: 'count-primes', range: [0, 100_000], jobId: 'reuse-1' })
    expect(await first.result()).to.equal(9592)
    const err = await expectShoalError(c.client.submit({ processor: 'count-primes', range: [0, 200_000], jobId: 'reuse-1' }), 'E_JOB_EXISTS')
    expect(err.message).to.include('range')
    const err2 = await expectShoalError(c.client.submit({ processor: 'count-primes', range: [0, 100_000], input: { x: 1 }, jobId: 'reuse-1' }), 'E_JOB_EXISTS')
    expect(err2.message).to.include('input')
    const again = await c.client.submit<number>({ processor: 'count-primes', range: [0, 100_000], jobId: 'reuse-1' })
    expect(await again.result()).to.equal(9592)
  })

  it('submits through a typed processor reference, by the name it carries (spec/types/typed-submit.ts checks the types)', async () => {
    const job = await c.client.submit(processorRef<null, number>('count-primes'), { range: [0, 1_000_000], input: null, shares: 2 })
    const n: number = await job.result()
    expect(n).to.equal(78_498)
    expect((await job.fetch()).processor).to.equal('count-primes')
  })

  it('client.job(id) follows a job submitted elsewhere to its result', async () => {
    const id = (await shoal('submit', 'count-primes', '--range', '0:2000000', '--shares', '2')).stdout.trim()
    const job = await c.client.job<number>(id)
    expect(await job.result()).to.equal(148_933)
    await expectShoalError(c.client.job('never-submitted'), 'E_NO_SUCH_JOB')
  })

  it('Ctrl-C on submit --wait stops waiting and leaves the job running, saying how to reattach', async () => {
    // A job far longer than the test (it is cancelled at the end): 3·10⁸ units once finished
    // between the Ctrl-C and the check on a busy machine.
    const [exe, pre] = shoalCommand()
    const child = spawn(exe, [...pre, 'submit', 'count-primes', '--range', '0:6000000000', '--shares', '2', '--wait'], { env: c.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    let stdout = ''
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    const running = async () => (await c.client.status()).jobs.find((j) => j.processor === 'count-primes' && j.to === 6_000_000_000 && j.state === 'running')
    await c.waitFor(async () => (await running()) !== undefined, 20_000, 'the long job to run')
    const id = (await running())!.jobId
    // The CLI knows the job once it draws its progress line (on a pipe: the first one at once).
    await c.waitFor(() => stderr.includes(id) || child.exitCode !== null, 20_000, 'the CLI to show the job\'s progress')
    child.kill('SIGINT')
    expect(await exit).to.equal(130)
    expect(stderr).to.include(`shoal job wait ${id}`).and.include(`shoal job cancel ${id}`)
    expect(stdout).to.equal('')
    expect((await c.client.fetchJob(id)).state).to.equal('running')
    expect((await c.client.cancel(id)).state).to.equal('cancelled')
  })

  it('answers `config set` of a misspelt key with the key it probably meant', async () => {
    const r = await shoal('config', 'set', 'balancer.migrationTreshold', '2')
    expect(r.code).to.not.equal(0)
    expect(r.stderr).to.include('did you mean balancer.migrationThreshold')
    expect(r.stderr).not.to.include('restart')
  })
})
