/**
 * Behaviour of lib/balancer/core/policy.ts, the pure DRS-style balancing decision: DRS tolerated
 * imbalance, placement, mandatory moves (drain, constraints), balancing moves with their cost and
 * budgets, dynamic split, determinism, and a timing check at 1,000 hosts × 100,000 shares.
 * Property tests check, over random views, the invariants an applier relies on: no share in two
 * actions, no slot or memory over-commit, no draining or ineligible target, residency and
 * threshold 1 respected, budgets kept.
 *
 * Must never use timers or the clock inside a decision: plans are pure functions of their input
 * (the timing test measures around `decide`, not inside it).
 */
import { expect } from 'chai'
import fc from 'fast-check'
import {
  decide,
  drsPriority,
  equalisingFraction,
  minGoodness,
  toleratedImbalance,
  toleratedLoadGap,
  type Action,
  type ClusterView,
  type HostView,
  type Knobs,
  type Plan,
  type ShareView,
} from '../../lib/balancer/core/policy.ts'

const GiB = 2 ** 30
const NOW = 1_000_000

function host(hostId: string, over: Partial<HostView> = {}): HostView {
  return {
    hostId,
    slots: 4,
    cores: 4,
    memFreeBytes: 16 * GiB,
    tags: {},
    processors: new Set(['burn']),
    draining: false,
    externalLoad: 0,
    ...over,
  }
}

function running(shareId: string, hostId: string, over: Partial<ShareView> = {}): ShareView {
  return {
    shareId,
    jobId: 'job-1',
    processor: 'burn',
    status: 'running',
    host: hostId,
    position: 0,
    to: 100_000,
    unitsPerSec: 100,
    cpuDemand: 1,
    checkpointBytes: 1024,
    lastMovedAt: null,
    busy: false,
    ...over,
  }
}

function pending(shareId: string, over: Partial<ShareView> = {}): ShareView {
  return running(shareId, '', { status: 'pending', host: null, unitsPerSec: 0, cpuDemand: 0, ...over })
}

/** Default knobs, with splits off (huge splitMinUnits) so balancing examples show moves alone. */
function knobs(over: Partial<Knobs> = {}): Knobs {
  return { migrationThreshold: 3, minResidencyMs: 10_000, maxMovesPerCycle: 8, maxConcurrentMigrationsPerHost: 2, splitMinUnits: 1e12, ...over }
}

function many(prefix: string, count: number, hostId: string, over: Partial<ShareView> = {}): ShareView[] {
  return Array.from({ length: count }, (_, i) => running(`${prefix}${i}`, hostId, over))
}

function kinds(plan: Plan, kind: Action['kind']): Action[] {
  return plan.actions.filter((a) => a.kind === kind)
}

function migrations(plan: Plan) {
  return plan.actions.filter((a): a is Extract<Action, { kind: 'migrate' }> => a.kind === 'migrate')
}

function splits(plan: Plan) {
  return plan.actions.filter((a): a is Extract<Action, { kind: 'split' }> => a.kind === 'split')
}

