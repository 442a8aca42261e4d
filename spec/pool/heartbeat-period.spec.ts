/**
 * The heartbeat period a pool is asked to keep (lib/pool/heartbeat-period.ts), and what a host's
 * own period does to the times after which membership (lib/pool/membership.ts) suspects it and
 * declares it dead. Plain data: time is a number passed in.
 */

import { expect } from 'chai'
import fc from 'fast-check'
import { MAX_PERIOD_FACTOR, heartbeatPeriod, silenceFactor } from '../../lib/pool/heartbeat-period.ts'
import { Membership } from '../../lib/pool/membership.ts'
import type { Heartbeat } from '../../lib/protocol/messages.ts'

const hb = (hostId: string, seq: number, periodMs?: number): Heartbeat => ({
  v: 1,
  t: 'hb',
  hostId,
  seq,
  startedAt: 1,
  capacity: { slots: 1, cores: 1, memoryBytes: 1 },
  tags: {},
  processors: [],
  load: { cpuMachine: 0, cpuShoal: 0, memFreeBytes: 0, busySlots: 0, utilisation: 0 },
  shares: [],
  ...(periodMs === undefined ? {} : { periodMs }),
})

describe('heartbeat period', () => {
  it('stays pool.heartbeatMs for the default pool sizes: up to 500 hosts at 250 ms and 2,000 beats/s', () => {
    for (const n of [0, 1, 10, 100, 500]) expect(heartbeatPeriod(n, 250, 250, 2000), `${n} hosts`).to.equal(250)
  })

  it('doubles as the pool grows, keeping the rate under the cap: 2,000 hosts beat every second, 10,000 every 8 s', () => {
    expect(heartbeatPeriod(501, 250, 250, 2000)).to.equal(500)
    expect(heartbeatPeriod(2000, 250, 250, 2000)).to.equal(1000)
    expect(heartbeatPeriod(10_000, 250, 250, 2000)).to.equal(8000)
    expect(heartbeatPeriod(1e9, 250, 250, 2000), 'never past the longest period').to.equal(250 * MAX_PERIOD_FACTOR)
  })

  it('goes back down only with headroom, so a pool at the boundary does not flap', () => {
    // 1,000 hosts at 500 ms is exactly the cap; at 250 ms it would be twice it.
    expect(heartbeatPeriod(1000, 500, 250, 2000)).to.equal(500)
    // 450 hosts at 250 ms would be 1,800/s: over 80 % of the cap, so 500 ms stays.
    expect(heartbeatPeriod(450, 500, 250, 2000)).to.equal(500)
    expect(heartbeatPeriod(400, 500, 250, 2000)).to.equal(250)
    expect(heartbeatPeriod(10, 8000, 250, 2000), 'a pool that shrank a lot').to.equal(250)
  })

  it('property: the rate is within the cap unless the period is at its longest, and the period is base × 2^k', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200_000 }), fc.constantFrom(20, 100, 250, 1000), fc.integer({ min: 1, max: 100_000 }), fc.nat(6), (hosts, base, max, k) => {
        const p = heartbeatPeriod(hosts, base * 2 ** k, base, max)
        const factor = p / base
        expect(Number.isInteger(Math.log2(factor))).to.equal(true)
        if (factor < MAX_PERIOD_FACTOR) expect((hosts * 1000) / p).to.be.at.most(max)
        // Stable: asking again with the answer gives the answer.
        expect(heartbeatPeriod(hosts, p, base, max)).to.equal(p)
      }),
    )
  })

  it('scales a host\'s silence by its own period, never below 1 or above the longest', () => {
    expect(silenceFactor(undefined, 250)).to.equal(1)
    expect(silenceFactor(250, 250)).to.equal(1)
    expect(silenceFactor(100, 250), 'a host beating faster gets no less time').to.equal(1)
    expect(silenceFactor(1000, 250)).to.equal(4)
    expect(silenceFactor(3_600_000, 250), 'a heartbeat cannot buy more than the longest period').to.equal(MAX_PERIOD_FACTOR)
  })

  it('membership suspects and kills a host by its own period: 4 × later at 1 s than at 250 ms', () => {
    const m = new Membership({ suspectAfterMs: 600, hostDeadMs: 1000, heartbeatMs: 250 })
    m.observe(hb('slow', 1, 1000), 0)
    m.observe(hb('fast', 1), 0)
    const states = (t: number) => (m.tick(t), [m.get('slow')!.state, m.get('fast')!.state])
    expect(states(700)).to.deep.equal(['alive', 'suspect'])
    expect(states(1000)).to.deep.equal(['alive', 'dead'])
    expect(states(2399)).to.deep.equal(['alive', 'dead'])
    expect(states(2400)).to.deep.equal(['suspect', 'dead'])
    expect(states(3999)).to.deep.equal(['suspect', 'dead'])
    expect(states(4000)).to.deep.equal(['dead', 'dead'])
  })

  it('membership takes the period of the newest heartbeat: a host that beats faster again is timed by it', () => {
    const m = new Membership({ suspectAfterMs: 600, hostDeadMs: 1000, heartbeatMs: 250 })
    m.observe(hb('h', 1, 2000), 0)
    m.observe(hb('h', 2, 250), 100)
    m.tick(700)
    expect(m.get('h')!.state).to.equal('suspect')
  })
})
