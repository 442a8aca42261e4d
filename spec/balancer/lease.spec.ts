/**
 * The leadership lease: one leader at a time by compare-and-set, a term that grows at every
 * takeover, takeover only after a whole lease of silence as the follower saw it, a frozen leader
 * that finds itself suspended and then deposed, and a follower's own outage that is not taken for
 * the leader's silence. In-memory KV and a hand-driven clock.
 */

import { expect } from 'chai'
import { Packr } from 'msgpackr'
import type { LeaseFence } from '../../lib/balancer/fence.ts'
import { Lease, LEASE_KEY, type LeaseRecord } from '../../lib/balancer/lease.ts'
import { FakeKv } from '../support/fake-kv.ts'

const packr = new Packr({ useRecords: false, mapsAsObjects: true })
const LEASE_MS = 1_000

class Contender {
  readonly lease: Lease
  fence: LeaseFence | undefined
  readonly events: string[] = []
  readonly renewals: Array<{ ms: number; lapsedMs: number }> = []

  constructor(
    readonly id: string,
    kv: FakeKv,
    clock: { t: number },
  ) {
    this.lease = new Lease({
      id,
      pid: 1,
      leaseMs: LEASE_MS,
      kv,
      encode: (r) => packr.pack(r),
      decode: (v) => packr.unpack(v) as LeaseRecord,
      now: () => clock.t,
      wallNow: () => 1_700_000_000_000 + clock.t,
      events: {
        elected: (f) => {
          this.fence = f
          this.events.push(`elected ${f.term}`)
        },
        deposed: (why) => this.events.push(`deposed: ${why}`),
        renewed: (ms, lapsedMs) => this.renewals.push({ ms, lapsedMs }),
      },
    })
  }
}

function setup() {
  const kv = new FakeKv('leader')
  const clock = { t: 0 }
  return { kv, clock, a: new Contender('a', kv, clock), b: new Contender('b', kv, clock) }
}

const record = (kv: FakeKv) => packr.unpack(kv.entries.get(LEASE_KEY)!.value) as LeaseRecord

