/**
 * The command that hands a share to a host under an epoch: the one builder, so that the admission
 * check (an input no assignment could carry is refused at submit) measures exactly what
 * assignments and migrations send.
 */

import { PROTOCOL_VERSION as V, type HostCommand } from '../protocol/messages.ts'
import type { ShareRecord } from './store.ts'

export function assignCommand(
  job: { jobId: string; processor: string; input: unknown },
  s: { shareId: string; from: number; to: number; position: number; unitsDone: number; state?: unknown; stateRef?: ShareRecord['stateRef'] },
  epoch: number,
  term: number,
): Extract<HostCommand, { t: 'assign' }> {
  return {
    v: V,
    t: 'assign',
    term,
    share: { shareId: s.shareId, jobId: job.jobId, epoch, processor: job.processor, input: job.input, from: s.from, to: s.to, position: s.position, state: s.state, ...(s.stateRef ? { stateRef: s.stateRef } : {}), unitsDone: s.unitsDone },
  }
}
