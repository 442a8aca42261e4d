/**
 * Behaviour of lib/balancer/core/placement.ts, the pure initial placement: the share goes to the
 * eligible host with most free weighted capacity (ties by hostId), never past free slots or free
 * memory, never to a host without the processor, without a required tag, or draining; reasons for
 * unplaced shares; external load; determinism. A property test checks the invariants over random
 * pools and pending queues: no over-commit of slots or memory, no share placed twice, and no share
 * left unplaced while a host could have taken it.
 *
 * Must never use timers or the clock: the plan is a pure function of its input.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import {
  eligible,
  planPlacement,
  type PendingShare,
  type PlacementHost,
  type PlacementPlan,
} from '../../lib/balancer/core/placement.ts'

const GiB = 2 ** 30

function host(hostId: string, over: Partial<PlacementHost> = {}): PlacementHost {
  return {
    hostId,
    slots: 4,
    freeSlots: 4,
    cores: 4,
    memFreeBytes: 16 * GiB,
    externalLoad: 0,
    tags: {},
    processors: new Set(['count-primes']),
    draining: false,
    ...over,
  }
}

function share(n: number, over: Partial<PendingShare> = {}): PendingShare {
  return { shareId: `job-1-s${n}`, jobId: 'job-1', processor: 'count-primes', ...over }
}

function shares(count: number, over: Partial<PendingShare> = {}): PendingShare[] {
  return Array.from({ length: count }, (_, i) => share(i, over))
}

/** hostId → number of shares placed on it. */
function perHost(plan: PlacementPlan): Record<string, number> {
  const out: Record<string, number> = {}
  for (const p of plan.placements) out[p.hostId] = (out[p.hostId] ?? 0) + 1
  return out
}

