/**
 * fitStatus and AssignRefusals: plain data and a passed-in clock.
 */

import { expect } from 'chai'
import { AssignRefusals, BENCH_FIRST_MS, BENCH_MAX_MS, REFUSALS_BEFORE_BENCH } from '../../lib/balancer/assign-refusals.ts'
import { HISTORY_KEPT, fitStatus } from '../../lib/balancer/status-fit.ts'
import { Codec } from '../../lib/protocol/codec.ts'

const codec = new Codec(64 * 1024 * 1024)
const size = (r: unknown) => codec.sizeOf(r)

function status(hosts: number, jobs: number, sharesPerJob: number) {
  return {
    hosts: Array.from({ length: hosts }, (_, i) => ({ hostId: `host-${i}`, detail: 'x'.repeat(100) })),
    jobs: Array.from({ length: jobs }, (_, j) => ({ jobId: `j${j}`, shares: Array.from({ length: sharesPerJob }, (_, i) => ({ shareId: `j${j}-s${i}`, pad: 'y'.repeat(50) })) })),
    migrations: Array.from({ length: 50 }, (_, i) => ({ i })),
    failovers: Array.from({ length: 100 }, (_, i) => ({ i })),
    rejected: { a: 1 },
  }
}

describe('fitStatus', () => {
  it('returns a reply that fits as it is, with nothing omitted', () => {
    const r = status(3, 2, 4)
    expect(fitStatus(r, size, 1_000_000)).to.equal(r)
  })

  it('drops share lists first, and says how many', () => {
    const r = status(3, 50, 1000)
    const f = fitStatus(r, size, 200_000)
    expect(size(f)).to.be.at.most(200_000)
    expect(f.omitted).to.deep.include({ shares: 50_000, hosts: 0, jobs: 0 })
    expect(f.jobs).to.have.length(50)
  })

  it('then history, then hosts (keeping the first ones), until it fits', () => {
    const r = status(20_000, 10, 0)
    const f = fitStatus(r, size, 500_000)
    expect(size(f)).to.be.at.most(500_000)
    expect(f.migrations).to.have.length(HISTORY_KEPT)
    expect(f.omitted!.history).to.equal(50 - HISTORY_KEPT + 100 - HISTORY_KEPT)
    expect(f.hosts.length + f.omitted!.hosts).to.equal(20_000)
    expect(f.hosts[0]!.hostId).to.equal('host-0')
    expect(f.jobs).to.have.length(10)
  })
})

describe('fitStatus, when jobs weigh more than hosts', () => {
  it('cuts jobs with large results before it cuts the hosts', () => {
    const r = { ...status(20, 0, 0), jobs: Array.from({ length: 40 }, (_, j) => ({ jobId: `j${j}`, result: 'r'.repeat(20_000), shares: [] as unknown[] })) }
    const f = fitStatus(r, size, 300_000)
    expect(size(f)).to.be.at.most(300_000)
    expect(f.hosts).to.have.length(20)
    expect(f.omitted!.jobs).to.be.greaterThan(0)
  })
})

describe('AssignRefusals', () => {
  it('benches a host after refusals in a row, doubling up to the cap; an acceptance clears it', () => {
    const r = new AssignRefusals()
    let now = 1000
    const benches: number[] = []
    for (let round = 0; round < 8; round++) {
      for (let i = 1; i < REFUSALS_BEFORE_BENCH; i++) expect(r.hostRefused('h', now)).to.equal(undefined)
      const ms = r.hostRefused('h', now)!
      benches.push(ms)
      expect(r.benched(now + ms - 1).has('h')).to.equal(true)
      now += ms
      expect(r.benched(now).has('h')).to.equal(false)
    }
    expect(benches.slice(0, 3)).to.deep.equal([BENCH_FIRST_MS, BENCH_FIRST_MS * 2, BENCH_FIRST_MS * 4])
    expect(Math.max(...benches)).to.equal(BENCH_MAX_MS)
    r.hostAccepted('h')
    expect(r.hostRefused('h', now)).to.equal(undefined)
  })

  it('counts a share\'s refusals until it settles', () => {
    const r = new AssignRefusals()
    expect([r.shareRefused('s'), r.shareRefused('s'), r.shareRefused('t')]).to.deep.equal([1, 2, 1])
    r.shareSettled('s')
    expect(r.shareRefused('s')).to.equal(1)
  })
})
