/**
 * The SDK's Job (lib/sdk/job.ts) with a fake backend: events are hints. Progress is taken as it
 * comes; a final state only from the balancer's own answer, so a forged `completed` event on the
 * job's subject cannot resolve `result()` (issue 10: it once returned 42 while the balancer still
 * said running).
 *
 * Must never use NATS: the backend is plain functions.
 */
import { expect } from 'chai'
import type { Subscription } from '@nats-io/transport-node'
import type { JobSummary } from '../../lib/protocol/messages.ts'
import { Job, type JobBackend } from '../../lib/sdk/job.ts'

function summary(over: Partial<JobSummary>): JobSummary {
  return { jobId: 'j1', processor: 'count-primes', state: 'running', unitsDone: 0, unitsTotal: 100, sharesDone: 0, sharesTotal: 2, submittedAt: 1, ...over } as JobSummary
}

function fake() {
  let onEvent: ((s: JobSummary) => void) | undefined
  let balancerSays = summary({})
  const fetches: number[] = []
  const backend: JobBackend = {
    fetch: async () => {
      fetches.push(Date.now())
      return balancerSays
    },
    cancel: async () => balancerSays,
    subscribe: (_id, cb) => {
      onEvent = cb
      return { unsubscribe: () => undefined } as unknown as Subscription
    },
  }
  return {
    backend,
    event: (s: JobSummary) => onEvent!(s),
    say: (s: JobSummary) => (balancerSays = s),
    fetches,
  }
}

/** Lets pending promise callbacks run. */
const settle = () => new Promise((r) => setImmediate(r))

describe('SDK job events', () => {
  it('take progress from events as it comes', async () => {
    const f = fake()
    const job = new Job('j1', f.backend)
    f.event(summary({ unitsDone: 40 }))
    expect(job.summary?.unitsDone).to.equal(40)
    job.close()
  })

  it('do not end a job on a completed event the balancer does not confirm, and ask the balancer', async () => {
    const f = fake()
    const job = new Job<number>('j1', f.backend)
    let resolved: unknown
    void job.result().then((r) => (resolved = r), () => undefined)
    f.event(summary({ state: 'completed', unitsDone: 100, result: 42 }))
    await settle()
    await settle()
    expect(f.fetches).to.have.length(1)
    expect(resolved).to.equal(undefined)
    expect(job.summary?.state).to.equal('running')
    // Once the balancer says so, the result is the balancer's, not the event's.
    f.say(summary({ state: 'completed', unitsDone: 100, result: 7 }))
    f.event(summary({ state: 'completed', unitsDone: 100, result: 42 }))
    expect(await job.result()).to.equal(7)
  })

  it('do not fail a job on a failed or cancelled event the balancer does not confirm', async () => {
    const f = fake()
    const job = new Job<number>('j1', f.backend)
    f.event(summary({ state: 'failed', error: { code: 'E_JOB_FAILED', message: 'forged', retryable: false } } as Partial<JobSummary>))
    f.event(summary({ state: 'cancelled' }))
    await settle()
    await settle()
    expect(job.summary?.state).to.equal('running')
    f.say(summary({ state: 'completed', unitsDone: 100, result: 3 }))
    f.event(summary({ state: 'cancelled' }))
    expect(await job.result()).to.equal(3)
  })
})
