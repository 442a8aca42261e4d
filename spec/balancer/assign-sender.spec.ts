/**
 * The balancer's assignment batching (lib/balancer/apply/assign-sender.ts), driven through a
 * context whose `command` the test answers (no NATS): what goes to a host in one message, how each
 * assignment gets its own verdict, and how a host that does not know batches still gets every
 * assignment.
 */

import { expect } from 'chai'
import { ShoalError, toWire } from '../../lib/errors.ts'
import { AssignSender } from '../../lib/balancer/apply/assign-sender.ts'
import type { BalancerContext } from '../../lib/balancer/context.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import type { HostCommand, HostReply } from '../../lib/protocol/messages.ts'

type Assign = Extract<HostCommand, { t: 'assign' }>
const assign = (i: number): Assign => ({ v: 1, t: 'assign', term: 7, share: { shareId: `j-s${i}`, jobId: 'j', epoch: 1, processor: 'p', input: null, from: i, to: i + 1, position: i, unitsDone: 0 } })

interface Call {
  hostId: string
  cmd: HostCommand
}

/** A sender whose commands the test answers with `answer(call)`. */
function harness(answer: (c: Call) => HostReply | Promise<HostReply>) {
  const calls: Call[] = []
  const ctx = {
    bus: { codec: new Codec(1024 * 1024) },
    fence: { term: 7 },
    tracking: { unbatched: new Set<string>() },
    command: async (hostId: string, cmd: HostCommand) => {
      const c = { hostId, cmd }
      calls.push(c)
      return answer(c)
    },
  } as unknown as BalancerContext
  return { sender: new AssignSender(ctx), calls, ctx }
}

/** Every assignment taken; the first call is held until `release.go()` (ready once it is held). */
function firstCallHeld() {
  let go!: () => void
  let held!: () => void
  const ready = new Promise<void>((r) => (held = r))
  const gate = new Promise<void>((r) => (go = r))
  const h = harness(async (c) => {
    if (h.calls.length === 1) {
      held()
      await gate
    }
    return okAll(c.cmd)
  })
  return { ...h, release: { ready, go } }
}

const okAll = (cmd: HostCommand): HostReply => (cmd.t === 'assign-batch' ? { v: 1, t: 'assigned', answers: cmd.shares.map(() => ({ v: 1, t: 'ok' as const })) } : { v: 1, t: 'ok' })

const settle = (p: Promise<void>) => p.then(() => 'ok', (e: ShoalError) => e.code)
const always = { current: () => true, leaving: () => undefined }

