/**
 * The host's report batcher, driven through its `send` function (no NATS): what goes in one batch,
 * when a batch leaves, and how each report gets its own answer, or its own error.
 */

import { expect } from 'chai'
import { ShoalError } from '../../lib/errors.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import type { Report, ReportAnswer } from '../../lib/protocol/messages.ts'
import { ReportBatcher, type BatcherOptions } from '../../lib/worker-host/report-batcher.ts'

const codec = new Codec(1024 * 1024)
const ack: ReportAnswer = { v: 1, t: 'ack', term: 3 }
const done = (shareId: string, result: unknown = 1): Report => ({ v: 1, t: 'done', hostId: 'h1', shareId, epoch: 1, to: 10, result, unitsDone: 10, elapsedMs: 5 })
const checkpoint = (shareId: string, position = 5): Report => ({ v: 1, t: 'checkpoint', hostId: 'h1', checkpoint: { shareId, epoch: 1, position, to: 10, state: position, unitsDone: position, stateBytes: 1 } })
const idOf = (r: Report) => (r.t === 'checkpoint' ? r.checkpoint.shareId : r.shareId)

interface Sent {
  reports: Report[]
  answer(answers: ReportAnswer[]): void
  fail(e: unknown): void
}

/** A batcher whose batches wait in `sent` until the test answers them. */
function harness(opts: Partial<BatcherOptions> = {}) {
  const sent: Sent[] = []
  const waiters: Array<() => void> = []
  const batcher = new ReportBatcher({
    send: (reports) =>
      new Promise<ReportAnswer[]>((resolve, reject) => {
        sent.push({ reports, answer: resolve, fail: reject })
        for (const w of waiters.splice(0)) w()
      }),
    sizeOf: (r) => codec.sizeOf(r),
    overheadBytes: 64,
    maxBytes: 1024 * 1024,
    lingerMs: 10_000,
    ...opts,
  })
  /** Resolves once `n` batches have been sent. */
  const batches = async (n: number): Promise<Sent[]> => {
    while (sent.length < n) await new Promise<void>((r) => waiters.push(r))
    return sent
  }
  return { batcher, sent, batches }
}

