/**
 * Behaviour of lib/balancer/core/snapshot.ts (what the policy is shown of the balancer's records)
 * and lib/balancer/core/stun-model.ts (the migration cost learned from measured stuns). Plain
 * data, no NATS.
 */
import { expect } from 'chai'
import { buildClusterView, MIN_MEASURED_DEMAND, type LiveShare, type SnapshotHost, type SnapshotInput, type SnapshotJob, type SnapshotShare } from '../../lib/balancer/core/snapshot.ts'
import { learnStunCost, MIN_SAMPLES, SMALL_CHECKPOINT_BYTES } from '../../lib/balancer/core/stun-model.ts'

const MiB = 2 ** 20

function host(hostId: string, over: Partial<SnapshotHost> = {}, slots = 2): SnapshotHost {
  return {
    hostId,
    state: 'alive',
    heartbeat: { capacity: { slots, cores: 2 }, tags: {}, processors: ['burn'], load: { cpuMachine: 0.5, cpuShoal: 0.2, memFreeBytes: 1e9 } },
    ...over,
  }
}

const job: SnapshotJob = { jobId: 'j1', processor: 'burn', submittedAt: 10 }

function share(shareId: string, over: Partial<SnapshotShare> = {}): SnapshotShare {
  return { shareId, jobId: 'j1', to: 1000, position: 100, status: 'running', epoch: 1, host: 'a', ...over }
}

function input(over: Partial<SnapshotInput> & { shares?: SnapshotShare[]; jobs?: SnapshotJob[] } = {}): SnapshotInput {
  const shares = over.shares ?? []
  return {
    hosts: [host('a'), host('b')],
    draining: new Set(),
    incoming: new Map(),
    coreSpeeds: new Map(),
    jobs: [job],
    sharesOf: (jobId) => shares.filter((s) => s.jobId === jobId),
    live: new Map(),
    movedAt: new Map(),
    moving: new Set(),
    stun: {},
    ...over,
  }
}

