/**
 * jobs.retainMs and jobs.recordRetainMs with real processes: a finished job stays in the
 * balancer's memory for the first, then leaves it (status no longer lists it) while `job get`, the
 * SDK and a submission of the same id still find it in its records, across a balancer restart too;
 * after the second its records are deleted and its id may be used again. A job still running is
 * never forgotten, however long it runs.
 */

import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { Kvm } from '@nats-io/kv'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { useNatsServer } from '../support/nats.ts'
import { expectShoalError } from '../support/processes.ts'
import { runShoal } from '../support/shoal-cli.ts'
import { killAndWait, startCluster, type TestCluster } from '../support/cluster.ts'

// Memory keeps a finished job briefly; its records are kept long enough for the steps between on
// a busy machine (a CLI start, a balancer restart: each a few seconds at load 6).
const RETAIN_MS = 1500
const RECORD_RETAIN_MS = 20_000
const bigState = fileURLToPath(new URL('../fixtures/processors/big-state.ts', import.meta.url))

describe('finished jobs: in memory for jobs.retainMs, in the store for jobs.recordRetainMs', function () {
  this.timeout(90_000)
  const nats = useNatsServer()
  let c: TestCluster
  let nc: NatsConnection

  before(async () => {
    c = await startCluster(nats.url, { hosts: [{ id: 'h1', args: ['--processor', bigState] }], env: { SHOAL_JOBS_RETAIN_MS: String(RETAIN_MS), SHOAL_JOBS_RECORD_RETAIN_MS: String(RECORD_RETAIN_MS) } })
    nc = await connect({ servers: nats.url })
  })
  after(async () => {
    await nc?.close()
    await c?.stop()
  })

  it('answers from memory, then from the records (a restart too), then E_NO_SUCH_JOB with the records deleted; the id is free again', async () => {
    const s = new Subjects(c.cluster)
    const jobsKv = await new Kvm(nc).open(s.bucket('jobs'))
    const sharesKv = await new Kvm(nc).open(s.bucket('shares'))
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 100_000], shares: 2, jobId: 'kept-a-while' })
    // A second job whose record an operator deletes by hand once it left memory.
    const byHand = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1000], shares: 1, jobId: 'deleted-by-hand' })
    expect(await job.result()).to.equal(9592)
    expect(await byHand.result()).to.equal(168)
    const finished = await c.client.fetchJob(job.id, true)
    expect(finished.finishedAt).to.be.a('number')
    const shareIds = finished.shares!.map((sh) => sh.shareId)

    // Out of memory: status lists it no more, not before finishedAt + retainMs.
    const listed = async (id: string) => (await c.client.status()).jobs.some((j) => j.jobId === id)
    await c.waitFor(async () => !(await listed(job.id)) && !(await listed(byHand.id)), 30_000, 'the finished jobs to leave memory')
    expect(Date.now() - finished.finishedAt!).to.be.at.least(RETAIN_MS)

    // Read back from its records: the same job, shares and result, by the SDK and the CLI.
    const expectKept = async () => {
      const back = await c.client.fetchJob(job.id, true)
      expect(back).to.include({ jobId: job.id, state: 'completed', result: 9592, unitsDone: 100_000, sharesTotal: 2, sharesDone: 2, finishedAt: finished.finishedAt })
      expect(back.shares!.map((sh) => sh.shareId)).to.deep.equal(shareIds)
      expect(back.shares!.every((sh) => sh.state === 'done' && sh.position === sh.to)).to.equal(true)
    }
    await expectKept()
    const got = await runShoal(['job', 'get', job.id, '--json'], c.env)
    expect(got.code, got.stderr).to.equal(0)
    expect(JSON.parse(got.stdout)).to.include({ jobId: job.id, state: 'completed', result: 9592 })
    // A submission of the same id is the same job; another with something else is refused.
    expect(await (await c.client.submit<number>({ processor: 'count-primes', range: [0, 100_000], shares: 2, jobId: job.id })).result()).to.equal(9592)
    await expectShoalError(c.client.submit({ processor: 'count-primes', range: [0, 5], jobId: job.id }), 'E_JOB_EXISTS')

    // An archived job whose record was deleted by hand is gone, and its id is free at once.
    await jobsKv.delete(byHand.id)
    await expectShoalError(c.client.fetchJob(byHand.id), 'E_NO_SUCH_JOB')
    const renewed = await c.client.submit<number>({ processor: 'count-primes', range: [0, 100], shares: 1, jobId: byHand.id })
    expect(await renewed.result()).to.equal(25)

    // A new term reads the store: the job stays out of memory and is still found.
    const before = (await c.leader())!.pid
    await killAndWait(c.balancer!, 'SIGTERM')
    c.startBalancer()
    await c.waitFor(async () => (await c.leader().catch(() => undefined))?.pid !== before && (await c.leader().catch(() => undefined)) !== undefined, 30_000, 'the restarted balancer to lead')
    expect(await listed(job.id)).to.equal(false)
    await expectKept()

    // Past the record retention: gone, with its records, and its id free.
    let goneAt = 0
    await c.waitFor(async () => {
      const r = await c.client.fetchJob(job.id).then(() => false, (e: { code?: string }) => e.code === 'E_NO_SUCH_JOB')
      if (r) goneAt = Date.now()
      return r
    }, 60_000, 'the finished job to be forgotten')
    expect(goneAt - finished.finishedAt!).to.be.at.least(RECORD_RETAIN_MS)
    // The job submitted again under the hand-deleted id finished seconds later: still kept, the
    // old job's deletion did not take it.
    expect((await c.client.fetchJob(renewed.id)).result).to.equal(25)
    const cli = await runShoal(['job', 'get', job.id], c.env)
    expect(cli.code).to.not.equal(0)
    expect(cli.stderr).to.include('E_NO_SUCH_JOB')
    await c.waitFor(async () => (await jobsKv.get(job.id))?.operation !== 'PUT', 10_000, 'the job record to be deleted')
    for (const id of shareIds) expect((await sharesKv.get(id))?.operation, id).to.not.equal('PUT')

    // Another job under the same id: a new job, not E_JOB_EXISTS.
    const again = await c.client.submit<number>({ processor: 'count-primes', range: [0, 1000], shares: 1, jobId: 'kept-a-while' })
    expect(await again.result()).to.equal(168)
  })

  it('never forgets a job that runs longer than the retention', async () => {
    const job = await c.client.submit<number>({ processor: 'big-state', range: [0, 400], input: { bytesPerUnit: 1, msPerUnit: 15 }, shares: 1 })
    // Runs about 6 s, half again the retention; still there and exact at the end.
    expect(await job.result()).to.equal(400)
    expect((await c.client.fetchJob(job.id)).state).to.equal('completed')
    await expectShoalError(c.client.submit({ processor: 'count-primes', range: [0, 5], jobId: job.id }), 'E_JOB_EXISTS')
  })
})
