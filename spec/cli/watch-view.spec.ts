/**
 * The frame `shoal status --watch` draws, from a plain status snapshot: load bars against a full
 * host, the imbalance against the tolerated imbalance, running jobs with progress, and recent
 * migrations newest first with reasons and stun times.
 */
import { expect } from 'chai'
import { renderWatch } from '../../lib/cli/watch-view.ts'
import type { ClusterStatus, HostSummary } from '../../lib/sdk/client.ts'

function host(hostId: string, over: Partial<HostSummary> = {}): HostSummary {
  return {
    hostId,
    state: 'alive',
    lastSeenMsAgo: 10,
    capacity: { slots: 2, cores: 2, memoryBytes: 1e9 },
    load: { cpuMachine: 0.5, cpuShoal: 0.4, memFreeBytes: 1e9, busySlots: 1, utilisation: 0.5 },
    tags: {},
    processors: ['count-primes'],
    shares: 1,
    draining: false,
    ...over,
  }
}

const st: ClusterStatus = {
  hosts: [host('h2', { draining: true }), host('h1', { shares: 2 })],
  jobs: [
    { jobId: 'j1', processor: 'count-primes', state: 'running', from: 0, to: 100, unitsTotal: 100, unitsDone: 25, sharesTotal: 4, sharesDone: 1, submittedAt: 0 },
    { jobId: 'j0', processor: 'cpu-burn', state: 'completed', from: 0, to: 10, unitsTotal: 10, unitsDone: 10, sharesTotal: 1, sharesDone: 1, submittedAt: 0 },
  ],
  rejected: {},
  migrations: [
    { shareId: 'j1-s0', jobId: 'j1', fromHost: 'h2', toHost: 'h1', reason: 'drain', epoch: 2, at: 1000, ok: true, stunMs: 6.25, pauseMs: 3, checkpointBytes: 10 },
    { shareId: 'j1-s1', jobId: 'j1', fromHost: 'h1', toHost: 'h2', reason: 'imbalance', epoch: 2, at: 2000, ok: true, stunMs: 12.5, pauseMs: 3, checkpointBytes: 10 },
  ],
  failovers: [],
  balance: { at: 0, threshold: 3, imbalance: 0.35, toleratedImbalance: 0.141, projectedImbalance: 0.1, loads: { h1: 1.2, h2: 0.5 }, reasons: ['1 balancing moves'], decideMs: 0.2, actions: { place: 0, migrate: 1, split: 0 }, splitsTotal: 4 },
}

describe('shoal status --watch view', () => {
  const frame = renderWatch(st, Date.UTC(2026, 11, 2, 6, 30, 0))
  const lines = frame.split('\n')

  it('heads with the time, the imbalance against the tolerated imbalance and the threshold', () => {
    expect(lines[0]).to.equal('shoal  06:30:00.000   imbalance 0.350 / tolerated 0.141 (ABOVE tolerated: balancing)   threshold 3   splits 4')
  })

  it('draws each host with a load bar full at load 1, marks overload and draining, and shows slots', () => {
    const h1 = lines.find((l) => l.startsWith('  h1'))!
    const h2 = lines.find((l) => l.startsWith('  h2'))!
    expect(h1).to.include('████████████████ 1.20>').and.include('2/2')
    expect(h2).to.include('drain').and.include('████████░░░░░░░░ 0.50 ')
    expect(lines.indexOf(h1)).to.be.below(lines.indexOf(h2))
  })

  it('shows running jobs with a progress bar and finished ones by state', () => {
    expect(frame).to.include('j1 count-primes').and.include('25.0%').and.include('shares 1/4  running')
    expect(frame).to.include('j0 cpu-burn     completed')
  })

  it('lists recent migrations newest first with reason and stun', () => {
    const i = lines.findIndex((l) => l.includes('j1-s1'))
    const j = lines.findIndex((l) => l.includes('j1-s0'))
    expect(i).to.be.greaterThan(0).and.below(j)
    expect(lines[i]).to.include('h1 → h2  imbalance').and.include('stun 12.5 ms')
  })

  it('says so when the balancer has made no pass yet, and at threshold 1', () => {
    expect(renderWatch({ ...st, balance: undefined }, 0).split('\n')[0]).to.include('no balancing pass yet')
    expect(renderWatch({ ...st, balance: { ...st.balance!, toleratedImbalance: null, threshold: 1 } }, 0).split('\n')[0]).to.include('threshold 1: mandatory moves only')
  })
})
