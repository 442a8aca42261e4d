/**
 * The record writer: must-happen writes retried until durable, one write per key at a time with
 * later puts coalesced, and compare-and-set fencing that tells a deposed leader from a lost answer.
 * Driven with an in-memory KV (spec/support/fake-kv.ts) and no real time.
 */

import { expect } from 'chai'
import { Packr } from 'msgpackr'
import { LeaseFence, openFence, type Fence } from '../../lib/balancer/fence.ts'
import { RecordWriter } from '../../lib/balancer/record-writer.ts'
import type { ShoalError } from '../../lib/errors.ts'
import { FakeKv } from '../support/fake-kv.ts'

const packr = new Packr({ useRecords: false, mapsAsObjects: true })
const encode = (r: object) => packr.pack(r)
const decode = (v: Uint8Array) => packr.unpack(v) as { n?: number; term?: number }
const termOf = (v: Uint8Array) => decode(v).term ?? 0

function writer(kv: FakeKv, fence: Fence = openFence(2), slept: number[] = []) {
  return new RecordWriter(kv, fence, encode, termOf, {
    sleep: async (ms) => {
      slept.push(ms)
      await Promise.resolve()
    },
  })
}

describe('record writer', () => {
  it('creates a key it has not seen and updates it at the revision it wrote, stamping the term', async () => {
    const kv = new FakeKv()
    const w = writer(kv)
    await w.put('s1', { n: 1 })
    const first = kv.entries.get('s1')!
    expect(decode(first.value)).to.deep.equal({ n: 1, term: 2 })
    await w.put('s1', { n: 2 })
    const second = kv.entries.get('s1')!
    expect(second.revision).to.be.greaterThan(first.revision)
    expect(decode(second.value)).to.deep.equal({ n: 2, term: 2 })
  })

  it('answers the puts of one turn with one write of the latest record', async () => {
    const kv = new FakeKv()
    const w = writer(kv)
    const all = []
    for (let i = 1; i <= 10; i++) all.push(w.put('s1', { n: i }))
    await Promise.all(all)
    expect(kv.writes).to.equal(1)
    expect(decode(kv.entries.get('s1')!.value).n).to.equal(10)
    expect(w.pending).to.equal(0)
  })

  it('answers the puts of a batch\'s reports, resumed together after an await, with one write', async () => {
    const kv = new FakeKv()
    const w = writer(kv)
    // As a host's batch of checkpoints reaches its journal record: every report awaits the same
    // check (acting?) and then puts, each in its own microtask, before the first write is encoded.
    const acting = Promise.resolve(true)
    const reports = [1, 2, 3, 4, 5].map(async (n) => {
      await acting
      await w.put('h1', { n })
    })
    await Promise.all(reports)
    expect(kv.writes).to.equal(1)
    expect(decode(kv.entries.get('h1')!.value).n).to.equal(5)
  })

  it('coalesces puts made while a write is in flight into one more write of the latest record', async () => {
    const kv = new FakeKv()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const create = kv.create.bind(kv)
    const sent: number[] = []
    // The first write waits at the store until released: the puts below arrive meanwhile.
    kv.create = async (key, value) => {
      sent.push(decode(value).n!)
      await gate
      return create(key, value)
    }
    const w = writer(kv)
    const first = w.put('s1', { n: 1 })
    await new Promise((r) => setImmediate(r))
    expect(sent).to.deep.equal([1])
    const later = []
    for (let i = 2; i <= 10; i++) later.push(w.put('s1', { n: i }))
    release()
    await Promise.all([first, ...later])
    expect(sent).to.deep.equal([1])
    expect(kv.writes).to.equal(2)
    expect(decode(kv.entries.get('s1')!.value).n).to.equal(10)
    expect(w.pending).to.equal(0)
  })

  it('retries a failing write with growing back-off until it is stored', async () => {
    const kv = new FakeKv()
    kv.faults.push('fail', 'fail', 'fail', 'fail')
    const slept: number[] = []
    await writer(kv, openFence(1), slept).put('j1', { n: 7 })
    expect(decode(kv.entries.get('j1')!.value).n).to.equal(7)
    expect(slept).to.deep.equal([50, 100, 200, 400])
  })

  it('writes again over its own write whose answer was lost (the same term), without a second record', async () => {
    const kv = new FakeKv()
    const w = writer(kv)
    kv.faults.push('lose-answer')
    await w.put('s1', { n: 1 })
    await w.put('s1', { n: 2 })
    expect(decode(kv.entries.get('s1')!.value)).to.deep.equal({ n: 2, term: 2 })
  })

  it('overwrites a record a lower term wrote behind its back, and reports the fenced write', async () => {
    const kv = new FakeKv()
    const fenced: number[] = []
    const w = new RecordWriter(kv, openFence(5), encode, termOf, { events: { fencedWrite: (_b, _k, t) => fenced.push(t) } })
    await w.put('s1', { n: 1 })
    kv.putRaw('s1', encode({ n: 99, term: 4 }))
    await w.put('s1', { n: 2 })
    expect(decode(kv.entries.get('s1')!.value)).to.deep.equal({ n: 2, term: 5 })
    expect(fenced).to.deep.equal([4])
  })

  it('refuses to write over a higher term: rejects with E_NOT_LEADER and revokes its fence', async () => {
    const kv = new FakeKv()
    let t = 0
    const fence = new LeaseFence(3, 1_000, () => t)
    const w = writer(kv, fence)
    await w.put('s1', { n: 1 })
    kv.putRaw('s1', encode({ n: 50, term: 4 }))
    const err = (await w.put('s1', { n: 2 }).catch((e: unknown) => e)) as ShoalError
    expect(err.code).to.equal('E_NOT_LEADER')
    expect(fence.state()).to.equal('revoked')
    expect(decode(kv.entries.get('s1')!.value)).to.deep.equal({ n: 50, term: 4 })
    t = 10
    expect(((await w.put('s2', { n: 1 }).catch((e: unknown) => e)) as ShoalError).code).to.equal('E_NOT_LEADER')
    expect(kv.entries.has('s2')).to.equal(false)
  })

  it('holds writes while the lease is unconfirmed and sends them once it is renewed', async () => {
    const kv = new FakeKv()
    let t = 2_000
    const fence = new LeaseFence(1, 1_000, () => t)
    expect(fence.state()).to.equal('suspended')
    const w = writer(kv, fence)
    let stored = false
    const p = w.put('s1', { n: 1 }).then(() => (stored = true))
    await new Promise((r) => setImmediate(r))
    expect(kv.writes).to.equal(0)
    expect(stored).to.equal(false)
    fence.renewed(t + 1_000)
    await p
    expect(stored).to.equal(true)
    expect(kv.entries.has('s1')).to.equal(true)
    t = 5_000
    fence.revoke('stopped')
    expect(((await w.put('s1', { n: 2 }).catch((e: unknown) => e)) as ShoalError).code).to.equal('E_NOT_LEADER')
  })

  it('keeps writes of different keys independent: a failing key does not hold up another', async () => {
    const kv = new FakeKv()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const w = new RecordWriter(kv, openFence(1), encode, termOf, { sleep: () => gate })
    kv.faults.push('fail')
    const slow = w.put('a', { n: 1 })
    await w.put('b', { n: 2 })
    expect(kv.entries.has('b')).to.equal(true)
    expect(kv.entries.has('a')).to.equal(false)
    release()
    await slow
    expect(kv.entries.has('a')).to.equal(true)
  })

  it('deletes a key after the writes queued before it, by compare-and-set; a put after the delete creates it anew', async () => {
    const kv = new FakeKv()
    const w = writer(kv)
    await w.put('s1', { n: 1 })
    const queued = [w.put('s1', { n: 2 }), w.remove('s1')]
    await Promise.all(queued)
    expect(kv.entries.has('s1')).to.equal(false)
    await w.remove('s1') // absent: nothing to do
    await w.put('s1', { n: 3 })
    expect(decode(kv.entries.get('s1')!.value)).to.deep.equal({ n: 3, term: 2 })
  })

  it('retries a delete whose store is away, and deletes over a lower term\'s late write', async () => {
    const kv = new FakeKv()
    const slept: number[] = []
    const w = writer(kv, openFence(2), slept)
    await w.put('s1', { n: 1 })
    kv.putRaw('s1', encode({ n: 9, term: 1 }))
    kv.faults.push('fail', 'fail')
    await w.remove('s1')
    expect(kv.entries.has('s1')).to.equal(false)
    expect(slept.length).to.be.at.least(2)
  })

  it('deletes a key whose revision it forgot by reading it first, and keeps no revision of deleted keys', async () => {
    const kv = new FakeKv()
    const w = writer(kv)
    await w.put('s1', { n: 1 })
    await w.put('s2', { n: 2 })
    w.forget('s1')
    expect(w.knownCount).to.equal(1)
    await w.remove('s1')
    expect(kv.entries.has('s1')).to.equal(false)
    await w.remove('s2')
    expect(kv.entries.has('s2')).to.equal(false)
    expect(w.knownCount).to.equal(0)
    await w.remove('never-written') // read, absent: nothing to do
    expect(w.knownCount).to.equal(0)
  })

  it('never deletes a forgotten key that a higher term wrote since', async () => {
    const kv = new FakeKv()
    const fence = new LeaseFence(3, 1_000, () => 0)
    const w = writer(kv, fence)
    await w.put('s1', { n: 1 })
    w.forget('s1')
    kv.putRaw('s1', encode({ n: 50, term: 4 }))
    const err = (await w.remove('s1').catch((e: unknown) => e)) as ShoalError
    expect(err.code).to.equal('E_NOT_LEADER')
    expect(decode(kv.entries.get('s1')!.value)).to.deep.equal({ n: 50, term: 4 })
  })

  it('never deletes what a higher term wrote: rejects with E_NOT_LEADER and leaves the record', async () => {
    const kv = new FakeKv()
    const fence = new LeaseFence(3, 1_000, () => 0)
    const w = writer(kv, fence)
    await w.put('s1', { n: 1 })
    kv.putRaw('s1', encode({ n: 50, term: 4 }))
    const err = (await w.remove('s1').catch((e: unknown) => e)) as ShoalError
    expect(err.code).to.equal('E_NOT_LEADER')
    expect(decode(kv.entries.get('s1')!.value)).to.deep.equal({ n: 50, term: 4 })
  })
})
