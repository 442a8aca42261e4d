/**
 * The ledger on plain records: named transitions, and — under any sequence of transitions, legal or
 * not (property tests with fast-check) — indexes that agree with the records, no share on two hosts,
 * and a refused transition that changes nothing.
 */

import { expect } from 'chai'
import fc from 'fast-check'
import { Ledger } from '../../lib/balancer/ledger.ts'
import type { JobRecord, ShareRecord } from '../../lib/balancer/store.ts'
import type { ShoalError } from '../../lib/errors.ts'

const job = (jobId: string): JobRecord => ({ jobId, processor: 'p', input: null, from: 0, to: 100, state: 'waiting', submittedAt: 0, nextShare: 0 })
const share = (jobId: string, i: number): ShareRecord => ({ shareId: `${jobId}-s${i}`, jobId, from: i * 10, to: i * 10 + 10, position: i * 10, status: 'pending', epoch: 0, host: null, hosts: [], unitsDone: 0, attempts: 0, failedOn: [], updatedAt: 0 })

/** Everything the indexes claim, recomputed from the records. */
function checkIndexes(l: Ledger, all: ShareRecord[], jobs: JobRecord[]): void {
  const held = all.filter((s) => l.share(s.shareId) === s)
  const hostsSeen = new Map<string, string>()
  for (const h of l.hostsRunning()) {
    const set = l.runningOn(h)
    expect(set.size, `host ${h} listed with no running share`).to.be.above(0)
    for (const s of set) {
      expect(s.status, `${s.shareId} indexed as running on ${h}`).to.equal('running')
      expect(s.host).to.equal(h)
      expect(hostsSeen.has(s.shareId), `${s.shareId} on two hosts`).to.equal(false)
      hostsSeen.set(s.shareId, h)
    }
  }
  for (const s of held) {
    if (s.status === 'running') expect(hostsSeen.get(s.shareId), `${s.shareId} running but not indexed`).to.equal(s.host)
    else if (s.status !== 'done') expect(s.host, `${s.shareId} is ${s.status} with a host`).to.equal(null)
  }
  const counts = { pending: 0, running: 0, done: 0, failed: 0, cancelled: 0 }
  for (const s of held) counts[s.status]++
  expect(l.shareCounts()).to.deep.equal(counts)
  expect(l.shareCount).to.equal(held.length)
  const heldJobs = jobs.filter((j) => l.job(j.jobId) === j)
  const jobCounts = { waiting: 0, running: 0, completed: 0, failed: 0, cancelled: 0 }
  for (const j of heldJobs) jobCounts[j.state]++
  expect(l.jobCounts()).to.deep.equal(jobCounts)
  expect(l.newestJobs(99).map((j) => j.jobId)).to.deep.equal(heldJobs.map((j) => j.jobId).reverse())
  expect([...l.openJobs()].map((j) => j.jobId).sort()).to.deep.equal(heldJobs.filter((j) => !['completed', 'failed', 'cancelled'].includes(j.state)).map((j) => j.jobId).sort())
  for (const j of heldJobs) {
    expect(l.sharesOf(j.jobId).map((s) => s.shareId)).to.deep.equal(held.filter((s) => s.jobId === j.jobId).map((s) => s.shareId))
    expect(l.doneCount(j.jobId)).to.equal(held.filter((s) => s.jobId === j.jobId && s.status === 'done').length)
  }
}