describe('report batcher', () => {
  it('sends the results of one turn in one batch and gives each its own answer, in order', async () => {
    const { batcher, batches } = harness()
    const replies = ['a', 'b', 'c'].map((id) => batcher.send(done(id)))
    const [b] = await batches(1)
    expect(b!.reports.map(idOf)).to.deep.equal(['a', 'b', 'c'])
    b!.answer([ack, { v: 1, t: 'nack', term: 3, error: { code: 'E_STALE_EPOCH', message: 'old', retryable: false } }, ack])
    const got = await Promise.all(replies)
    expect(got.map((r) => r.t)).to.deep.equal(['ack', 'nack', 'ack'])
  })

  it('holds a checkpoint for company and sends it with the next result, at once', async () => {
    const { batcher, sent, batches } = harness({ lingerMs: 60_000 })
    const cp = batcher.send(checkpoint('a'))
    await new Promise((r) => setImmediate(r))
    await new Promise((r) => setImmediate(r))
    expect(sent, 'a lone checkpoint waits its linger').to.have.length(0)
    const d = batcher.send(done('b'))
    const [b] = await batches(1)
    expect(b!.reports.map((r) => r.t)).to.deep.equal(['checkpoint', 'done'])
    b!.answer([ack, ack])
    expect((await cp).t).to.equal('ack')
    expect((await d).t).to.equal('ack')
  })

  it('sends a lone checkpoint once its linger is over', async () => {
    const { batcher, batches } = harness({ lingerMs: 40 })
    const t0 = performance.now()
    const cp = batcher.send(checkpoint('a'))
    const [b] = await batches(1)
    expect(performance.now() - t0).to.be.at.least(35)
    b!.answer([ack])
    expect((await cp).t).to.equal('ack')
  })

  it('keeps one batch on its way: what comes meanwhile leaves together once it is answered', async () => {
    const { batcher, sent, batches } = harness()
    const first = batcher.send(done('a'))
    await batches(1)
    const later = ['b', 'c', 'd'].map((id) => batcher.send(done(id)))
    await new Promise((r) => setImmediate(r))
    await new Promise((r) => setImmediate(r))
    expect(sent, 'nothing else while the first batch is out').to.have.length(1)
    expect(batcher.queued).to.equal(3)
    sent[0]!.answer([ack])
    await first
    const [, second] = await batches(2)
    expect(second!.reports.map(idOf)).to.deep.equal(['b', 'c', 'd'])
    second!.answer([ack, ack, ack])
    expect((await Promise.all(later)).every((r) => r.t === 'ack')).to.equal(true)
  })

  it('never makes a batch larger than maxBytes: the rest goes in the next', async () => {
    const big = 'x'.repeat(300)
    const one = codec.sizeOf(done('a', big))
    const { batcher, sent, batches } = harness({ maxBytes: 64 + 2 * one + 10 })
    const replies = ['a', 'b', 'c', 'd', 'e'].map((id) => batcher.send(done(id, big)))
    for (let n = 1; n <= 3; n++) {
      const b = (await batches(n))[n - 1]!
      expect(codec.sizeOf({ v: 1, t: 'reports', hostId: 'h1', reports: b.reports })).to.be.at.most(64 + 2 * one + 10)
      b.answer(b.reports.map(() => ack))
    }
    expect(sent.map((b) => b.reports.length)).to.deep.equal([2, 2, 1])
    await Promise.all(replies)
  })

  it('sends each report of a batch refused as a whole again alone, so only the bad one fails', async () => {
    const { batcher, batches } = harness()
    const replies = ['a', 'bad', 'c'].map((id) => batcher.send(done(id)).then((r) => r.t, (e: ShoalError) => e.code))
    const [whole] = await batches(1)
    whole!.fail(new ShoalError('E_MSG_INVALID', 'rejected message: reports.1.result'))
    for (let n = 2; n <= 4; n++) {
      const b = (await batches(n))[n - 1]!
      expect(b.reports).to.have.length(1)
      if (idOf(b.reports[0]!) === 'bad') b.fail(new ShoalError('E_MSG_INVALID', 'rejected message: reports.0.result'))
      else b.answer([ack])
    }
    expect(await Promise.all(replies)).to.deep.equal(['ack', 'E_MSG_INVALID', 'ack'])
  })

  it('fails every report of a batch that timed out, and only the one an err answer names', async () => {
    const { batcher, batches } = harness()
    const one = ['a', 'b'].map((id) => batcher.send(done(id)).then((r) => r.t, (e: ShoalError) => e.code))
    ;(await batches(1))[0]!.fail(new ShoalError('E_TIMEOUT', 'no answer in 3000 ms'))
    expect(await Promise.all(one)).to.deep.equal(['E_TIMEOUT', 'E_TIMEOUT'])
    const two = ['c', 'd'].map((id) => batcher.send(done(id)).then((r) => r.t, (e: ShoalError) => e.code))
    ;(await batches(2))[1]!.answer([ack, { v: 1, t: 'err', error: { code: 'E_NOT_LEADER', message: 'lease lapsed', retryable: true } }])
    expect(await Promise.all(two)).to.deep.equal(['ack', 'E_NOT_LEADER'])
  })

  it('refuses an answer that does not have one entry per report', async () => {
    const { batcher, batches } = harness()
    const replies = ['a', 'b'].map((id) => batcher.send(done(id)).then((r) => r.t, (e: ShoalError) => e.code))
    ;(await batches(1))[0]!.answer([ack])
    expect(await Promise.all(replies)).to.deep.equal(['E_MSG_INVALID', 'E_MSG_INVALID'])
  })

  it('fails what is queued when closed, with E_UNAVAILABLE, and takes nothing more', async () => {
    const { batcher, sent } = harness()
    const queued = batcher.send(checkpoint('a')).catch((e: ShoalError) => e.code)
    batcher.close()
    expect(await queued).to.equal('E_UNAVAILABLE')
    expect(await batcher.send(done('b')).catch((e: ShoalError) => e.code)).to.equal('E_UNAVAILABLE')
    expect(sent).to.have.length(0)
  })
})