describe('balancer planPlacement', () => {
  describe('choice of host', () => {
    it('places a share on the host with the most free slots when hosts are otherwise equal', () => {
      const plan = planPlacement([host('a', { freeSlots: 1 }), host('b', { freeSlots: 3 }), host('c', { freeSlots: 2 })], [share(0)])
      expect(plan.placements).to.deep.equal([{ shareId: 'job-1-s0', hostId: 'b' }])
      expect(plan.unplaced).to.deep.equal([])
    })

    it('weighs a free slot by the cores behind it, so 3 free slots of full cores beat 8 slots sharing 2 cores', () => {
      const thin = host('thin', { slots: 8, freeSlots: 8, cores: 2 }) // weight 8 × 0.25 = 2
      const full = host('full', { slots: 4, freeSlots: 3, cores: 8 }) // weight 3 × 1 = 3 (cores capped at 1 per slot)
      expect(planPlacement([thin, full], [share(0)]).placements[0]?.hostId).to.equal('full')
    })

    it('spreads shares across hosts as their free capacity shrinks', () => {
      const plan = planPlacement([host('a', { freeSlots: 4 }), host('b', { freeSlots: 2 })], shares(4))
      // a (4) → a (3 vs 2) → a (2 vs 2, tie → a) → b (1 vs 2)
      expect(plan.placements.map((p) => p.hostId)).to.deep.equal(['a', 'a', 'a', 'b'])
    })

    it('breaks ties by hostId, whatever the order of the hosts', () => {
      for (const order of [
        ['b', 'a', 'c'],
        ['c', 'b', 'a'],
        ['a', 'c', 'b'],
      ]) {
        const plan = planPlacement(
          order.map((id) => host(id, { freeSlots: 1 })),
          shares(3),
        )
        expect(plan.placements.map((p) => p.hostId), order.join(',')).to.deep.equal(['a', 'b', 'c'])
      }
    })

    it('prefers a host with less external load', () => {
      const plan = planPlacement([host('a', { externalLoad: 0.5 }), host('b', { externalLoad: 0.1 })], [share(0)])
      expect(plan.placements[0]?.hostId).to.equal('b')
    })

    it('lets external load outweigh free slots: 4 slots at 90% busy look smaller than 1 idle slot', () => {
      const plan = planPlacement([host('busy', { freeSlots: 4, externalLoad: 0.9 }), host('idle', { freeSlots: 1 })], [share(0)])
      expect(plan.placements[0]?.hostId).to.equal('idle')
    })

    it('still uses a host whose machine is fully busy when it is the only one with a free slot', () => {
      const plan = planPlacement([host('a', { externalLoad: 1 }), host('b', { freeSlots: 0 })], shares(2))
      expect(plan.placements.map((p) => p.hostId)).to.deep.equal(['a', 'a'])
    })

    it('places shares in the order given, so the oldest gets the last free slot', () => {
      const plan = planPlacement([host('a', { freeSlots: 1 })], [share(7), share(3)])
      expect(plan.placements).to.deep.equal([{ shareId: 'job-1-s7', hostId: 'a' }])
      expect(plan.unplaced.map((u) => u.shareId)).to.deep.equal(['job-1-s3'])
    })
  })

  describe('slots', () => {
    it('never places more shares on a host than it has free slots', () => {
      const plan = planPlacement([host('a', { freeSlots: 2 })], shares(3))
      expect(perHost(plan)).to.deep.equal({ a: 2 })
      expect(plan.unplaced).to.deep.equal([{ shareId: 'job-1-s2', jobId: 'job-1', reason: 'waiting for a free slot' }])
    })

    it('gives nothing to a host with no free slot', () => {
      const plan = planPlacement([host('a', { freeSlots: 0 })], [share(0)])
      expect(plan.placements).to.deep.equal([])
      expect(plan.unplaced[0]?.reason).to.include('free slot')
    })

    it('does not change the hosts it is given', () => {
      const hosts = [host('a', { freeSlots: 2, memFreeBytes: 4 * GiB })]
      const before = structuredClone(hosts)
      planPlacement(hosts, shares(2, { memoryBytes: GiB }))
      expect(hosts).to.deep.equal(before)
    })
  })

  describe('eligibility', () => {
    it('never places a share on a host without its processor, and names the processor when none has it', () => {
      const plan = planPlacement([host('a', { processors: new Set(['cpu-burn']) })], [share(0, { processor: 'sha-search' })])
      expect(plan.placements).to.deep.equal([])
      expect(plan.unplaced).to.have.length(1)
      expect(plan.unplaced[0]?.reason).to.include("'sha-search'")
    })

    it('picks the host that has the processor even when another has more room', () => {
      const plan = planPlacement(
        [host('big', { freeSlots: 16, slots: 16, cores: 16, processors: new Set(['cpu-burn']) }), host('small', { freeSlots: 1 })],
        [share(0)],
      )
      expect(plan.placements[0]?.hostId).to.equal('small')
    })

    it('never places a share on a host lacking a required tag or carrying another value for it', () => {
      const hosts = [
        host('untagged', { freeSlots: 8, slots: 8, cores: 8 }),
        host('wrong', { freeSlots: 8, slots: 8, cores: 8, tags: { zone: 'us', gpu: 'yes' } }),
        host('right', { freeSlots: 1, tags: { zone: 'eu', gpu: 'yes', extra: 'ok' } }),
      ]
      const plan = planPlacement(hosts, shares(2, { requiredTags: { zone: 'eu', gpu: 'yes' } }))
      expect(plan.placements).to.deep.equal([{ shareId: 'job-1-s0', hostId: 'right' }])
      expect(plan.unplaced[0]?.reason).to.equal('waiting for a free slot')
    })

    it('names the processor and the tags when no host carries the tags', () => {
      const plan = planPlacement([host('a')], [share(0, { requiredTags: { zone: 'eu', gpu: 'yes' } })])
      expect(plan.unplaced[0]?.reason).to.include("'count-primes'")
      expect(plan.unplaced[0]?.reason).to.include('zone=eu')
      expect(plan.unplaced[0]?.reason).to.include('gpu=yes')
    })

    it('never places a share on a draining host', () => {
      const plan = planPlacement([host('draining', { draining: true, freeSlots: 8, slots: 8, cores: 8 }), host('b', { freeSlots: 1 })], shares(2))
      expect(perHost(plan)).to.deep.equal({ b: 1 })
      expect(planPlacement([host('draining', { draining: true })], [share(0)]).placements).to.deep.equal([])
    })

    it('eligible() ignores free slots and memory but not processor, tags or draining', () => {
      expect(eligible(host('a', { freeSlots: 0, memFreeBytes: 0 }), share(0, { memoryBytes: GiB }))).to.equal(true)
      expect(eligible(host('a', { draining: true }), share(0))).to.equal(false)
      expect(eligible(host('a'), share(0, { processor: 'other' }))).to.equal(false)
      expect(eligible(host('a', { tags: { zone: 'eu' } }), share(0, { requiredTags: { zone: 'eu' } }))).to.equal(true)
      expect(eligible(host('a', { tags: { zone: 'eu' } }), share(0, { requiredTags: { zone: 'us' } }))).to.equal(false)
    })
  })

  describe('memory', () => {
    it('does not place a share on a host with less free memory than it needs', () => {
      const plan = planPlacement(
        [host('roomy', { freeSlots: 8, slots: 8, cores: 8, memFreeBytes: GiB }), host('fits', { freeSlots: 1, memFreeBytes: 4 * GiB })],
        [share(0, { memoryBytes: 2 * GiB })],
      )
      expect(plan.placements).to.deep.equal([{ shareId: 'job-1-s0', hostId: 'fits' }])
    })

    it('places a share needing exactly the free memory', () => {
      const plan = planPlacement([host('a', { memFreeBytes: 2 * GiB })], [share(0, { memoryBytes: 2 * GiB })])
      expect(plan.placements).to.have.length(1)
    })

    it('accounts memory across several placements on one host', () => {
      const plan = planPlacement([host('a', { freeSlots: 8, slots: 8, memFreeBytes: 3 * GiB })], shares(4, { memoryBytes: GiB }))
      expect(perHost(plan)).to.deep.equal({ a: 3 })
      expect(plan.unplaced).to.have.length(1)
      expect(plan.unplaced[0]?.shareId).to.equal('job-1-s3')
      expect(plan.unplaced[0]?.reason).to.include('memory')
      expect(plan.unplaced[0]?.reason).to.include(String(GiB))
    })

    it('moves on to another host once the first one runs out of memory', () => {
      const plan = planPlacement(
        [host('a', { freeSlots: 4, memFreeBytes: 2 * GiB }), host('b', { freeSlots: 1, memFreeBytes: 8 * GiB })],
        shares(3, { memoryBytes: GiB }),
      )
      expect(plan.placements.map((p) => p.hostId)).to.deep.equal(['a', 'a', 'b'])
    })

    it('places shares that state no memory need on a host with no free memory', () => {
      const plan = planPlacement([host('a', { memFreeBytes: 0 })], shares(2))
      expect(perHost(plan)).to.deep.equal({ a: 2 })
    })

    it('reports memory as the reason when a host had a free slot but too little memory, though another with memory was full', () => {
      const plan = planPlacement(
        [host('full', { freeSlots: 0, memFreeBytes: 8 * GiB }), host('small', { memFreeBytes: 0 })],
        [share(0, { memoryBytes: GiB })],
      )
      expect(plan.placements).to.deep.equal([])
      // 'small' had a free slot but too little memory: that is the reason to report.
      expect(plan.unplaced[0]?.reason).to.include('memory')
    })
  })

  describe('determinism', () => {
    it('gives the same plan for the same input', () => {
      const hosts = [
        host('a', { freeSlots: 2, externalLoad: 0.3 }),
        host('b', { freeSlots: 3, cores: 2, slots: 4 }),
        host('c', { freeSlots: 1, tags: { zone: 'eu' } }),
      ]
      const pending = [...shares(5), share(9, { requiredTags: { zone: 'eu' } }), share(10, { processor: 'nope' })]
      const first = planPlacement(hosts, pending)
      for (let i = 0; i < 5; i++) expect(planPlacement(hosts, pending)).to.deep.equal(first)
    })
  })

  describe('properties', () => {
    const PROCESSORS = ['p1', 'p2', 'p3']
    const hostArb = fc
      .record({
        slots: fc.integer({ min: 1, max: 8 }),
        used: fc.integer({ min: 0, max: 9 }),
        cores: fc.integer({ min: 1, max: 16 }),
        memFreeBytes: fc.integer({ min: 0, max: 8 }).map((g) => g * GiB),
        externalLoad: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
        zone: fc.constantFrom(undefined, 'eu', 'us'),
        processors: fc.subarray(PROCESSORS.slice(0, 2)),
        draining: fc.boolean(),
      })
      .map(({ slots, used, zone, processors, ...rest }): Omit<PlacementHost, 'hostId'> => ({
        ...rest,
        slots,
        freeSlots: slots - used, // may be negative: an over-full host, as after a restart
        tags: zone ? { zone } : {},
        processors: new Set(processors),
      }))
    const hostsArb = fc
      .array(hostArb, { minLength: 0, maxLength: 6 })
      .chain((hs) => fc.shuffledSubarray(['h0', 'h1', 'h2', 'h3', 'h4', 'h5'], { minLength: hs.length, maxLength: hs.length }).map((ids) => hs.map((h, i): PlacementHost => ({ ...h, hostId: ids[i]! }))))
    const pendingArb = fc.array(
      fc.record({
        processor: fc.constantFrom(...PROCESSORS),
        zone: fc.constantFrom(undefined, undefined, 'eu', 'us'),
        memoryBytes: fc.constantFrom(undefined, 0, GiB / 2, GiB, 3 * GiB),
      }),
      { maxLength: 30 },
    ).map((ps) =>
      ps.map((p, i): PendingShare => ({
        shareId: `job-${i % 3}-s${i}`,
        jobId: `job-${i % 3}`,
        processor: p.processor,
        requiredTags: p.zone ? { zone: p.zone } : undefined,
        memoryBytes: p.memoryBytes,
      })),
    )

    it('never over-commits slots or memory, places each share at most once, and leaves one unplaced only when no host could take it', () => {
      fc.assert(
        fc.property(hostsArb, pendingArb, (hosts, pending) => {
          const plan = planPlacement(hosts, pending)
          const byId = new Map(hosts.map((h) => [h.hostId, h]))

          // Every share is accounted for exactly once, in the order given.
          const placed = plan.placements.map((p) => p.shareId)
          expect(new Set(placed).size, 'no share placed twice').to.equal(placed.length)
          const all = [...placed, ...plan.unplaced.map((u) => u.shareId)]
          expect(all.slice().sort()).to.deep.equal(pending.map((p) => p.shareId).sort())

          // Replay in order against the capacity left at each share's turn.
          const slotsLeft = new Map(hosts.map((h) => [h.hostId, h.freeSlots]))
          const memLeft = new Map(hosts.map((h) => [h.hostId, h.memFreeBytes]))
          const where = new Map(plan.placements.map((p) => [p.shareId, p.hostId]))
          for (const s of pending) {
            const need = s.memoryBytes ?? 0
            const couldTake = hosts.filter((h) => eligible(h, s) && slotsLeft.get(h.hostId)! > 0 && memLeft.get(h.hostId)! >= need)
            const hostId = where.get(s.shareId)
            if (hostId === undefined) {
              expect(couldTake.map((h) => h.hostId), `${s.shareId} left unplaced`).to.deep.equal([])
              continue
            }
            const h = byId.get(hostId)!
            expect(couldTake.includes(h), `${s.shareId} on ${hostId}`).to.equal(true)
            expect(h.draining).to.equal(false)
            expect(h.processors.has(s.processor)).to.equal(true)
            slotsLeft.set(hostId, slotsLeft.get(hostId)! - 1)
            memLeft.set(hostId, memLeft.get(hostId)! - need)
          }

          // No over-commit, per host.
          const counts = perHost(plan)
          for (const h of hosts) {
            expect(counts[h.hostId] ?? 0, `placements on ${h.hostId}`).to.be.at.most(Math.max(0, h.freeSlots))
            const mem = plan.placements
              .filter((p) => p.hostId === h.hostId)
              .reduce((n, p) => n + (pending.find((s) => s.shareId === p.shareId)!.memoryBytes ?? 0), 0)
            expect(mem, `memory placed on ${h.hostId}`).to.be.at.most(Math.max(0, h.memFreeBytes))
          }
        }),
        { numRuns: 500 },
      )
    })

    it('gives the same plan whatever the order of the hosts', () => {
      const reorderedArb = hostsArb.chain((hosts) =>
        fc.shuffledSubarray(hosts, { minLength: hosts.length, maxLength: hosts.length }).map((reordered) => ({ hosts, reordered })),
      )
      fc.assert(
        fc.property(reorderedArb, pendingArb, ({ hosts, reordered }, pending) => {
          expect(planPlacement(reordered, pending)).to.deep.equal(planPlacement(hosts, pending))
        }),
        { numRuns: 300 },
      )
    })

    it('names the processor in the reason whenever no host could ever run the share', () => {
      fc.assert(
        fc.property(hostsArb, pendingArb, (hosts, pending) => {
          const plan = planPlacement(hosts, pending)
          for (const u of plan.unplaced) {
            const s = pending.find((p) => p.shareId === u.shareId)!
            expect(u.jobId).to.equal(s.jobId)
            if (!hosts.some((h) => eligible(h, s))) expect(u.reason).to.include(`'${s.processor}'`)
            else expect(u.reason).to.match(/free slot|free memory/)
          }
        }),
        { numRuns: 300 },
      )
    })
  })
})
