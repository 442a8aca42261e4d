/**
 * Sends assignments to hosts in batches, one batcher per host (lib/protocol/batcher.ts, the rule
 * a host's reports follow): while no batch is on its way to a host, an assignment leaves at once
 * with whatever else was queued for that host in the same turn; while one is, they queue and
 * leave together. A placement pass that gives a host many shares then costs a few messages, not
 * one per share (issue 12, point 4).
 *
 * What an assignment may meet while it waits, and what keeps it honest:
 *   - its share may change (put back, moved, its job cancelled): it is checked as its batch
 *     leaves, and one no longer current is not sent (answered E_STALE_EPOCH here);
 *   - the wait is not the host's silence: the missing-from-heartbeat grace counts from when the
 *     assignment leaves (`leaving`), not from when it was queued;
 *   - a share with a large state goes alone: the host fetches the state before it answers, and a
 *     slow fetch must not hold up, or time out, the others.
 * A batch of one goes as a plain `assign`, which a host of any release understands. A host that
 * refuses `assign-batch` as invalid (a release from before batches) gets each assignment again
 * alone, and from then on one to a message, concurrently as before (`Tracking.unbatched`). A
 * host's batcher is let go once it is idle: hosts come and go.
 */

import { ShoalError, toWire } from '../../errors.ts'
import { Batcher, type BatchAnswer } from '../../protocol/batcher.ts'
import { MAX_ASSIGNMENTS_PER_BATCH, PROTOCOL_VERSION as V, type HostCommand, type HostReply } from '../../protocol/messages.ts'
import type { BalancerContext } from '../context.ts'

type Assign = Extract<HostCommand, { t: 'assign' }>
type Ok = Extract<HostReply, { t: 'ok' }>

/** What the sender may ask of an assignment's share while it waits. */
export interface AssignHooks {
  /** The share is still pending this assignment (same status, epoch and host). */
  current(): boolean
  /** Called as the assignment leaves for the host. */
  leaving(): void
}

interface Outgoing extends AssignHooks {
  cmd: Assign
}

export class AssignSender {
  readonly #byHost = new Map<string, Batcher<Outgoing, Ok>>()
  #closed = false

  constructor(private readonly ctx: BalancerContext) {}

  /** Sends one assignment to `hostId`; resolves once the host took it, rejects with why not. */
  send(hostId: string, cmd: Assign, hooks: AssignHooks): Promise<void> {
    if (this.#closed) return Promise.reject(new ShoalError('E_NOT_LEADER', 'this balancer stopped: assignment not sent'))
    let b = this.#byHost.get(hostId)
    if (!b) this.#byHost.set(hostId, (b = this.batcher(hostId)))
    return b.send({ cmd, ...hooks }).then(() => undefined)
  }

  /** Fails what is still queued (the balancer stops); batches on their way still settle. */
  close(): void {
    this.#closed = true
    for (const b of this.#byHost.values()) b.close()
    this.#byHost.clear()
  }

  private batcher(hostId: string): Batcher<Outgoing, Ok> {
    const codec = this.ctx.bus.codec
    const b: Batcher<Outgoing, Ok> = new Batcher<Outgoing, Ok>({
      send: (items) => this.sendBatch(hostId, items),
      sizeOf: (o) => codec.sizeOf(o.cmd.share),
      // The envelope of an empty batch, plus an array header's worst case.
      overheadBytes: codec.sizeOf({ v: V, t: 'assign-batch', term: Number.MAX_SAFE_INTEGER, shares: [] }) + 8,
      maxBytes: codec.maxMessageBytes,
      maxItems: MAX_ASSIGNMENTS_PER_BATCH,
      lingerOf: () => 0,
      aloneOf: (o) => o.cmd.share.stateRef !== undefined,
      closedMessage: 'this balancer stopped: assignment not sent',
      onIdle: () => {
        if (this.#byHost.get(hostId) === b) this.#byHost.delete(hostId)
      },
    })
    return b
  }

  private async sendBatch(hostId: string, items: Outgoing[]): Promise<Array<BatchAnswer<Ok>>> {
    const answers: Array<BatchAnswer<Ok> | undefined> = items.map((o) => (o.current() ? undefined : stale(o)))
    const live = items.filter((_, i) => answers[i] === undefined)
    for (const o of live) o.leaving()
    let got: Array<BatchAnswer<Ok>> = []
    if (live.length === 1) {
      // Alone: a failure is this assignment's, with its own code (E_TIMEOUT counts differently).
      got = [expectOk(await this.ctx.command(hostId, live[0]!.cmd))]
    } else if (live.length > 1 && this.ctx.tracking.unbatched.has(hostId)) {
      got = await Promise.all(live.map((o) => this.ctx.command(hostId, o.cmd).then(expectOk, (e: unknown) => ({ t: 'err' as const, error: toWire(e) }))))
    } else if (live.length > 1) {
      try {
        const reply = await this.ctx.command(hostId, { v: V, t: 'assign-batch', term: this.ctx.fence.term, shares: live.map((o) => o.cmd.share) })
        if (reply.t !== 'assigned') throw new ShoalError('E_INTERNAL', `host ${hostId} answered an assign-batch with '${reply.t}'`)
        got = reply.answers
      } catch (e) {
        // A host of the release before batches: the batcher sends each again alone.
        if ((e as ShoalError).code === 'E_MSG_INVALID') this.ctx.tracking.unbatched.add(hostId)
        throw e
      }
    }
    let next = 0
    return answers.map((a) => a ?? got[next++]!)
  }
}

function stale(o: Outgoing): BatchAnswer<Ok> {
  return { t: 'err', error: toWire(new ShoalError('E_STALE_EPOCH', `share ${o.cmd.share.shareId} changed while its assignment waited to be sent: not sent`)) }
}

function expectOk(reply: HostReply): Ok {
  if (reply.t !== 'ok') throw new ShoalError('E_INTERNAL', `unexpected assign reply '${reply.t}'`)
  return reply
}
