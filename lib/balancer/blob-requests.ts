/**
 * Large states from and for hosts, in chunks through the balancer (hosts have no JetStream
 * permission, issue 10). A host may store states only of a share it runs under that epoch, and
 * read only the state of a share assigned to it.
 */

import { ShoalError } from '../errors.ts'
import { NO_REPLY } from '../protocol/bus.ts'
import { PROTOCOL_VERSION as V, type BlobReply, type BlobRequest } from '../protocol/messages.ts'
import type { BlobProxy } from './blob-proxy.ts'
import type { BalancerContext } from './context.ts'

export async function serveBlob(ctx: BalancerContext, blobs: BlobProxy, r: BlobRequest, subject: string): Promise<BlobReply | typeof NO_REPLY> {
  if (!ctx.acting()) return NO_REPLY
  const from = ctx.subjects.parseBlob(subject)
  if (from !== r.hostId) {
    ctx.bus.rejects.count(subject, 'identity')
    throw new ShoalError('E_FORBIDDEN', `a blob request on ${subject} must name host ${from ?? '(none)'}, not ${r.hostId}`)
  }
  const [shareId, epoch, owner] = r.name.split('.')
  const s = ctx.ledger.share(shareId ?? '')
  if (r.t === 'blob-put') {
    if (!s || owner !== r.hostId || s.host !== r.hostId || s.status !== 'running' || s.epoch !== Number(epoch)) {
      ctx.bus.rejects.count(subject, 'forbidden')
      throw new ShoalError('E_STALE_EPOCH', `host ${r.hostId} does not run share ${shareId} at epoch ${epoch}: it may not store ${r.name}`)
    }
    await blobs.put(r.hostId, r.name, r.index, r.count, r.total, r.chunk, Date.now())
    return { v: V, t: 'ok' }
  }
  if (!s || s.host !== r.hostId || s.status !== 'running' || s.stateRef?.name !== r.name) {
    ctx.bus.rejects.count(subject, 'forbidden')
    throw new ShoalError('E_FORBIDDEN', `host ${r.hostId} may read only the state of a share assigned to it, not ${r.name}`)
  }
  const { chunk, total } = await blobs.get(r.name, r.offset, r.length)
  return { v: V, t: 'blob', total, chunk }
}