describe('balancer decide (DRS-style policy)', () => {
  describe('DRS thresholds', () => {
    it('tolerates σ up to (5 − T)·0.1/√H, so for 4 hosts ∞, 0.15, 0.10, 0.05 and 0 at T = 1..5', () => {
      expect(toleratedImbalance(1, 4)).to.equal(Infinity)
      expect(toleratedImbalance(2, 4)).to.be.closeTo(0.15, 1e-12)
      expect(toleratedImbalance(3, 4)).to.be.closeTo(0.1, 1e-12)
      expect(toleratedImbalance(4, 4)).to.be.closeTo(0.05, 1e-12)
      expect(toleratedImbalance(5, 4)).to.equal(0)
    })

    it('also acts on a most-to-least loaded gap above 30/20/10/5 % at T = 2..5, never at T = 1', () => {
      expect([1, 2, 3, 4, 5].map((t) => toleratedLoadGap(t as Knobs['migrationThreshold']))).to.deep.equal([Infinity, 0.3, 0.2, 0.1, 0.05])
    })

    it('gives DRS priorities 6 − ceil(σ√H / 0.1), and a minimum goodness that shrinks as T grows', () => {
      expect(drsPriority(0.12, 4)).to.equal(3)
      expect(drsPriority(0.5, 4)).to.equal(1)
      const g = [2, 3, 4, 5].map((t) => minGoodness(t as Knobs['migrationThreshold'], 4, 0.2))
      expect(g[0]).to.be.greaterThan(g[1]!)
      expect(g[1]).to.be.greaterThan(g[2]!)
      expect(g[2]).to.be.greaterThan(g[3]!)
      expect(minGoodness(1, 4, 0.2)).to.equal(Infinity)
      // Scale-free: the floor falls with H·σ like the σ cut of a single move does.
      expect(minGoodness(3, 1000, 0.02)).to.be.closeTo(minGoodness(3, 4, 5), 1e-15)
    })

    it('reports the normalised loads, σ and the tolerated imbalance of the view', () => {
      const plan = decide({ hosts: [host('a', { externalLoad: 0.5 }), host('b')], shares: many('s', 2, 'a') }, knobs(), NOW)
      expect(plan.normalisedLoads).to.deep.equal({ a: 1, b: 0 })
      expect(plan.imbalance).to.be.closeTo(0.5, 1e-12)
      expect(plan.toleratedImbalance).to.be.closeTo(0.2 / Math.SQRT2, 1e-12)
    })
  })

  describe('placement', () => {
    it('places a pending share on the least loaded host, ties by hostId', () => {
      const plan = decide({ hosts: [host('b'), host('a', { externalLoad: 0.25 }), host('c')], shares: [pending('p0'), pending('p1')] }, knobs(), NOW)
      expect(plan.actions).to.deep.equal([
        { kind: 'place', shareId: 'p0', hostId: 'b', reason: 'place' },
        { kind: 'place', shareId: 'p1', hostId: 'c', reason: 'place' },
      ])
    })

    it('prefers the host where a new share runs fastest (measured core speed)', () => {
      const shares = [running('f0', 'fast', { unitsPerSec: 300 }), running('s0', 'slow', { unitsPerSec: 100 }), pending('p0')]
      const plan = decide({ hosts: [host('slow'), host('fast')], shares }, knobs(), NOW)
      expect(kinds(plan, 'place')).to.deep.equal([{ kind: 'place', shareId: 'p0', hostId: 'fast', reason: 'place' }])
    })

    it('never places on a draining host, one without the processor or tags, or without slot or memory', () => {
      const hosts = [
        host('drain', { draining: true }),
        host('noproc', { processors: new Set(['other']) }),
        host('notag', { tags: { gpu: 'no' } }),
        host('full', { slots: 1, tags: { gpu: 'yes' } }),
        host('nomem', { tags: { gpu: 'yes' }, memFreeBytes: 1 }),
        host('ok', { tags: { gpu: 'yes' }, externalLoad: 0.9 }),
      ]
      const shares = [running('r', 'full', { requiredTags: { gpu: 'yes' } }), pending('p0', { requiredTags: { gpu: 'yes' }, memoryBytes: GiB })]
      const plan = decide({ hosts, shares }, knobs(), NOW)
      expect(kinds(plan, 'place')).to.deep.equal([{ kind: 'place', shareId: 'p0', hostId: 'ok', reason: 'place' }])
    })

    it('tells apart required tags whose keys and values would read alike joined with = (a: "b=c" against "a=b": "c")', () => {
      const hosts = [host('one', { slots: 1, tags: { a: 'b=c' } }), host('two', { slots: 1, tags: { 'a=b': 'c' } })]
      const shares = [pending('p1', { jobId: 'j1', requiredTags: { a: 'b=c' } }), pending('p2', { jobId: 'j2', requiredTags: { 'a=b': 'c' } })]
      const plan = decide({ hosts, shares }, knobs(), NOW)
      expect(kinds(plan, 'place').map((a) => `${a.shareId} ${(a as { hostId: string }).hostId}`).sort()).to.deep.equal(['p1 one', 'p2 two'])
    })

    it('spreads a spread job: at most ceil(shares / eligible hosts) per host', () => {
      const hosts = [host('a', { slots: 8, cores: 8 }), host('b', { slots: 8, cores: 2 })]
      const shares = Array.from({ length: 6 }, (_, i) => pending(`p${i}`, { spread: true }))
      const plan = decide({ hosts, shares }, knobs(), NOW)
      const per: Record<string, number> = {}
      for (const a of kinds(plan, 'place')) per[(a as { hostId: string }).hostId] = (per[(a as { hostId: string }).hostId] ?? 0) + 1
      expect(per).to.deep.equal({ a: 3, b: 3 })
    })

    it('spreads 4 shares over 3 hosts as 2/1/1, not 2/2/0, even when one host is much faster', () => {
      const hosts = [host('fast', { coreSpeed: 3 }), host('mid', { coreSpeed: 2 }), host('slow', { coreSpeed: 0.5 })]
      const shares = Array.from({ length: 4 }, (_, i) => pending(`p${i}`, { spread: true }))
      const per: Record<string, number> = {}
      for (const a of kinds(decide({ hosts, shares }, knobs(), NOW), 'place')) per[(a as { hostId: string }).hostId] = (per[(a as { hostId: string }).hostId] ?? 0) + 1
      expect(per).to.deep.equal({ fast: 2, mid: 1, slow: 1 })
    })

    it('retries a share away from the hosts it failed on, and there only when no other host qualifies', () => {
      const hosts = [host('a'), host('b', { externalLoad: 0.5 }), host('c', { processors: new Set(['other']) })]
      const away = decide({ hosts, shares: [pending('p0', { avoidHosts: ['a'] })] }, knobs(), NOW)
      expect(kinds(away, 'place')).to.deep.equal([{ kind: 'place', shareId: 'p0', hostId: 'b', reason: 'place' }])
      const onlyThere = decide({ hosts: [host('a'), hosts[2]!], shares: [pending('p0', { avoidHosts: ['a'] })] }, knobs(), NOW)
      expect(kinds(onlyThere, 'place')).to.deep.equal([{ kind: 'place', shareId: 'p0', hostId: 'a', reason: 'place' }])
      // b qualifies but is full: the share waits for b rather than going back to a.
      const full = decide({ hosts: [host('a'), host('b', { slots: 1 })], shares: [running('r', 'b'), pending('p0', { avoidHosts: ['a'] })] }, knobs(), NOW)
      expect(kinds(full, 'place')).to.deep.equal([])
    })

    it('says why a pending share waits', () => {
      const plan = decide({ hosts: [host('a')], shares: [pending('p0', { processor: 'nope' })] }, knobs(), NOW)
      expect(plan.actions).to.deep.equal([])
      expect(plan.reasons.join('\n')).to.contain("no live host runs processor 'nope'")
      expect(plan.waiting).to.deep.equal({ 'job-1': "no live host runs processor 'nope'" })
    })
  })

  describe('mandatory moves', () => {
    it('moves shares off a draining host even at threshold 1, and the draining host gets nothing', () => {
      const shares = [...many('d', 2, 'drain'), pending('p0')]
      const plan = decide({ hosts: [host('drain', { draining: true }), host('a'), host('b')], shares }, knobs({ migrationThreshold: 1 }), NOW)
      expect(migrations(plan).map((m) => [m.shareId, m.fromHost, m.reason])).to.deep.equal([
        ['d0', 'drain', 'drain'],
        ['d1', 'drain', 'drain'],
      ])
      expect(plan.actions.some((a) => (a.kind === 'migrate' ? a.toHost : a.kind === 'place' ? a.hostId : a.toHost) === 'drain')).to.equal(false)
      expect(plan.normalisedLoads).to.not.have.property('drain')
    })

    it('moves a share whose host lost a required tag or its processor (constraint), ignoring residency', () => {
      const shares = [
        running('t', 'a', { requiredTags: { zone: 'x' }, lastMovedAt: NOW - 1 }),
        running('p', 'b', { processor: 'count-primes' }),
      ]
      const hosts = [host('a', { tags: { zone: 'y' } }), host('b'), host('c', { tags: { zone: 'x' }, processors: new Set(['burn', 'count-primes']) })]
      const plan = decide({ hosts, shares }, knobs({ migrationThreshold: 1 }), NOW)
      expect(migrations(plan).map((m) => [m.shareId, m.toHost, m.reason])).to.deep.equal([
        ['t', 'c', 'constraint'],
        ['p', 'c', 'constraint'],
      ])
    })

    it('moves the excess shares of a spread job off a host that has more than its cap', () => {
      const shares = many('s', 4, 'a', { spread: true })
      const plan = decide({ hosts: [host('a'), host('b')], shares }, knobs({ migrationThreshold: 1 }), NOW)
      expect(migrations(plan).map((m) => [m.fromHost, m.toHost, m.reason])).to.deep.equal([
        ['a', 'b', 'constraint'],
        ['a', 'b', 'constraint'],
      ])
    })

    it('sheds shares that declared memory off a host under memory pressure, largest first, even at threshold 1', () => {
      const hosts = [host('tight', { memTotalBytes: 16 * GiB, memFreeBytes: 0.5 * GiB }), host('roomy', { memTotalBytes: 16 * GiB })]
      const shares = [running('small', 'tight', { memoryBytes: GiB }), running('big', 'tight', { memoryBytes: 2 * GiB }), running('none', 'tight')]
      const plan = decide({ hosts, shares }, knobs({ migrationThreshold: 1 }), NOW)
      // 0.8 GiB (5 %) must be free: moving 'big' (2 GiB) is enough; 'small' and 'none' stay.
      expect(migrations(plan).map((m) => [m.shareId, m.toHost, m.reason])).to.deep.equal([['big', 'roomy', 'constraint']])
      expect(plan.reasons.join('\n')).to.contain('tight under memory pressure')
      // With enough memory free, nothing moves.
      const fine = decide({ hosts: [host('tight', { memTotalBytes: 16 * GiB, memFreeBytes: 4 * GiB }), hosts[1]!], shares }, knobs({ migrationThreshold: 1 }), NOW)
      expect(migrations(fine)).to.deep.equal([])
    })

    it('keeps within maxMovesPerCycle and maxConcurrentMigrationsPerHost, counting busy shares', () => {
      const shares = [...many('d', 6, 'drain'), running('busy', 'drain', { busy: true })]
      const hosts = [host('drain', { draining: true, slots: 8 }), host('a'), host('b')]
      const plan = decide({ hosts, shares }, knobs({ maxConcurrentMigrationsPerHost: 3 }), NOW)
      expect(migrations(plan)).to.have.length(2) // 1 busy + 2 new = 3 on the draining host
      const plan2 = decide({ hosts, shares }, knobs({ maxConcurrentMigrationsPerHost: 100, maxMovesPerCycle: 4 }), NOW)
      expect(migrations(plan2)).to.have.length(4)
      expect(plan2.reasons.join('\n')).to.contain('maxMovesPerCycle')
    })
  })

  describe('balancing moves', () => {
    // Host a: 6 one-core shares on 4 cores (load 1.5); host b: one share (load 0.25).
    const overloaded = (): ClusterView => ({ hosts: [host('a', { slots: 8 }), host('b')], shares: [...many('a', 6, 'a', { unitsPerSec: 66 }), running('b0', 'b')] })

    it('sheds load from an overloaded host to an idle one at T = 3', () => {
      const plan = decide(overloaded(), knobs(), NOW)
      const moves = migrations(plan)
      expect(moves.length).to.be.greaterThan(0)
      for (const m of moves) {
        expect(m).to.include({ fromHost: 'a', toHost: 'b', reason: 'imbalance' })
        expect(m.goodness).to.be.greaterThan(m.cost)
      }
      expect(plan.projectedImbalance).to.be.lessThan(plan.imbalance)
    })

    it('does not balance at T = 1', () => {
      const plan = decide(overloaded(), knobs({ migrationThreshold: 1 }), NOW)
      expect(plan.actions).to.deep.equal([])
      expect(plan.reasons.join('\n')).to.contain('threshold 1')
    })

    it('moves a share away from a host where a hog (external load 0.9) takes the CPU', () => {
      const view: ClusterView = { hosts: [host('hog', { externalLoad: 0.9 }), host('b'), host('c')], shares: [...many('h', 2, 'hog', { unitsPerSec: 35 }), running('b0', 'b'), running('c0', 'c')] }
      const moves = migrations(decide(view, knobs(), NOW))
      expect(moves.length).to.be.greaterThan(0)
      expect(moves[0]).to.include({ fromHost: 'hog', reason: 'imbalance' })
    })

    it('does not move a share moved 1 s ago when minResidencyMs is 10 s', () => {
      const view = overloaded()
      view.shares = view.shares.map((s) => ({ ...s, lastMovedAt: NOW - 1000 }))
      const plan = decide(view, knobs({ minResidencyMs: 10_000 }), NOW)
      expect(migrations(plan)).to.deep.equal([])
      expect(plan.reasons.join('\n')).to.contain('minResidencyMs')
      expect(migrations(decide(view, knobs({ minResidencyMs: 500 }), NOW)).length).to.be.greaterThan(0)
    })

    it('does nothing in a balanced cluster', () => {
      const view: ClusterView = { hosts: [host('a'), host('b'), host('c')], shares: [...many('a', 3, 'a'), ...many('b', 3, 'b'), ...many('c', 3, 'c')] }
      const plan = decide(view, knobs({ migrationThreshold: 5 }), NOW)
      expect(plan.actions).to.deep.equal([])
      expect(plan.reasons.join('\n')).to.contain('balanced')
    })

    it('does not move shares that already get all the CPU they want (no speed-up to win)', () => {
      // a is at load 1.0, b idle: σ is large but moving a share would only cost a stun.
      const view: ClusterView = { hosts: [host('a'), host('b')], shares: many('a', 4, 'a') }
      const plan = decide(view, knobs({ migrationThreshold: 5 }), NOW)
      expect(migrations(plan)).to.deep.equal([])
      expect(plan.reasons.join('\n')).to.contain('no balancing move pays')
    })

    it('moves a share to a host with faster cores when that pays', () => {
      const view: ClusterView = {
        hosts: [host('slow'), host('fast')],
        shares: [...many('s', 4, 'slow', { unitsPerSec: 100 }), running('f0', 'fast', { unitsPerSec: 300 })],
      }
      const moves = migrations(decide(view, knobs({ migrationThreshold: 3 }), NOW))
      expect(moves.length).to.be.greaterThan(0)
      expect(moves[0]).to.include({ fromHost: 'slow', toHost: 'fast' })
    })

    it('weighs a target\'s external load by what it takes from the share there, not by a cap on total load', () => {
      // b's other work wants 3 of its 4 cores: 1.25 after the move, yet a's shares get only half a
      // core each (load 2), so the moved share runs at 0.8 there and the pool does more.
      const view: ClusterView = { hosts: [host('a', { slots: 8 }), host('b', { externalLoad: 0.75 })], shares: [...many('a', 8, 'a', { unitsPerSec: 50 }), running('b0', 'b')] }
      const moves = migrations(decide(view, knobs({ migrationThreshold: 5 }), NOW))
      expect(moves).to.have.length.greaterThan(0)
      expect(moves.every((m) => m.fromHost === 'a' && m.toHost === 'b')).to.equal(true)
    })

    it('never gives a target more Shoal demand than its cores plus a little headroom', () => {
      // b runs 4 half-core shares on 2 cores and has free slots; a is overloaded by one-core shares.
      const view: ClusterView = {
        hosts: [host('a', { slots: 8 }), host('b', { cores: 2, slots: 8 })],
        shares: [...many('a', 8, 'a', { unitsPerSec: 50 }), ...many('b', 4, 'b', { cpuDemand: 0.5, jobId: 'io' })],
      }
      const plan = decide(view, knobs({ migrationThreshold: 5 }), NOW)
      expect(migrations(plan)).to.deep.equal([])
      expect(plan.reasons.join('\n')).to.match(/more Shoal demand than 1\.1 × its cores/)
    })

    it('does not move a lone share between two idle hosts because of stray load', () => {
      const one = { slots: 1, cores: 1 }
      const view: ClusterView = { hosts: [host('a', { ...one, externalLoad: 0.04 }), host('b', { ...one, externalLoad: 0.03 })], shares: [running('s', 'a')] }
      expect(migrations(decide(view, knobs({ migrationThreshold: 5 }), NOW))).to.deep.equal([])
    })

    it('moves a one-core share off a hogged one-core host onto an idle one that measures a little stray load', () => {
      const one = { slots: 1, cores: 1 }
      const view: ClusterView = { hosts: [host('hogged', { ...one, externalLoad: 0.5 }), host('idle', { ...one, externalLoad: 0.05 })], shares: [running('s', 'hogged')] }
      expect(migrations(decide(view, knobs(), NOW)).map((m) => [m.shareId, m.toHost, m.reason])).to.deep.equal([['s', 'idle', 'imbalance']])
    })

    it('moves a hogged share onto an idle host that carries steady stray load (0.3 of its core)', () => {
      // The hog's demand, inferred on the saturated core, is a whole core: the share gets half of it.
      const one = { slots: 1, cores: 1 }
      const view: ClusterView = {
        hosts: [host('hogged', { ...one, externalLoad: 1, externalNoise: 0.1 }), host('idle', { ...one, externalLoad: 0.3, externalNoise: 0.05 })],
        shares: [running('s', 'hogged')],
      }
      expect(migrations(decide(view, knobs(), NOW)).map((m) => [m.shareId, m.toHost])).to.deep.equal([['s', 'idle']])
    })

    it('does not move a share for a gain that lies within the hosts\' noise', () => {
      // Read as exact, 0.3 of stray load on a's core makes b the better home; with readings that
      // jitter by 0.2 either way, the gain may be nothing but a lucky reading.
      const one = { slots: 1, cores: 1 }
      const hosts = (noise: number) => [host('a', { ...one, externalLoad: 0.3, externalNoise: noise }), host('b', { ...one, slots: 2, externalLoad: 0, externalNoise: noise })]
      const shares = [running('s', 'a')]
      expect(migrations(decide({ hosts: hosts(0), shares }, knobs(), NOW))).to.have.length(1)
      expect(migrations(decide({ hosts: hosts(0.2), shares }, knobs(), NOW))).to.deep.equal([])
    })

    it('counts a share\'s demand noise in its host\'s load noise', () => {
      const one = { slots: 1, cores: 1 }
      const view = (demandNoise: number): ClusterView => ({
        hosts: [host('a', { ...one, externalLoad: 0.3 }), host('b', { ...one, slots: 2 })],
        shares: [running('s', 'a', { cpuDemandNoise: demandNoise })],
      })
      expect(migrations(decide(view(0), knobs(), NOW))).to.have.length(1)
      expect(migrations(decide(view(0.2), knobs(), NOW))).to.deep.equal([])
    })

    it('refuses a move whose stun costs more than it wins: a huge checkpoint on a nearly finished share', () => {
      const view = overloaded()
      view.shares = view.shares.map((s) => (s.host === 'a' ? { ...s, position: 99_990, checkpointBytes: 512 * 2 ** 20 } : s))
      expect(migrations(decide(view, knobs(), NOW))).to.deep.equal([])
    })

    it('prefers the share that is cheapest to move when goodness ties', () => {
      const view = overloaded()
      view.shares = view.shares.map((s) => (s.shareId === 'a3' ? { ...s, checkpointBytes: 10 } : s))
      expect(migrations(decide(view, knobs({ maxMovesPerCycle: 1 }), NOW))[0]?.shareId).to.equal('a3')
    })
  })

  describe('dynamic split', () => {
    const splitKnobs = (over: Partial<Knobs> = {}) => knobs({ splitMinUnits: 1000, ...over })

    it('gives an idle slot the tail of the share with the most remaining time', () => {
      const view: ClusterView = {
        hosts: [host('a', { slots: 2 }), host('idle', { slots: 1 })],
        shares: [
          running('short', 'a', { position: 0, to: 50_000, unitsPerSec: 100 }),
          running('long', 'a', { position: 0, to: 80_000, unitsPerSec: 100 }),
        ],
      }
      const plan = decide(view, splitKnobs(), NOW)
      expect(splits(plan)).to.have.length(1)
      expect(splits(plan)[0]).to.include({ shareId: 'long', hostId: 'a', toHost: 'idle', reason: 'split' })
    })

    it('ranks by remaining time, not remaining units: a slow share with fewer units can be longer', () => {
      const view: ClusterView = {
        hosts: [host('a', { slots: 1 }), host('b', { slots: 1 }), host('idle', { slots: 1 })],
        shares: [
          running('many-fast', 'a', { jobId: 'j1', to: 60_000, unitsPerSec: 100 }),
          running('few-slow', 'b', { jobId: 'j2', to: 40_000, unitsPerSec: 10 }),
        ],
      }
      expect(splits(decide(view, splitKnobs(), NOW))[0]?.shareId).to.equal('few-slow')
    })

    it('gives the faster host the larger part, equalising expected finish times', () => {
      const view: ClusterView = {
        hosts: [host('slow', { slots: 1 }), host('fast', { slots: 2 })],
        shares: [running('s', 'slow', { unitsPerSec: 100 }), running('f', 'fast', { to: 1000, unitsPerSec: 300 })],
      }
      const s = splits(decide(view, splitKnobs(), NOW))
      expect(s).to.have.length(1)
      expect(s[0]).to.include({ shareId: 's', toHost: 'fast' })
      expect(s[0]!.fraction).to.be.closeTo(0.75, 1e-9) // 300 / (100 + 300)
      expect(equalisingFraction(100, 300)).to.be.closeTo(0.75, 1e-12)
    })

    it('clamps the fraction to [0.1, 0.9]', () => {
      const view: ClusterView = {
        hosts: [host('slow', { slots: 1 }), host('fast', { slots: 2 })],
        shares: [running('s', 'slow', { unitsPerSec: 10 }), running('f', 'fast', { to: 1000, unitsPerSec: 1000 })],
      }
      expect(splits(decide(view, splitKnobs(), NOW))[0]!.fraction).to.equal(0.9)
    })

    it('refuses to split a share with fewer than 2 × splitMinUnits remaining', () => {
      const view: ClusterView = { hosts: [host('a', { slots: 1 }), host('idle', { slots: 1 })], shares: [running('s', 'a', { position: 10_000, to: 11_999 })] }
      expect(splits(decide(view, splitKnobs({ splitMinUnits: 1000 }), NOW))).to.deep.equal([])
      view.shares = [running('s', 'a', { position: 10_000, to: 12_000 })]
      expect(splits(decide(view, splitKnobs({ splitMinUnits: 1000 }), NOW))).to.have.length(1)
    })

    it('does not split onto a free slot of a host whose CPU its own shares already fill', () => {
      // 'busy' has 4 slots on 2 cores, both cores taken by its two shares: its free slots are not idle capacity.
      const hosts = [host('src', { slots: 1, cores: 1 }), host('busy', { slots: 4, cores: 2 })]
      const shares = [running('long', 'src', { to: 1_000_000 }), ...many('b', 2, 'busy', { jobId: 'job-2' })]
      const plan = decide({ hosts, shares }, knobs({ splitMinUnits: 1000 }), NOW)
      expect(splits(plan)).to.deep.equal([])
      // The same slot on a host with a core to spare takes the tail.
      const spare = decide({ hosts: [hosts[0]!, host('busy', { slots: 4, cores: 3 })], shares }, knobs({ splitMinUnits: 1000 }), NOW)
      expect(splits(spare).map((a) => [a.shareId, a.toHost])).to.deep.equal([['long', 'busy']])
    })

    it('splits at every threshold, including 1 (a split interrupts nothing)', () => {
      const view: ClusterView = { hosts: [host('a', { slots: 1 }), host('idle', { slots: 1 })], shares: [running('s', 'a')] }
      expect(splits(decide(view, splitKnobs({ migrationThreshold: 1 }), NOW))).to.have.length(1)
    })

    it('may split onto the same host when the idle slot is there', () => {
      const view: ClusterView = { hosts: [host('a', { slots: 2 })], shares: [running('s', 'a')] }
      const s = splits(decide(view, splitKnobs(), NOW))
      expect(s).to.have.length(1)
      expect(s[0]).to.include({ hostId: 'a', toHost: 'a' })
      expect(s[0]!.fraction).to.be.closeTo(0.5, 1e-9)
    })

    it('skips shares of a job that has never been measured', () => {
      const view: ClusterView = { hosts: [host('a', { slots: 1 }), host('idle', { slots: 1 })], shares: [running('s', 'a', { unitsPerSec: 0 })] }
      expect(splits(decide(view, splitKnobs(), NOW))).to.deep.equal([])
    })

    it('places pending shares before splitting: a slot a pending share fits is not idle', () => {
      const view: ClusterView = { hosts: [host('a', { slots: 1 }), host('idle', { slots: 1 })], shares: [running('s', 'a'), pending('p')] }
      const plan = decide(view, splitKnobs(), NOW)
      expect(plan.actions).to.deep.equal([{ kind: 'place', shareId: 'p', hostId: 'idle', reason: 'place' }])
    })

    it('makes at most one split per idle slot and per share, and the migration budget does not hold splits back', () => {
      const view: ClusterView = { hosts: [host('a', { slots: 2 }), host('idle', { slots: 8 })], shares: many('s', 2, 'a') }
      expect(splits(decide(view, splitKnobs(), NOW))).to.have.length(2)
      const wide: ClusterView = { hosts: [host('a', { slots: 8, cores: 8 }), host('idle', { slots: 3, cores: 3 })], shares: many('s', 8, 'a') }
      expect(splits(decide(wide, splitKnobs({ maxMovesPerCycle: 1 }), NOW))).to.have.length(3)
    })
  })

  describe('host speeds', () => {
    it('fits job rates and core speeds together, so a slow host is not mistaken for a slow job', () => {
      // Job x runs on fast and mid, job y on mid and slow: only a joint fit ranks fast > mid > slow.
      const view: ClusterView = {
        hosts: [host('fast'), host('mid'), host('slow')],
        shares: [
          running('x1', 'fast', { jobId: 'x', unitsPerSec: 400 }),
          running('x2', 'mid', { jobId: 'x', unitsPerSec: 200 }),
          running('y1', 'mid', { jobId: 'y', unitsPerSec: 50 }),
          running('y2', 'slow', { jobId: 'y', unitsPerSec: 25 }),
        ],
      }
      const k = decide(view, knobs(), NOW).coreSpeeds
      expect(k.fast! / k.mid!).to.be.closeTo(2, 0.05)
      expect(k.mid! / k.slow!).to.be.closeTo(2, 0.05)
    })

    it('uses a remembered coreSpeed for a host with no measured share', () => {
      const view: ClusterView = {
        hosts: [host('a', { slots: 1 }), host('idle', { slots: 1, coreSpeed: 3 })],
        shares: [running('s', 'a', { unitsPerSec: 100 })],
      }
      const plan = decide(view, knobs({ splitMinUnits: 1000 }), NOW)
      expect(plan.coreSpeeds).to.deep.equal({ a: 1 })
      expect(splits(plan)[0]!.fraction).to.be.closeTo(0.75, 1e-9) // 3 / (1 + 3)
    })

    it('assumes an idle host of unknown speed is no faster than the source', () => {
      // Splitting: equal speeds, so half the tail. Balancing: no move from an uncontended host.
      const view: ClusterView = { hosts: [host('a', { slots: 1 }), host('idle', { slots: 1 })], shares: [running('s', 'a', { unitsPerSec: 100 })] }
      expect(splits(decide(view, knobs({ splitMinUnits: 1000 }), NOW))[0]!.fraction).to.be.closeTo(0.5, 1e-9)
      const slowSource: ClusterView = { hosts: [host('slow'), host('fast'), host('idle')], shares: [...many('s', 4, 'slow', { unitsPerSec: 100 }), running('f', 'fast', { unitsPerSec: 300 })] }
      const moves = migrations(decide(slowSource, knobs(), NOW))
      expect(moves.every((m) => m.toHost === 'fast')).to.equal(true)
    })
  })

  describe('determinism', () => {
    it('gives the same plan for the same input', () => {
      const view: ClusterView = {
        hosts: [host('a', { slots: 8, externalLoad: 0.3 }), host('b'), host('c', { draining: true })],
        shares: [...many('a', 7, 'a'), ...many('c', 2, 'c'), pending('p0'), pending('p1')],
      }
      expect(decide(view, knobs({ splitMinUnits: 100 }), NOW)).to.deep.equal(decide(view, knobs({ splitMinUnits: 100 }), NOW))
    })

    it('does not depend on the order hosts are listed in', () => {
      const shares = [...many('a', 7, 'a', { unitsPerSec: 60 }), running('b0', 'b'), pending('p0')]
      const hosts = [host('a', { slots: 8 }), host('b'), host('c'), host('d')]
      const p1 = decide({ hosts, shares }, knobs({ splitMinUnits: 100 }), NOW)
      const p2 = decide({ hosts: [...hosts].reverse(), shares }, knobs({ splitMinUnits: 100 }), NOW)
      expect(p2.actions).to.deep.equal(p1.actions)
    })
  })

  describe('properties over random views', () => {
    const PROCS = ['burn', 'count-primes']
    const arbHost = (i: number) =>
      fc.record({
        slots: fc.integer({ min: 1, max: 6 }),
        cores: fc.integer({ min: 1, max: 8 }),
        memFreeBytes: fc.constantFrom(0, GiB, 4 * GiB, 64 * GiB),
        zone: fc.constantFrom('x', 'y'),
        procs: fc.subarray(PROCS, { minLength: 1 }),
        draining: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
        externalLoad: fc.double({ min: 0, max: 1, noNaN: true }),
        coreSpeed: fc.option(fc.constantFrom(0.5, 1, 2), { nil: undefined }),
        // Some hosts advertise their memory, so memory-pressure moves are among what is checked.
        memTotalBytes: fc.option(fc.constantFrom(8 * GiB, 64 * GiB), { nil: undefined }),
      }).map((h): HostView => ({
        hostId: `h${String(i).padStart(2, '0')}`,
        slots: h.slots,
        cores: h.cores,
        memFreeBytes: h.memFreeBytes,
        tags: { zone: h.zone },
        processors: new Set(h.procs),
        draining: h.draining,
        externalLoad: h.externalLoad,
        ...(h.coreSpeed !== undefined ? { coreSpeed: h.coreSpeed } : {}),
        ...(h.memTotalBytes !== undefined ? { memTotalBytes: h.memTotalBytes } : {}),
      }))
    const arbJob = fc.record({
      processor: fc.constantFrom(...PROCS),
      zone: fc.option(fc.constantFrom('x', 'y'), { nil: undefined }),
      memoryBytes: fc.option(fc.constantFrom(GiB, 8 * GiB), { nil: undefined }),
      spread: fc.boolean(),
    })
    const arbShareSeed = fc.record({
      job: fc.nat(3),
      host: fc.option(fc.nat(9), { nil: undefined, freq: 4 }),
      position: fc.nat(50_000),
      length: fc.integer({ min: 1, max: 100_000 }),
      unitsPerSec: fc.oneof(fc.constant(0), fc.double({ min: 1, max: 1000, noNaN: true })),
      cpuDemand: fc.oneof(fc.constant(0), fc.double({ min: 0.1, max: 1.2, noNaN: true })),
      checkpointBytes: fc.nat(64 * 2 ** 20),
      movedAgo: fc.option(fc.nat(30_000), { nil: undefined }),
      busy: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    })
    const arbKnobs = fc.record({
      migrationThreshold: fc.constantFrom(1, 2, 3, 4, 5) as fc.Arbitrary<Knobs['migrationThreshold']>,
      minResidencyMs: fc.constantFrom(0, 5_000, 10_000),
      maxMovesPerCycle: fc.integer({ min: 0, max: 12 }),
      maxConcurrentMigrationsPerHost: fc.integer({ min: 1, max: 3 }),
      splitMinUnits: fc.constantFrom(1, 100, 10_000),
    })
    const arbView = fc
      .record({
        hostCount: fc.integer({ min: 1, max: 8 }),
        jobs: fc.array(arbJob, { minLength: 4, maxLength: 4 }),
        seeds: fc.array(arbShareSeed, { maxLength: 40 }),
      })
      .chain(({ hostCount, jobs, seeds }) =>
        fc.tuple(...Array.from({ length: hostCount }, (_, i) => arbHost(i))).map((hosts): ClusterView => ({
          hosts,
          shares: seeds.map((s, i): ShareView => {
            const job = jobs[s.job]!
            const onHost = s.host !== undefined && s.host < hosts.length ? hosts[s.host]! : undefined
            return {
              shareId: `s${String(i).padStart(3, '0')}`,
              jobId: `j${s.job}`,
              processor: job.processor,
              ...(job.zone ? { requiredTags: { zone: job.zone } } : {}),
              ...(job.memoryBytes ? { memoryBytes: job.memoryBytes } : {}),
              spread: job.spread,
              status: onHost ? 'running' : 'pending',
              host: onHost ? onHost.hostId : null,
              position: s.position,
              to: s.position + s.length,
              unitsPerSec: onHost ? s.unitsPerSec : 0,
              cpuDemand: onHost ? s.cpuDemand : 0,
              checkpointBytes: s.checkpointBytes,
              lastMovedAt: s.movedAgo === undefined ? null : NOW - s.movedAgo,
              busy: s.busy,
            }
          }),
        })),
      )

    function target(a: Action): string {
      return a.kind === 'place' ? a.hostId : a.toHost
    }

    it('keeps every invariant an applier relies on', () => {
      fc.assert(
        fc.property(arbView, arbKnobs, (view, k) => {
          const plan = decide(view, k, NOW)
          const byId = new Map(view.shares.map((s) => [s.shareId, s]))
          const hostById = new Map(view.hosts.map((h) => [h.hostId, h]))
          // No share in two actions; busy shares untouched; the action matches the share's state.
          const seen = new Set<string>()
          for (const a of plan.actions) {
            expect(seen.has(a.shareId), `share ${a.shareId} in two actions`).to.equal(false)
            seen.add(a.shareId)
            const s = byId.get(a.shareId)!
            expect(s.busy).to.equal(false)
            if (a.kind === 'place') expect(s.status).to.equal('pending')
            else {
              expect(s.status).to.equal('running')
              expect(a.kind === 'migrate' ? a.fromHost : a.hostId).to.equal(s.host)
            }
            const t = hostById.get(target(a))!
            // Never a draining host, never one without the processor or a required tag.
            expect(t.draining, `${a.kind} to draining ${t.hostId}`).to.equal(false)
            expect(t.processors.has(s.processor)).to.equal(true)
            for (const [key, v] of Object.entries(s.requiredTags ?? {})) expect(t.tags[key]).to.equal(v)
            if (a.kind === 'split') {
              expect(a.fraction).to.be.within(0.1, 0.9)
              expect(s.to - s.position).to.be.at.least(2 * k.splitMinUnits)
            }
            if (a.kind === 'migrate' && a.reason === 'imbalance') {
              expect(k.migrationThreshold).to.be.at.least(2)
              if (s.lastMovedAt !== null) expect(NOW - s.lastMovedAt).to.be.at.least(k.minResidencyMs)
              expect(a.goodness).to.be.greaterThan(a.cost)
            }
          }
          // No slot or memory over-commit; budgets.
          for (const h of view.hosts) {
            const run = view.shares.filter((s) => s.status === 'running' && s.host === h.hostId)
            const into = plan.actions.filter((a) => target(a) === h.hostId)
            expect(into.length, `slots of ${h.hostId}`).to.be.at.most(Math.max(0, h.slots - run.length))
            const mem = into.reduce((n, a) => n + (byId.get(a.shareId)!.memoryBytes ?? 0), 0)
            expect(mem).to.be.at.most(Math.max(0, h.memFreeBytes))
            const busy = run.filter((s) => s.busy).length
            const migr = plan.actions.filter((a) => a.kind === 'migrate' && (a.fromHost === h.hostId || a.toHost === h.hostId)).length
            expect(migr, `migrations at ${h.hostId}`).to.be.at.most(Math.max(0, k.maxConcurrentMigrationsPerHost - busy))
          }
          expect(migrations(plan).length).to.be.at.most(k.maxMovesPerCycle)
          // Determinism.
          expect(decide(view, k, NOW)).to.deep.equal(plan)
        }),
        { numRuns: 400 },
      )
    })

    it('at threshold 1 makes only mandatory moves, placements and splits', () => {
      fc.assert(
        fc.property(arbView, arbKnobs, (view, k) => {
          const plan = decide(view, { ...k, migrationThreshold: 1 }, NOW)
          for (const m of migrations(plan)) expect(m.reason).to.be.oneOf(['drain', 'constraint'])
        }),
        { numRuns: 300 },
      )
    })

    it('makes no move at all in a balanced cluster', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 10 }),
          fc.integer({ min: 1, max: 8 }),
          fc.integer({ min: 0, max: 8 }),
          fc.double({ min: 0, max: 1, noNaN: true }),
          arbKnobs,
          (hostCount, cores, perHost, ext, k) => {
            const hosts = Array.from({ length: hostCount }, (_, i) => host(`h${i}`, { slots: perHost, cores, externalLoad: ext }))
            const shares = hosts.flatMap((h) => many(`${h.hostId}-`, perHost, h.hostId))
            const plan = decide({ hosts, shares }, k, NOW)
            expect(plan.actions).to.deep.equal([])
          },
        ),
        { numRuns: 200 },
      )
    })
  })

  describe('scale', () => {
    it('decides for 1,000 hosts × 100,000 shares within 1 s', function () {
      this.timeout(30_000)
      const view = bigView(1000, 100_000)
      decide(view, knobs({ splitMinUnits: 1000 }), NOW) // warm-up (JIT)
      const t0 = process.hrtime.bigint()
      const plan = decide(view, knobs({ splitMinUnits: 1000 }), NOW)
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      expect(plan.actions.length).to.be.greaterThan(0)
      expect(ms, `decide took ${ms.toFixed(1)} ms`).to.be.below(1000)
    })
  })
})

