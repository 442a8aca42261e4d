/**
 * The bulk read of a bucket (bulk-read.ts): against a real nats-server, every key's last value
 * once with the revision a get reports, deletes and purges left out, whatever the bucket's
 * history; against a fake connection, the ways it must fail rather than lose a record (a stall, a
 * skipped message, a consumer the server ended) and the flow control it must answer.
 */

import { expect } from 'chai'
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node'
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { ackInfo, readLastValues } from '../../lib/balancer/bulk-read.ts'
import { useNatsServer } from '../support/nats.ts'

const enc = (s: string) => new TextEncoder().encode(s)
const dec = (b: Uint8Array) => new TextDecoder().decode(b)

describe('bulk read of a bucket', function () {
  this.timeout(30_000)

  describe('against nats-server', () => {
    const nats = useNatsServer()
    let nc: NatsConnection
    let jsm: JetStreamManager
    let n = 0
    beforeEach(async () => {
      nc = await connect({ servers: nats.url })
      jsm = await jetstreamManager(nc)
    })
    afterEach(async () => nc?.close())

    async function read(bucket: string): Promise<Map<string, { revision: number; value: string }>> {
      const got = new Map<string, { revision: number; value: string }>()
      const count = await readLastValues({ nc, jsm, stream: `KV_${bucket}`, prefix: `$KV.${bucket}.`, stallMs: 2_000 }, (key, revision, value) => {
        expect(got.has(key), `${key} read twice`).to.equal(false)
        got.set(key, { revision, value: dec(value) })
      })
      expect(count).to.equal(got.size)
      return got
    }

    for (const history of [1, 5]) {
      it(`hands every key's last value once, with the revision a get reports, and leaves deleted keys out (history ${history})`, async () => {
        const bucket = `bulk${++n}`
        const kv = await new Kvm(nc).create(bucket, { history })
        for (let i = 0; i < 300; i++) await kv.put(`k${i}`, enc(`v${i}`))
        // Rewritten, deleted and purged keys: only the current state may come back.
        for (let i = 0; i < 300; i += 3) await kv.put(`k${i}`, enc(`w${i}`))
        await kv.delete('k1')
        await kv.purge('k2')
        const got = await read(bucket)
        expect(got.size).to.equal(298)
        expect(got.has('k1') || got.has('k2')).to.equal(false)
        for (const [key, { revision, value }] of got) {
          const e = (await kv.get(key))!
          expect({ key, revision, value }).to.deep.equal({ key, revision: e.revision, value: dec(e.value) })
        }
      })
    }

    it('resolves at once on an empty bucket', async () => {
      const bucket = `bulk${++n}`
      await new Kvm(nc).create(bucket, { history: 1 })
      expect((await read(bucket)).size).to.equal(0)
    })
  })

  describe('against a fake connection', () => {
    /** A connection whose one subscription the test feeds, and a manager for a stream of `messages`. */
    function fake(messages = 3, created: () => Promise<{ name: string }> = async () => ({ name: 'c1' })) {
      let deliver: ((err: Error | null, m: Msg) => void) | undefined
      let inbox = ''
      const published: string[] = []
      const deleted: string[] = []
      const nc = {
        options: {},
        subscribe(subject: string, opts: { callback: (err: Error | null, m: Msg) => void }) {
          inbox = subject
          deliver = opts.callback
          return { unsubscribe: () => undefined }
        },
        publish: (subject: string) => void published.push(subject),
      } as unknown as NatsConnection
      const jsm = {
        streams: { info: async () => ({ state: { messages }, config: { max_msgs_per_subject: 1 } }) },
        consumers: { add: created, delete: async (_: string, name: string) => deleted.push(name) > 0 },
      } as unknown as JetStreamManager
      const data = (dseq: number, pending: number, key = `k${dseq}`) =>
        deliver!(null, { subject: `$KV.b.${key}`, reply: `$JS.ACK.KV_b.c1.1.${dseq + 10}.${dseq}.1700000000000000000.${pending}`, data: enc(key) } as unknown as Msg)
      const status = (code: number, description: string, reply = '') => {
        const headers = { code, description, get: () => '' }
        deliver!(null, { subject: inbox, reply, data: new Uint8Array(0), headers, respond: () => void published.push(reply) } as unknown as Msg)
      }
      return { nc, jsm, data, status, published, deleted, ready: () => deliver !== undefined }
    }
    const start = (f: ReturnType<typeof fake>, stallMs = 200) => {
      const keys: Array<[string, number]> = []
      const p = readLastValues({ nc: f.nc, jsm: f.jsm, stream: 'KV_b', prefix: '$KV.b.', stallMs }, (k, rev) => keys.push([k, rev]))
      return { p, keys }
    }
    const subscribed = async (f: ReturnType<typeof fake>) => {
      while (!f.ready()) await new Promise((r) => setImmediate(r))
    }

    it('reads until the server says nothing is pending, answering flow control on the way', async () => {
      const f = fake()
      const { p, keys } = start(f)
      await subscribed(f)
      f.data(1, 2)
      f.status(100, 'FlowControl Request', '$JS.FC.KV_b.c1.x')
      f.data(2, 1)
      f.data(3, 0)
      expect(await p).to.equal(3)
      expect(keys).to.deep.equal([['k1', 11], ['k2', 12], ['k3', 13]])
      expect(f.published).to.include('$JS.FC.KV_b.c1.x')
    })

    it('fails on a skipped message rather than lose a record', async () => {
      const f = fake()
      const { p } = start(f)
      await subscribed(f)
      f.data(1, 2)
      f.data(3, 0)
      await p.then(() => expect.fail('resolved'), (e: { code?: string; message: string }) => expect(e).to.include({ code: 'E_STORE' }).and.have.property('message').that.matches(/message 2 of the consumer was not delivered/))
    })

    it('fails when the consumer stalls for the stall time', async () => {
      const f = fake()
      const { p, keys } = start(f, 100)
      await subscribed(f)
      f.data(1, 2)
      const t0 = performance.now()
      await p.then(() => expect.fail('resolved'), (e: Error) => expect(e.message).to.match(/stalled for 100 ms after 1 records/))
      expect(keys).to.have.length(1)
      expect(performance.now() - t0).to.be.within(90, 1_000)
    })

    it('fails at once on a stall while the server is still creating the consumer, and deletes it once made', async () => {
      let made!: (c: { name: string }) => void
      const f = fake(3, () => new Promise((r) => (made = r)))
      const { p } = start(f, 100)
      await p.then(() => expect.fail('resolved'), (e: Error) => expect(e.message).to.match(/stalled for 100 ms after 0 records/))
      made({ name: 'late' })
      await new Promise((r) => setImmediate(r))
      expect(f.deleted).to.deep.equal(['late'])
    })

    it('deletes its consumer once the read is done', async () => {
      const f = fake(1)
      const { p } = start(f)
      await subscribed(f)
      f.data(1, 0)
      expect(await p).to.equal(1)
      await new Promise((r) => setImmediate(r))
      expect(f.deleted).to.deep.equal(['c1'])
    })

    it('fails when the server ends the consumer', async () => {
      const f = fake()
      const { p } = start(f)
      await subscribed(f)
      f.status(409, 'Consumer Deleted')
      await p.then(() => expect.fail('resolved'), (e: Error) => expect(e.message).to.match(/ended the consumer \(409/))
    })
  })

  it('reads the numbers of both forms of a delivery reply subject', () => {
    expect(ackInfo('$JS.ACK.KV_x.C1.1.123.45.1700000000000000000.9')).to.deep.equal({ streamSeq: 123, deliverySeq: 45, pending: 9 })
    expect(ackInfo('$JS.ACK.dom.hash.KV_x.C1.1.123.45.1700000000000000000.0.rnd')).to.deep.equal({ streamSeq: 123, deliverySeq: 45, pending: 0 })
    expect(ackInfo('$JS.ACK.KV_x.C1.1.123.45.17')).to.equal(undefined)
    expect(ackInfo('$JS.ACK.KV_x.C1.1.12x.45.1700000000000000000.9')).to.equal(undefined)
    expect(ackInfo('_INBOX.abc')).to.equal(undefined)
  })
})