describe('leadership lease', () => {
  it('elects exactly one of two balancers started together, with term 1', async () => {
    const { kv, a, b } = setup()
    await Promise.all([a.lease.step(), b.lease.step()])
    expect([a.lease.leading, b.lease.leading].filter(Boolean)).to.have.length(1)
    expect(record(kv).term).to.equal(1)
    const leader = a.lease.leading ? a : b
    expect(leader.events).to.deep.equal(['elected 1'])
    expect(leader.fence!.state()).to.equal('valid')
  })

  it('lets a follower take over only after the same revision stood for a whole lease, with term + 1', async () => {
    const { kv, clock, a, b } = setup()
    await a.lease.step()
    await b.lease.step() // b sees a's lease at t = 0
    clock.t = LEASE_MS - 1
    await b.lease.step()
    expect(b.lease.leading).to.equal(false)
    clock.t = LEASE_MS
    await b.lease.step()
    expect(b.lease.leading).to.equal(true)
    expect(b.events).to.deep.equal(['elected 2'])
    expect(record(kv)).to.include({ id: 'b', term: 2 })
  })

  it('takes over after a lease of silence even when the reads alternate between two replicas that number the record differently', async () => {
    const { kv, clock, a, b } = setup()
    await a.lease.step()
    kv.divergedBy = 1
    await b.lease.step()
    for (clock.t = 0; clock.t < LEASE_MS; clock.t += LEASE_MS / 10) await b.lease.step()
    expect(b.lease.leading).to.equal(false)
    // The same bytes under revisions r and r + 1: no renewal. b takes over at the first read of the
    // true revision once the lease has passed (a read of the diverged one conflicts and is retried).
    for (; clock.t <= LEASE_MS + LEASE_MS / 5 && !b.lease.leading; clock.t += LEASE_MS / 10) await b.lease.step()
    expect(b.lease.leading).to.equal(true)
    expect(record(kv)).to.include({ id: 'b', term: 2 })
  })

  it('does not take the alternating revisions of a diverged replica for a silent leader while it renews', async () => {
    const { kv, clock, a, b } = setup()
    await a.lease.step()
    kv.divergedBy = 1
    for (clock.t = 0; clock.t <= 5 * LEASE_MS; clock.t += LEASE_MS / 10) {
      await a.lease.step()
      await b.lease.step()
    }
    expect(b.lease.leading).to.equal(false)
    expect(a.lease.leading).to.equal(true)
  })

  it('never lets a follower take over while the leader renews', async () => {
    const { clock, a, b } = setup()
    await a.lease.step()
    for (clock.t = 0; clock.t <= 10 * LEASE_MS; clock.t += LEASE_MS / 10) {
      await a.lease.step()
      await b.lease.step()
    }
    expect(a.lease.leading).to.equal(true)
    expect(a.fence!.state()).to.equal('valid')
    expect(b.lease.leading).to.equal(false)
    expect(b.lease.term).to.equal(1)
  })

  it('says how long each renewal took, and how long the leader could not act when one came back after its lease', async () => {
    const { clock, a } = setup()
    await a.lease.step()
    clock.t = 200
    await a.lease.step()
    expect(a.renewals).to.deep.equal([{ ms: 0, lapsedMs: 0 }])
    // No renewal for 1.5 s (a busy event loop ran its timer late): valid until 200 + 1,000.
    clock.t = 1_700
    expect(a.fence!.state()).to.equal('suspended')
    await a.lease.step()
    expect(a.renewals.at(-1)).to.deep.equal({ ms: 0, lapsedMs: 500 })
    expect(a.fence!.state()).to.equal('valid')
  })

  it('finds a leader frozen past its lease suspended, and deposed by its next renewal once another took over', async () => {
    const { kv, clock, a, b } = setup()
    await a.lease.step()
    await b.lease.step()
    // a is frozen (SIGSTOP): it takes no steps while b waits out the lease and takes over.
    clock.t = LEASE_MS
    await b.lease.step()
    expect(b.lease.leading).to.equal(true)
    clock.t = LEASE_MS + 500
    expect(a.fence!.state()).to.equal('suspended')
    await a.lease.step() // SIGCONT: its renewal conflicts
    expect(a.lease.leading).to.equal(false)
    expect(a.fence!.state()).to.equal('revoked')
    expect(a.events.at(-1)).to.match(/^deposed: balancer b took over with term 2/)
    expect(record(kv)).to.include({ id: 'b', term: 2 })
  })

  it('keeps leading when its lease lapsed only because the store was away (nobody else could take it)', async () => {
    const { kv, clock, a, b } = setup()
    await a.lease.step()
    await b.lease.step()
    kv.getsFail = true
    kv.writesFail = true
    for (clock.t = 100; clock.t <= 3 * LEASE_MS; clock.t += 100) {
      await a.lease.step().catch(() => undefined)
      await b.lease.step().catch(() => undefined)
    }
    expect(a.fence!.state()).to.equal('suspended')
    kv.getsFail = false
    kv.writesFail = false
    // After the outage b has to see the lease unchanged for a whole lease again; a renews first.
    await b.lease.step()
    await a.lease.step()
    expect(a.fence!.state()).to.equal('valid')
    clock.t += LEASE_MS
    await b.lease.step()
    expect(b.lease.leading).to.equal(false)
    expect(a.events).to.deep.equal(['elected 1'])
  })

  it('gives the leader two leases to renew after the store could not take writes (reads alone came back first)', async () => {
    const { kv, clock, a, b } = setup()
    await a.lease.step()
    await b.lease.step()
    // An election: nobody can write, and for a while the standby cannot read either.
    kv.writesFail = true
    kv.getsFail = true
    for (clock.t = 100; clock.t < 2_000; clock.t += 100) {
      await a.lease.step().catch(() => undefined)
      await b.lease.step().catch(() => undefined)
    }
    // Replicas answer reads again (b sees the old revision from 2000) before writes work at 2900.
    kv.getsFail = false
    for (clock.t = 2_000; clock.t < 2_900; clock.t += 100) {
      await b.lease.step()
      await a.lease.step().catch(() => undefined)
    }
    kv.writesFail = false
    // The race of the chaos run: the standby steps first once writes work, a lease after it saw the
    // revision. It must not take the lease; the leader's renewal that follows keeps it.
    for (clock.t = 3_000; clock.t <= 6_000; clock.t += 100) {
      await b.lease.step()
      await a.lease.step()
    }
    expect(b.lease.leading).to.equal(false)
    expect(a.fence!.state()).to.equal('valid')
    expect(a.events).to.deep.equal(['elected 1'])
  })

  it('still takes over after two leases when the leader is really gone after an outage', async () => {
    const { kv, clock, a, b } = setup()
    await a.lease.step()
    await b.lease.step()
    kv.getsFail = true
    clock.t = 500
    await b.lease.step().catch(() => undefined) // trouble at 500; a is gone from here on
    kv.getsFail = false
    clock.t = 600
    await b.lease.step() // sees the lease again at 600
    clock.t = 600 + LEASE_MS
    await b.lease.step()
    expect(b.lease.leading, 'one lease is not enough right after trouble').to.equal(false)
    clock.t = 600 + 2 * LEASE_MS
    await b.lease.step()
    expect(b.lease.leading).to.equal(true)
    expect(b.fence!.term).to.equal(2)
  })

  it('is not deposed by its own renewal whose answer was lost', async () => {
    const { kv, clock, a } = setup()
    await a.lease.step()
    clock.t = LEASE_MS / 5
    kv.faults.push('lose-answer')
    await a.lease.step()
    clock.t = (2 * LEASE_MS) / 5
    await a.lease.step() // conflicts with its own record: adopts the revision
    clock.t = (3 * LEASE_MS) / 5
    await a.lease.step()
    expect(a.lease.leading).to.equal(true)
    expect(a.fence!.state()).to.equal('valid')
    expect(a.events).to.deep.equal(['elected 1'])
  })

  it('hands over at once when the leader stops cleanly (the lease is marked released)', async () => {
    const { clock, a, b } = setup()
    await a.lease.step()
    await b.lease.step()
    clock.t = 10
    await a.lease.stop()
    expect(a.fence!.state()).to.equal('revoked')
    await b.lease.step()
    expect(b.lease.leading).to.equal(true)
    expect(b.fence!.term).to.equal(2)
    expect(a.events).to.deep.equal(['elected 1']) // a stop is not a deposition
  })
})