/**
 * A large view with some structure: uneven hosts (2..64 cores, slots = cores), two hogs, a
 * draining host, three processors and a tag, mostly running shares plus a pending queue.
 * Deterministic (a linear congruential generator, not Math.random).
 */
function bigView(hostCount: number, shareCount: number): ClusterView {
  let x = 12345
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32)
  const hosts: HostView[] = Array.from({ length: hostCount }, (_, i) => {
    const cores = [2, 4, 8, 16, 32, 64][Math.floor(rnd() * 6)]!
    return host(`host-${String(i).padStart(4, '0')}`, {
      slots: cores,
      cores,
      tags: { zone: i % 2 ? 'a' : 'b' },
      processors: new Set(i % 10 === 0 ? ['burn'] : ['burn', 'count-primes']),
      externalLoad: i % 97 === 0 ? 0.9 : rnd() * 0.1,
      draining: i === 5,
    })
  })
  const slots = hosts.reduce((n, h) => n + h.slots, 0)
  const shares: ShareView[] = []
  const free = hosts.map((h) => h.slots)
  for (let i = 0; i < shareCount; i++) {
    const job = i % 100
    const h = Math.floor(rnd() * hostCount)
    const isRunning = i < slots * 0.9 && free[h]! > 0
    if (isRunning) free[h]! -= 1
    const position = Math.floor(rnd() * 50_000)
    shares.push({
      shareId: `job-${job}-s${i}`,
      jobId: `job-${job}`,
      processor: job % 3 === 0 ? 'count-primes' : 'burn',
      ...(job % 7 === 0 ? { requiredTags: { zone: 'a' } } : {}),
      spread: job % 11 === 0,
      status: isRunning ? 'running' : 'pending',
      host: isRunning ? hosts[h]!.hostId : null,
      position,
      to: position + 1000 + Math.floor(rnd() * 100_000),
      unitsPerSec: isRunning ? 50 + rnd() * 200 : 0,
      cpuDemand: isRunning ? 0.9 + rnd() * 0.1 : 0,
      checkpointBytes: Math.floor(rnd() * 2 ** 20),
      lastMovedAt: rnd() < 0.5 ? null : NOW - Math.floor(rnd() * 60_000),
      busy: rnd() < 0.01,
    })
  }
  return { hosts, shares }
}