describe('assignments to a host in batches', () => {
  it('sends the assignments of one turn to a host as one assign-batch, and gives each its own answer', async () => {
    const { sender, calls } = harness((c) => {
      if (c.cmd.t !== 'assign-batch') throw new Error(`unexpected ${c.cmd.t}`)
      return { v: 1, t: 'assigned', answers: c.cmd.shares.map((s) => (s.shareId === 'j-s1' ? { v: 1, t: 'err', error: toWire(new ShoalError('E_UNKNOWN_PROCESSOR', 'no p here')) } : { v: 1, t: 'ok' })) }
    })
    const verdicts = await Promise.all([0, 1, 2].map((i) => settle(sender.send('h1', assign(i), always))))
    expect(verdicts).to.deep.equal(['ok', 'E_UNKNOWN_PROCESSOR', 'ok'])
    expect(calls.map((c) => `${c.hostId} ${c.cmd.t} ${c.cmd.t === 'assign-batch' ? c.cmd.shares.map((s) => s.shareId).join(',') : ''}`)).to.deep.equal(['h1 assign-batch j-s0,j-s1,j-s2'])
    expect(calls[0]!.cmd.t === 'assign-batch' && calls[0]!.cmd.term).to.equal(7)
  })

  it('sends a lone assignment as a plain assign, and keeps hosts apart', async () => {
    const { sender, calls } = harness(() => ({ v: 1, t: 'ok' }))
    await Promise.all([sender.send('h1', assign(0), always), sender.send('h2', assign(1), always)])
    expect(calls.map((c) => `${c.hostId} ${c.cmd.t}`).sort()).to.deep.equal(['h1 assign', 'h2 assign'])
  })

  it('queues what comes while a batch is on its way and sends it together once that is answered', async () => {
    const { sender, calls, release } = firstCallHeld()
    const first = sender.send('h1', assign(0), always)
    await release.ready
    const later = [1, 2, 3].map((i) => sender.send('h1', assign(i), always))
    await new Promise((r) => setImmediate(r))
    expect(calls.length, 'nothing more leaves while the first is on its way').to.equal(1)
    release.go()
    await Promise.all([first, ...later])
    expect(calls.map((c) => (c.cmd.t === 'assign-batch' ? c.cmd.shares.length : 1))).to.deep.equal([1, 3])
  })

  it('sends each assignment again alone to a host that refuses assign-batch (an older release), and loses none', async () => {
    const { sender, calls } = harness((c) => {
      if (c.cmd.t === 'assign-batch') throw new ShoalError('E_MSG_INVALID', 'unknown command')
      return { v: 1, t: 'ok' }
    })
    const verdicts = await Promise.all([0, 1, 2].map((i) => settle(sender.send('h1', assign(i), always))))
    expect(verdicts).to.deep.equal(['ok', 'ok', 'ok'])
    expect(calls.map((c) => c.cmd.t)).to.deep.equal(['assign-batch', 'assign', 'assign', 'assign'])
  })

  it('fails every assignment of a batch the host never answered with that error, and what is queued once closed', async () => {
    const { sender } = harness(() => {
      throw new ShoalError('E_TIMEOUT', 'no answer')
    })
    expect(await Promise.all([0, 1].map((i) => settle(sender.send('h1', assign(i), always))))).to.deep.equal(['E_TIMEOUT', 'E_TIMEOUT'])
    sender.close()
    expect(await settle(sender.send('h1', assign(5), always))).to.equal('E_NOT_LEADER')
  })

  it('does not send an assignment whose share changed while it waited, and counts the grace from when one leaves, not from when it queued', async () => {
    const { sender, calls, release } = firstCallHeld()
    const first = sender.send('h1', assign(0), always)
    await release.ready
    const left: number[] = []
    let s1Current = true
    const queued = [
      sender.send('h1', assign(1), { current: () => s1Current, leaving: () => left.push(1) }),
      sender.send('h1', assign(2), { current: () => true, leaving: () => left.push(2) }),
      sender.send('h1', assign(3), { current: () => true, leaving: () => left.push(3) }),
    ].map(settle)
    await new Promise((r) => setImmediate(r))
    expect(left, 'nothing has left while the first batch is on its way').to.deep.equal([])
    s1Current = false // put back, say, while it waited
    release.go()
    expect(await Promise.all(queued)).to.deep.equal(['E_STALE_EPOCH', 'ok', 'ok'])
    await first
    expect(left).to.deep.equal([2, 3])
    expect(calls.map((c) => (c.cmd.t === 'assign-batch' ? c.cmd.shares.map((x) => x.shareId).join(',') : c.cmd.t === 'assign' ? c.cmd.share.shareId : c.cmd.t))).to.deep.equal(['j-s0', 'j-s2,j-s3'])
  })

  it('sends a share with a large state alone: the host fetches it before it answers', async () => {
    const { sender, calls } = harness((c) => okAll(c.cmd))
    const big = assign(1)
    big.share.stateRef = { name: 'j-s1.1.h1.1', bytes: 5_000_000 }
    // Queued last in one turn: the two before it still share a batch; it goes on its own.
    await Promise.all([sender.send('h1', assign(0), always), sender.send('h1', assign(2), always), sender.send('h1', big, always)])
    const shape = calls.map((c) => (c.cmd.t === 'assign-batch' ? c.cmd.shares.map((x) => x.shareId).join(',') : c.cmd.t === 'assign' ? c.cmd.share.shareId : c.cmd.t))
    expect(shape).to.deep.equal(['j-s0,j-s2', 'j-s1'])
  })

  it('remembers a host that refuses assign-batch and sends it one assignment to a message, all at once, from then on', async () => {
    const { sender, calls, ctx } = harness((c) => {
      if (c.cmd.t === 'assign-batch') throw new ShoalError('E_MSG_INVALID', 'unknown command')
      return { v: 1, t: 'ok' }
    })
    await Promise.all([0, 1].map((i) => sender.send('h1', assign(i), always)))
    expect(ctx.tracking.unbatched.has('h1')).to.equal(true)
    calls.length = 0
    expect(await Promise.all([2, 3, 4].map((i) => settle(sender.send('h1', assign(i), always))))).to.deep.equal(['ok', 'ok', 'ok'])
    expect(calls.map((c) => c.cmd.t)).to.deep.equal(['assign', 'assign', 'assign'])
  })
})