describe('ledger', () => {
  it('moves a share through pending → running → running elsewhere → done, with its epoch and hosts', () => {
    const l = new Ledger()
    const j = job('j')
    l.addJob(j)
    const s = share('j', 0)
    l.addShare(s)
    l.assign(s, 'h1', 1)
    expect([s.status, s.epoch, s.host, [...l.runningOn('h1')]]).to.deep.equal(['running', 1, 'h1', [s]])
    l.moveTo(s, 'h2', 2)
    expect([s.epoch, s.host, s.hosts, l.runningOn('h1').size, l.runningOn('h2').size]).to.deep.equal([2, 'h2', ['h1', 'h2'], 0, 1])
    l.finish(s, 42, 10, 3)
    expect([s.status, s.host, s.result, s.position, l.runningOn('h2').size]).to.deep.equal(['done', 'h2', 42, 10, 0])
    l.startJob(j)
    l.endJob(j, 'completed', 4)
    expect([...l.openJobs()]).to.deep.equal([])
    expect(l.forget('j')).to.deep.equal([s])
    expect([l.job('j'), l.share(s.shareId), l.shareCount]).to.deep.equal([undefined, undefined, 0])
  })

  it('lists the newest jobs first, skipping forgotten ones, also when an id comes back as a new job', () => {
    const l = new Ledger()
    const old = job('a')
    for (const j of [old, job('b'), job('c')]) l.addJob(j)
    l.endJob(old, 'completed', 1)
    l.forget('a')
    const again = job('a')
    l.addJob(again)
    expect(l.newestJobs(10).map((j) => j.jobId)).to.deep.equal(['a', 'c', 'b'])
    expect(l.newestJobs(10)[0]).to.equal(again)
    expect(l.newestJobs(1, (j) => j.jobId !== 'a').map((j) => j.jobId)).to.deep.equal(['c'])
    expect(l.jobCounts()).to.include({ waiting: 3, completed: 0 })
  })

  it('refuses a transition from the wrong state with E_INTERNAL, changing nothing', () => {
    const l = new Ledger()
    l.addJob(job('j'))
    const s = share('j', 0)
    l.addShare(s)
    const before = JSON.stringify(s)
    for (const bad of [() => l.requeue(s, 1), () => l.finish(s, 1, 1, 1), () => l.moveTo(s, 'h', 1)]) {
      expect(() => bad()).to.throw().that.satisfies((e: ShoalError) => e.code === 'E_INTERNAL')
      expect(JSON.stringify(s)).to.equal(before)
    }
    expect(() => l.forget('j')).to.throw(/it is waiting/)
    expect(() => l.addShare(share('nope', 0))).to.throw(/does not hold/)
  })

  it('keeps its indexes true under any sequence of transitions, legal or not (property)', () => {
    const hosts = ['h1', 'h2', 'h3']
    const op = fc.oneof(
      fc.record({ t: fc.constantFrom('assign', 'moveTo'), s: fc.nat(8), h: fc.constantFrom(...hosts) }),
      fc.record({ t: fc.constantFrom('requeue', 'finish', 'fail', 'cancel'), s: fc.nat(8) }),
      fc.record({ t: fc.constantFrom('endJob', 'forget', 'startJob'), j: fc.nat(2), state: fc.constantFrom('completed' as const, 'failed' as const, 'cancelled' as const) }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const l = new Ledger()
        const jobs = ['a', 'b', 'c'].map(job)
        const all: ShareRecord[] = []
        for (const j of jobs) {
          l.addJob(j)
          for (let i = 0; i < 3; i++) {
            const s = share(j.jobId, i)
            all.push(s)
            l.addShare(s)
          }
        }
        let now = 0
        for (const o of ops) {
          now++
          const s = 's' in o ? all[o.s]! : undefined
          const snapshot = s ? JSON.stringify(s) : ''
          try {
            if (o.t === 'assign') l.assign(s!, o.h, now)
            else if (o.t === 'moveTo') l.moveTo(s!, o.h, now)
            else if (o.t === 'requeue') l.requeue(s!, now)
            else if (o.t === 'finish') l.finish(s!, 1, 1, now)
            else if (o.t === 'fail') l.fail(s!, now)
            else if (o.t === 'cancel') l.cancel(s!, now)
            else if ('j' in o && o.t === 'startJob') l.startJob(jobs[o.j]!)
            else if ('j' in o && o.t === 'endJob') l.endJob(jobs[o.j]!, o.state, now)
            else if ('j' in o) l.forget(jobs[o.j]!.jobId)
          } catch (e) {
            expect((e as ShoalError).code).to.equal('E_INTERNAL')
            if (s) expect(JSON.stringify(s), 'a refused transition changed the share').to.equal(snapshot)
          }
          checkIndexes(l, all, jobs)
        }
      }),
      { numRuns: 300 },
    )
  })
})
