/**
 * Placement (lib/balancer/core/steps/place.ts with place-homes.ts) against the rule it implements,
 * written out as a scan: each pending share, in view order, to the host it fits with the least
 * (−speed of a new share, load after, rank), a spread job's shares first to hosts with the fewest of
 * its shares. The shared heaps, the per-class heaps and the switch between them must never pick
 * another host than the scan does.
 *
 * Must never use timers or the clock.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import type { ClusterView, HostView, Knobs, ShareView } from '../../lib/balancer/core/cluster-view.ts'
import { PlanState } from '../../lib/balancer/core/plan-state.ts'
import { AVOIDS, BUSY, PENDING } from '../../lib/balancer/core/share-table.ts'
import { mandatory } from '../../lib/balancer/core/steps/mandatory.ts'
import { place } from '../../lib/balancer/core/steps/place.ts'

const GiB = 2 ** 30
const NOW = 1_000_000
const KNOBS: Knobs = { migrationThreshold: 3, minResidencyMs: 10_000, maxMovesPerCycle: 8, maxConcurrentMigrationsPerHost: 2, splitMinUnits: 1000 }

/** The placements the rule gives, by a scan of every host per share. */
function scan(view: ClusterView): string[] {
  const st = new PlanState(view, KNOBS, NOW)
  mandatory(st)
  const out: string[] = []
  const { flags, demand } = st.t
  for (let i = 0; i < st.shares.length; i++) {
    if ((flags[i]! & (PENDING | BUSY)) !== PENDING) continue
    const c = st.classOf(i)
    const s = st.shares[i]!
    const avoid = new Set(flags[i]! & AVOIDS ? s.avoidHosts : [])
    let others = false
    for (let h = 0; h < st.H; h++) if (st.eligible(h, c.elig) && !avoid.has(st.hosts[h]!.hostId)) others = true
    let best = -1
    let bestKey: number[] = []
    for (let h = 0; h < st.H; h++) {
      if ((others && avoid.has(st.hosts[h]!.hostId)) || !st.fits(h, c)) continue
      if (avoid.size > 0) {
        if (best < 0 || st.betterHome(h, best, demand[i]!)) best = h
        continue
      }
      const key = [(c.spreadJob >= 0 ? 1e6 * st.spreadCounts(c.spreadJob)[h]! : 0) - st.newShareSpeed(h, 1), st.load[h]! + 1 / st.m.cores[h]!, st.rank[h]!]
      if (best < 0 || key[0]! < bestKey[0]! || (key[0] === bestKey[0] && (key[1]! < bestKey[1]! || (key[1] === bestKey[1] && key[2]! < bestKey[2]!)))) {
        best = h
        bestKey = key
      }
    }
    if (best < 0) continue
    st.take(best, i, demand[i]!)
    out.push(`${s.shareId}→${st.hosts[best]!.hostId}`)
  }
  return out
}

function placed(view: ClusterView): string[] {
  const st = new PlanState(view, KNOBS, NOW)
  mandatory(st)
  const before = st.actions.length
  place(st)
  return st.actions.slice(before).map((a) => `${a.shareId}→${a.kind === 'place' ? a.hostId : '?'}`)
}