describe('cluster view snapshot', () => {
  it('takes external load as machine CPU minus Shoal CPU, never below 0', () => {
    const v = buildClusterView(input({ hosts: [host('a'), host('b', { heartbeat: { ...host('b').heartbeat, load: { cpuMachine: 0.1, cpuShoal: 0.3, memFreeBytes: 1 } } })] }))
    const [a, b] = v.hosts.map((h) => h.externalLoad)
    expect(a).to.be.closeTo(0.3, 1e-12)
    expect(b).to.equal(0)
  })

  it('uses the live position, rate and CPU demand a heartbeat reported for the current epoch only', () => {
    const live = new Map<string, LiveShare>([
      ['cur', { epoch: 1, position: 500, unitsPerSec: 42, cpuDemand: 0.9 }],
      ['old', { epoch: 0, position: 900, unitsPerSec: 99, cpuDemand: 1 }],
    ])
    const v = buildClusterView(input({ shares: [share('cur'), share('old')], live }))
    const [cur, old] = v.shares
    expect([cur!.position, cur!.unitsPerSec, cur!.cpuDemand]).to.deep.equal([500, 42, 0.9])
    expect([old!.position, old!.unitsPerSec, old!.cpuDemand]).to.deep.equal([100, 0, 0])
  })

  it('keeps a measured idle share apart from an unmeasured one (0 means unknown to the policy)', () => {
    const live = new Map<string, LiveShare>([
      ['idle', { epoch: 1, position: 100, unitsPerSec: 1, cpuDemand: 0 }],
      ['new', { epoch: 1, position: 100, unitsPerSec: 0 }],
    ])
    const v = buildClusterView(input({ shares: [share('idle'), share('new')], live }))
    expect(v.shares.map((s) => s.cpuDemand)).to.deep.equal([MIN_MEASURED_DEMAND, 0])
  })

  it('takes slots promised to migrations and splits in flight off the target', () => {
    const v = buildClusterView(input({ incoming: new Map([['b', 1]]) }))
    expect(v.hosts.find((h) => h.hostId === 'b')!.slots).to.equal(1)
  })

  it('gives a suspect host no free slot and makes its shares busy, and leaves dead hosts and their shares out', () => {
    const hosts = [host('a', { state: 'suspect' }, 4), host('b'), host('gone', { state: 'dead' })]
    const v = buildClusterView(input({ hosts, shares: [share('s1'), share('s2', { host: 'gone' }), share('p', { status: 'pending', host: null })] }))
    expect(v.hosts.map((h) => h.hostId)).to.deep.equal(['a', 'b'])
    expect(v.hosts[0]!.slots).to.equal(1)
    expect(v.shares.map((s) => [s.shareId, s.busy])).to.deep.equal([
      ['s1', true],
      ['p', false],
    ])
  })

  it('carries job constraints, memory, spread and the hosts a retried share avoids', () => {
    const j: SnapshotJob = { ...job, requiredTags: { zone: 'a' }, memoryBytesPerShare: 5, spread: true }
    const v = buildClusterView(input({ jobs: [j], shares: [share('p', { status: 'pending', host: null, failedOn: ['b'] })] }))
    expect(v.shares[0]).to.include({ memoryBytes: 5, spread: true, host: null, status: 'pending' })
    expect(v.shares[0]!.requiredTags).to.deep.equal({ zone: 'a' })
    expect(v.shares[0]!.avoidHosts).to.deep.equal(['b'])
  })

  it('lists shares of older jobs first, skips finished shares, and marks shares being moved busy', () => {
    const jobs: SnapshotJob[] = [{ ...job, jobId: 'new', submittedAt: 20 }, { ...job, jobId: 'old', submittedAt: 5 }]
    const shares = [share('n1', { jobId: 'new', status: 'pending', host: null }), share('o1', { jobId: 'old' }), share('o2', { jobId: 'old', status: 'done' })]
    const v = buildClusterView(input({ jobs, shares, moving: new Set(['o1']), movedAt: new Map([['o1', 77]]) }))
    expect(v.shares.map((s) => s.shareId)).to.deep.equal(['o1', 'n1'])
    expect(v.shares[0]).to.include({ busy: true, lastMovedAt: 77 })
    expect(v.shares[1]!.lastMovedAt).to.equal(null)
  })

  it('charges a migration the checkpoint size, from the Object Store reference or the inline state', () => {
    const v = buildClusterView(input({ shares: [share('inline', { stateBytes: 300 }), share('big', { stateRef: { bytes: 5 * MiB }, stateBytes: 5 * MiB })] }))
    expect(v.shares.map((s) => s.checkpointBytes)).to.deep.equal([300, 5 * MiB])
  })

  it('passes remembered core speeds and the learned stun cost on', () => {
    const v = buildClusterView(input({ coreSpeeds: new Map([['a', 1.5]]), stun: { stunBaseMs: 7 } }))
    expect(v.hosts.find((h) => h.hostId === 'a')!.coreSpeed).to.equal(1.5)
    expect(v.hosts.find((h) => h.hostId === 'b')!.coreSpeed).to.equal(undefined)
    expect(v.stunBaseMs).to.equal(7)
    expect(v.stunMsPerMiB).to.equal(undefined)
  })
})

describe('learned stun cost', () => {
  const m = (stunMs: number, checkpointBytes: number, ok = true) => ({ ok, stunMs, checkpointBytes })

  it('learns nothing from fewer than MIN_SAMPLES migrations of a kind, so the defaults stay', () => {
    expect(learnStunCost([])).to.deep.equal({})
    expect(learnStunCost(Array.from({ length: MIN_SAMPLES - 1 }, () => m(5, 1024)))).to.deep.equal({})
  })

  it('takes the base from small checkpoints and the per-MiB part from large ones, by median', () => {
    const small = [m(4, 1024), m(6, 2048), m(5, 64 * 1024), m(500, 1024, false)]
    const large = [m(45, MiB), m(85, 2 * MiB), m(1000, 4 * MiB, false), m(25, MiB / 2)]
    const cost = learnStunCost([...small, ...large])
    expect(cost.stunBaseMs).to.equal(5)
    // (45 − 5) / 1, (85 − 5) / 2, (25 − 5) / 0.5 → 40, 40, 40
    expect(cost.stunMsPerMiB).to.equal(40)
    expect(SMALL_CHECKPOINT_BYTES).to.be.below(MiB / 2)
  })
})
