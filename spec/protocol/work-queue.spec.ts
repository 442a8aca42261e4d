/**
 * The balancer's queue of received messages (lib/protocol/work-queue.ts): order kept, the event
 * loop's timers run between slices however long the queue, a full queue refuses, a handler that
 * throws stops nothing.
 */

import { expect } from 'chai'
import { WorkQueue } from '../../lib/protocol/work-queue.ts'

/** Keeps this thread busy for `ms` (a handler's synchronous work). */
function busy(ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) {
    /* spin */
  }
}

const drained = (q: WorkQueue) =>
  new Promise<void>((resolve) => {
    const check = () => (q.length === 0 ? resolve() : setImmediate(check))
    check()
  })

describe('work queue', () => {
  it('runs handlers in the order they came', async () => {
    const q = new WorkQueue()
    const seen: number[] = []
    for (let i = 0; i < 1000; i++) expect(q.push(() => seen.push(i))).to.equal(true)
    await drained(q)
    expect(seen).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i))
  })

  it('lets a timer run between slices: a renewal due now waits one slice, not the whole backlog', async () => {
    const q = new WorkQueue({ sliceMs: 5 })
    const order: string[] = []
    // 200 ms of handlers, queued at once (one large socket read's worth).
    for (let i = 0; i < 100; i++) q.push(() => (busy(2), order.push(`m${i}`)))
    setTimeout(() => order.push('timer'), 0)
    await drained(q)
    const at = order.indexOf('timer')
    // Counted in handlers, not milliseconds, so a busy machine does not change the verdict.
    expect(at, 'the timer ran before the backlog was through').to.be.within(0, 10)
  })

  it('runs an urgent handler before the backlog, in its own order', async () => {
    const q = new WorkQueue({ sliceMs: 1 })
    const order: string[] = []
    for (let i = 0; i < 50; i++) q.push(() => (busy(1), order.push(`m${i}`)))
    q.push(() => order.push('status-1'), true)
    q.push(() => order.push('status-2'), true)
    await drained(q)
    expect(order.slice(0, 2)).to.deep.equal(['status-1', 'status-2'])
    expect(order).to.have.length(52)
  })

  it('refuses a handler when full, and takes one again once there is room', async () => {
    const q = new WorkQueue({ maxQueued: 3 })
    const ran: number[] = []
    expect([1, 2, 3, 4].map((i) => q.push(() => ran.push(i)))).to.deep.equal([true, true, true, false])
    await drained(q)
    expect(ran).to.deep.equal([1, 2, 3])
    expect(q.push(() => ran.push(5))).to.equal(true)
    await drained(q)
    expect(ran).to.deep.equal([1, 2, 3, 5])
  })

  it('reports a handler that throws and runs the rest', async () => {
    const errors: unknown[] = []
    const q = new WorkQueue({ onError: (e) => errors.push(e) })
    const ran: number[] = []
    q.push(() => ran.push(1))
    q.push(() => {
      throw new Error('a bug')
    })
    q.push(() => ran.push(3))
    await drained(q)
    expect(ran).to.deep.equal([1, 3])
    expect((errors[0] as Error).message).to.equal('a bug')
  })

  it('says once a slice how long its oldest handler waited, and how far behind it is meanwhile', async () => {
    const waits: number[] = []
    const q = new WorkQueue({ sliceMs: 1, onWait: (ms) => waits.push(ms) })
    const backlog: number[] = []
    for (let i = 0; i < 20; i++) q.push(() => (busy(2), backlog.push(q.backlogMs())))
    expect(q.backlogMs()).to.be.at.least(0)
    await drained(q)
    // One slice per handler (each runs past sliceMs): the last waited for the 19 before it.
    expect(waits).to.have.length(20)
    expect(Math.max(...waits)).to.be.at.least(30)
    expect(waits).to.deep.equal([...waits].sort((a, b) => a - b))
    // While handlers still wait, the backlog is their age; once all ran, nothing waits.
    expect(backlog[0]).to.be.at.least(2)
    expect(backlog.at(-1)).to.equal(0)
    expect(q.backlogMs()).to.equal(0)
  })

  it('drops a handler that waited past its expiry unrun, telling its expired callback, and runs the fresh ones in order', async () => {
    let clock = 0
    const q = new WorkQueue({ sliceMs: 1_000, now: () => clock })
    const ran: string[] = []
    const expired: string[] = []
    const push = (id: string, afterMs?: number) => q.push(() => void ran.push(id), false, afterMs === undefined ? undefined : { afterMs, expired: () => void expired.push(id) })
    push('old', 100)
    push('old-no-expiry')
    clock = 90
    push('young', 100)
    // The first two have waited 150 ms when the queue is read, the third 60 ms.
    clock = 150
    await drained(q)
    expect(ran).to.deep.equal(['old-no-expiry', 'young'])
    expect(expired).to.deep.equal(['old'])
    // An expiry is measured from the push: exactly at it, the handler still runs.
    push('edge', 50)
    clock = 200
    await drained(q)
    expect(ran.at(-1)).to.equal('edge')
    expect(expired).to.deep.equal(['old'])
  })

  it('keeps its order across compactions of a long queue', async () => {
    const q = new WorkQueue({ sliceMs: 1 })
    const seen: number[] = []
    for (let i = 0; i < 20_000; i++) q.push(() => seen.push(i))
    await drained(q)
    for (let i = 0; i < 20_000; i++) q.push(() => seen.push(20_000 + i))
    await drained(q)
    expect(seen.length).to.equal(40_000)
    expect(seen.every((v, i) => v === i)).to.equal(true)
  })
})