describe('placement by shared and per-class heaps', () => {
  const PROCS = ['burn', 'count-primes']
  const arbHost = (i: number) =>
    fc
      .record({
        slots: fc.integer({ min: 0, max: 6 }),
        cores: fc.integer({ min: 1, max: 8 }),
        memFreeBytes: fc.constantFrom(0, GiB, 4 * GiB, 64 * GiB),
        zone: fc.constantFrom('x', 'y'),
        procs: fc.subarray(PROCS, { minLength: 1 }),
        draining: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
        externalLoad: fc.double({ min: 0, max: 1.5, noNaN: true }),
        coreSpeed: fc.option(fc.constantFrom(0.5, 1, 2), { nil: undefined, freq: 3 }),
      })
      .map(
        (h): HostView => ({
          hostId: `h${String(i).padStart(2, '0')}`,
          slots: h.slots,
          cores: h.cores,
          memFreeBytes: h.memFreeBytes,
          tags: { zone: h.zone },
          processors: new Set(h.procs),
          draining: h.draining,
          externalLoad: h.externalLoad,
          ...(h.coreSpeed !== undefined ? { coreSpeed: h.coreSpeed } : {}),
        }),
      )
  const arbJob = fc.record({
    processor: fc.constantFrom(...PROCS),
    zone: fc.option(fc.constantFrom('x', 'y'), { nil: undefined }),
    memoryBytes: fc.option(fc.constantFrom(GiB, 8 * GiB), { nil: undefined, freq: 4 }),
    spread: fc.boolean(),
  })
  const arbShare = fc.record({
    job: fc.nat(4),
    host: fc.option(fc.nat(59), { nil: undefined, freq: 3 }),
    cpuDemand: fc.oneof(fc.constant(0), fc.double({ min: 0.1, max: 1.2, noNaN: true })),
    busy: fc.integer({ min: 0, max: 19 }).map((n) => n === 0),
    avoid: fc.option(fc.nat(59), { nil: undefined, freq: 15 }),
  })
  const arbView = fc
    .record({
      hostCount: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 60 })),
      jobs: fc.array(arbJob, { minLength: 5, maxLength: 5 }),
      shares: fc.array(arbShare, { maxLength: 300, size: 'max' }),
      // A host far faster than the rest (above SPREAD_WEIGHT / 10) turns the shared heaps off.
      fast: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    })
    .chain(({ hostCount, jobs, shares, fast }) =>
      fc.tuple(...Array.from({ length: hostCount }, (_, i) => arbHost(i))).map(
        (hosts): ClusterView => ({
          hosts: fast ? [{ ...hosts[0]!, coreSpeed: 3e5 }, ...hosts.slice(1)] : hosts,
          shares: shares.map((s, i): ShareView => {
            const job = jobs[s.job]!
            const onHost = s.host !== undefined && s.host < hosts.length ? hosts[s.host]! : undefined
            return {
              shareId: `s${String(i).padStart(3, '0')}`,
              jobId: `j${s.job}`,
              processor: job.processor,
              ...(job.zone ? { requiredTags: { zone: job.zone } } : {}),
              ...(job.memoryBytes ? { memoryBytes: job.memoryBytes } : {}),
              ...(!onHost && s.avoid !== undefined && s.avoid < hosts.length ? { avoidHosts: [hosts[s.avoid]!.hostId] } : {}),
              spread: job.spread,
              status: onHost ? 'running' : 'pending',
              host: onHost ? onHost.hostId : null,
              position: 0,
              to: 100_000,
              unitsPerSec: onHost ? 100 : 0,
              cpuDemand: onHost ? s.cpuDemand : 0,
              checkpointBytes: 0,
              lastMovedAt: null,
              busy: s.busy,
            }
          }),
        }),
      ),
    )

  it('places every share where a scan of all hosts would', () => {
    fc.assert(
      fc.property(arbView, (view) => {
        expect(placed(view)).to.deep.equal(scan(view))
      }),
      { numRuns: 300 },
    )
  })

  it('places a spread job on hosts deep in the order as a scan would', () => {
    // 80 idle hosts of one kind and a spread job of 400 shares: after the first 80 every host has a
    // share, and the job's later shares find hosts without one only past the shared heaps' budget.
    const hosts: HostView[] = Array.from({ length: 80 }, (_, i) => ({
      hostId: `h${String(i).padStart(2, '0')}`,
      slots: 8,
      cores: 4 + (i % 3),
      memFreeBytes: 64 * GiB,
      tags: {},
      processors: new Set(['burn']),
      draining: false,
      externalLoad: (i % 7) / 10,
    }))
    const share = (i: number, jobId: string, spread: boolean): ShareView => ({
      shareId: `${jobId}-${String(i).padStart(3, '0')}`,
      jobId,
      processor: 'burn',
      spread,
      status: 'pending',
      host: null,
      position: 0,
      to: 1000,
      unitsPerSec: 0,
      cpuDemand: 0,
      checkpointBytes: 0,
      lastMovedAt: null,
      busy: false,
    })
    const shares = Array.from({ length: 400 }, (_, i) => [share(i, 'spread', true), share(i, 'plain', false)]).flat()
    const view = { hosts, shares }
    const got = placed(view)
    expect(got.length).to.equal(640)
    expect(got).to.deep.equal(scan(view))
  })
})
