/**
 * The record writes' hot path against a real nats-server: a create or update goes as one
 * acknowledged publish and returns the key's new revision; whatever that path cannot settle (a
 * compare-and-set mismatch, a create over a deleted key, a key the library refuses) is settled by
 * the client library, with the errors the record writer knows; and a write nobody answers rejects
 * with E_TIMEOUT on time instead of waiting for ever.
 */

import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { AckedPublisher } from '../../lib/balancer/acked-publisher.ts'
import { openBuckets, type Bucket } from '../../lib/balancer/buckets.ts'
import { RevisionConflict } from '../../lib/balancer/record-writer.ts'
import { ShoalError } from '../../lib/errors.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { useNatsServer } from '../support/nats.ts'

const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)

describe('acknowledged publishes for record writes', function () {
  this.timeout(30_000)
  const nats = useNatsServer()
  let nc: NatsConnection
  let shares: Bucket
  let n = 0

  beforeEach(async () => {
    nc = await connect({ servers: nats.url })
    shares = (await openBuckets(nc, new Subjects(`ack${++n}`), { leaseMs: 1000 })).shares
  })
  afterEach(async () => nc?.close())

  it('creates and updates a key, returning the revisions the store then holds', async () => {
    const r1 = await shares.create('j1-s0', bytes('one'))
    expect((await shares.get('j1-s0'))!.revision).to.equal(r1)
    const r2 = await shares.update('j1-s0', bytes('two'), r1)
    expect(r2).to.be.greaterThan(r1)
    const got = await shares.get('j1-s0')
    expect(got!.revision).to.equal(r2)
    expect(text(got!.value)).to.equal('two')
  })

  it('stores a write as one acknowledged publish, and hands a compare-and-set mismatch back as JsRefused', async () => {
    const p = new AckedPublisher(nc, 2_000)
    const subject = `$KV.${shares.name}.j9-s0`
    const r1 = await p.publish(subject, bytes('one'), 0)
    const got = await shares.get('j9-s0')
    expect(got!.revision).to.equal(r1)
    expect(text(got!.value)).to.equal('one')
    const r2 = await p.publish(subject, bytes('two'), r1)
    expect(r2).to.be.greaterThan(r1)
    const stale = await p.publish(subject, bytes('three'), r1).catch((e: unknown) => e)
    expect((stale as Error).name).to.equal('JsRefused')
    expect((stale as Error).message).to.match(/wrong last sequence/i)
    expect(text((await shares.get('j9-s0'))!.value)).to.equal('two')
  })

  it('refuses, as a revision conflict, a create of a key that exists and an update from a stale revision', async () => {
    const r1 = await shares.create('j2-s0', bytes('one'))
    await shares.update('j2-s0', bytes('two'), r1)
    const create = await shares.create('j2-s0', bytes('again')).catch((e: unknown) => e)
    expect(create).to.be.instanceOf(RevisionConflict)
    const stale = await shares.update('j2-s0', bytes('stale'), r1).catch((e: unknown) => e)
    expect(stale).to.be.instanceOf(RevisionConflict)
    expect(text((await shares.get('j2-s0'))!.value)).to.equal('two')
  })

  it('creates a key again after it was deleted (the library settles what the publish cannot)', async () => {
    const r1 = await shares.create('j3-s0', bytes('one'))
    await shares.remove('j3-s0', r1)
    expect(await shares.get('j3-s0')).to.equal(null)
    const r2 = await shares.create('j3-s0', bytes('back'))
    expect(text((await shares.get('j3-s0'))!.value)).to.equal('back')
    expect((await shares.get('j3-s0'))!.revision).to.equal(r2)
  })

  it('leaves a key the library refuses to the library, which says why', async () => {
    expect(AckedPublisher.plainKey('a b')).to.equal(false)
    const e = await shares.create('a b', bytes('x')).catch((err: unknown) => err)
    expect(e).to.be.instanceOf(Error)
    expect((e as Error).message).to.match(/invalid key/i)
  })

  it('gives up on an answer that does not come within its timeout, and holds no write after it', async () => {
    // A subject no stream listens on answers "no responders" at once; a publish with a reply on a
    // subject nobody answers, and no stream, must time out instead.
    const p = new AckedPublisher(nc, 300)
    const t0 = performance.now()
    const noStream = await p.publish('$KV.nobody-here.k', bytes('x'), 0).catch((e: unknown) => e)
    // No stream: the server says no one is there (503), which goes to the library's path.
    expect((noStream as Error).name).to.equal('JsRefused')
    const sub = nc.subscribe('silent.k') // a listener that never answers: no 503, no ack
    const silent = await p.publish('silent.k', bytes('x'), 0).catch((e: unknown) => e)
    expect(silent).to.be.instanceOf(ShoalError)
    expect((silent as ShoalError).code).to.equal('E_TIMEOUT')
    expect(performance.now() - t0).to.be.lessThan(5_000)
    expect(p.waiting).to.equal(0)
    sub.unsubscribe()
  })

  it('rejects what is still waiting when its connection closes', async () => {
    const other = await connect({ servers: nats.url })
    const p = new AckedPublisher(other, 60_000)
    other.subscribe('quiet.k')
    const pending = p.publish('quiet.k', bytes('x'), 0).catch((e: unknown) => e)
    await other.flush()
    expect(p.waiting).to.equal(1)
    await other.close()
    const e = await pending
    expect((e as ShoalError).code).to.equal('E_UNAVAILABLE')
    expect(p.waiting).to.equal(0)
  })

  it('sends writes through the library once its own path is closed, so a refused subscription never stops the writer', async () => {
    const p = new AckedPublisher(nc, 2_000)
    p.close(new Error('subscription refused'))
    const e = await p.publish(`$KV.${shares.name}.j8-s0`, bytes('x'), 0).catch((err: unknown) => err)
    expect((e as Error).name).to.equal('JsRefused')
  })
})
