/**
 * Requests that expire in the work queue (lib/protocol/bus.ts `expireAfterMs`), on a real
 * nats-server: a request the queue finds expired is dropped unread, counted as `expired`, and gets
 * no answer (its sender has given up); one read in time is answered. When a handler counts as
 * expired is the work queue's rule (spec/protocol/work-queue.spec.ts, on a clock of its own);
 * here a queue that finds the next request expired stands in for a process that fell behind.
 */

import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { z } from 'zod'
import { Bus } from '../../lib/protocol/bus.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import { WorkQueue, type Expiry } from '../../lib/protocol/work-queue.ts'
import { useNatsServer } from '../support/nats.ts'

const ping = z.object({ n: z.number() })
const pong = z.object({ n: z.number() })

/** A work queue that finds the next message with an expiry expired when it comes to it. */
class FallenBehind extends WorkQueue {
  expireNext = false
  readonly seen: number[] = []
  override push(fn: () => void, urgent = false, expiry?: Expiry): boolean {
    if (expiry) this.seen.push(expiry.afterMs)
    if (!expiry || !this.expireNext) return super.push(fn, urgent, expiry)
    this.expireNext = false
    return super.push(expiry.expired, urgent)
  }
}

describe('bus: requests that expire in the work queue', function () {
  this.timeout(20_000)
  const nats = useNatsServer()
  let server: NatsConnection
  let client: NatsConnection

  beforeEach(async () => {
    server = await connect({ servers: nats.url })
    client = await connect({ servers: nats.url })
  })

  afterEach(async () => {
    await Promise.all([server.close(), client.close()])
  })

  it('drops a request that waited past expireAfterMs unanswered and counted, and answers the next one', async () => {
    const work = new FallenBehind()
    const serving = new Bus(server, new Codec(1 << 20), { work })
    const handled: number[] = []
    serving.serve('exp.ping', ping, (m) => {
      handled.push(m.n)
      return { n: m.n }
    }, { expireAfterMs: 100 })
    await server.flush()
    const asker = new Bus(client, new Codec(1 << 20))
    work.expireNext = true
    const err = await asker.request('exp.ping', { n: 1 }, pong, 500).then(() => undefined, (e: unknown) => e as { code?: string })
    expect(err?.code).to.equal('E_TIMEOUT')
    expect(handled).to.deep.equal([])
    expect(serving.rejects.total('expired')).to.equal(1)
    expect(work.seen).to.deep.equal([100])
    // Read in time: answered as usual.
    expect(await asker.request('exp.ping', { n: 2 }, pong, 1_000)).to.deep.equal({ n: 2 })
    expect(handled).to.deep.equal([2])
    expect(serving.rejects.total('expired')).to.equal(1)
  })
})
