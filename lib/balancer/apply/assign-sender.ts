/**
 * Sends assignments to hosts in batches, one batcher per host (lib/protocol/batcher.ts, the rule
 * a host's reports follow): while no batch is on its way to a host, an assignment leaves at once
 * with whatever else was queued for that host in the same turn; while one is, they queue and
 * leave together. A placement pass that gives a host many shares then costs a few messages, not
 * one per share (issue 12, point 4).
 *
 * A batch of one goes as a plain `assign`, which a host of any release understands; a host that
 * refuses `assign-batch` as invalid (an older release) gets each assignment again alone, so
 * nothing is lost. A host's batcher is let go once it is idle: hosts come and go.
 */

import { ShoalError } from '../../errors.ts'
import { Batcher } from '../../protocol/batcher.ts'
import { MAX_ASSIGNMENTS_PER_BATCH, PROTOCOL_VERSION as V, type HostCommand, type HostReply } from '../../protocol/messages.ts'
import type { BalancerContext } from '../context.ts'

type Assign = Extract<HostCommand, { t: 'assign' }>
type Ok = Extract<HostReply, { t: 'ok' }>

export class AssignSender {
  readonly #byHost = new Map<string, Batcher<Assign, Ok>>()
  #closed = false

  constructor(private readonly ctx: BalancerContext) {}

  /** Sends one assignment to `hostId`; resolves once the host took it, rejects with why not. */
  send(hostId: string, cmd: Assign): Promise<void> {
    if (this.#closed) return Promise.reject(new ShoalError('E_NOT_LEADER', 'this balancer stopped: assignment not sent'))
    let b = this.#byHost.get(hostId)
    if (!b) this.#byHost.set(hostId, (b = this.batcher(hostId)))
    return b.send(cmd).then(() => undefined)
  }

  /** Fails what is still queued (the balancer stops); batches on their way still settle. */
  close(): void {
    this.#closed = true
    for (const b of this.#byHost.values()) b.close()
    this.#byHost.clear()
  }

  private batcher(hostId: string): Batcher<Assign, Ok> {
    const codec = this.ctx.bus.codec
    const b: Batcher<Assign, Ok> = new Batcher<Assign, Ok>({
      send: async (items) => {
        if (items.length === 1) return [expectOk(await this.ctx.command(hostId, items[0]!))]
        const term = this.ctx.fence.term
        const reply = await this.ctx.command(hostId, { v: V, t: 'assign-batch', term, shares: items.map((i) => i.share) })
        if (reply.t !== 'assigned') throw new ShoalError('E_INTERNAL', `host ${hostId} answered an assign-batch with '${reply.t}'`)
        return reply.answers
      },
      sizeOf: (cmd) => codec.sizeOf(cmd.share),
      // The envelope of an empty batch, plus an array header's worst case.
      overheadBytes: codec.sizeOf({ v: V, t: 'assign-batch', term: Number.MAX_SAFE_INTEGER, shares: [] }) + 8,
      maxBytes: codec.maxMessageBytes,
      maxItems: MAX_ASSIGNMENTS_PER_BATCH,
      lingerOf: () => 0,
      closedMessage: 'this balancer stopped: assignment not sent',
      onIdle: () => {
        if (this.#byHost.get(hostId) === b) this.#byHost.delete(hostId)
      },
    })
    return b
  }
}

function expectOk(reply: HostReply): Ok {
  if (reply.t !== 'ok') throw new ShoalError('E_INTERNAL', `unexpected assign reply '${reply.t}'`)
  return reply
}
