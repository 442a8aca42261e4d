/**
 * Recovery at scale: the leading balancer is SIGKILLed with every record in the store, and a new
 * balancer process is started at once (the way a supervisor restarts one). Measured from the kill:
 *   - the new process's log: started (its own start-up), elected (the old lease lapsed), serving
 *     (it read every job and share record back), with the record counts it says it recovered;
 *   - the first `status` answered by the new balancer as leader, polled every 50 ms with one plain
 *     request each (a poll sent while nobody serves comes back at once, no responders; the SDK's
 *     own retries, with back-off up to 1 s, would add their wait to the figure);
 * and whether it recovered as many jobs and shares as the old one held (its metrics, just before
 * the kill). The hosts keep beating and running their shares meanwhile, as they would.
 *
 * Must never leave the old or the new process running on failure: the old one is dead, and the
 * new one is returned to the caller, who stops it.
 */

import { connect } from '@nats-io/transport-node'
import { closeNats } from '../../lib/nats-connect.ts'
import { Bus } from '../../lib/protocol/bus.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import { PROTOCOL_VERSION as V, apiReplySchema } from '../../lib/protocol/messages.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { sleep } from '../support/bench.ts'
import { BalancerProcess } from './balancer-process.ts'

export interface Recovery {
  balancer: BalancerProcess
  figures: Record<string, unknown>
}

export async function measureRecovery(o: {
  old: BalancerProcess
  newId: string
  natsUrl: string
  cluster: string
  maxMessageBytes: number
  expected: { jobs: number | null; shares: number | null }
  timeoutMs: number
}): Promise<Recovery> {
  const subjects = new Subjects(o.cluster)
  const inbox = subjects.inbox('operator')
  const nc = await connect({ servers: o.natsUrl, name: 'shoal-bench-scale-recovery', inboxPrefix: inbox })
  const bus = new Bus(nc, new Codec(o.maxMessageBytes), { inbox })
  const killAt = Date.now()
  await o.old.kill()
  const b = new BalancerProcess(o.newId, o.natsUrl, o.cluster)
  const deadline = killAt + o.timeoutMs
  let statusAt: number | undefined
  let polls = 0
  let lastError = ''
  try {
    while (Date.now() < deadline && !b.exit) {
      polls++
      try {
        const st = await bus.request(subjects.api('status', 'operator'), { v: V, t: 'status' }, apiReplySchema, Math.max(1, deadline - Date.now()))
        if (st.t === 'status' && st.leader?.id === o.newId) {
          statusAt = Date.now()
          break
        }
      } catch (e) {
        lastError = (e as Error).message.slice(0, 200)
      }
      await sleep(50)
    }
  } finally {
    await closeNats(nc)
  }
  // The new balancer logs "serving" just before it answers: its answer can overtake the line on
  // the way through its stdout (a smoke run in the suite saw status answered and no line read yet).
  for (const until = Date.now() + 5_000; statusAt !== undefined && !b.serving && !b.exit && Date.now() < until; ) await sleep(20)
  const since = (t: number | undefined) => (t === undefined ? null : t - killAt)
  const got = b.serving
  return {
    balancer: b,
    figures: {
      recordsBeforeKill: o.expected,
      recovered: { jobs: got?.jobs ?? null, shares: got?.shares ?? null },
      allRecovered: got !== undefined && got.jobs === o.expected.jobs && got.shares === o.expected.shares,
      killToProcessStartedMs: since(b.followingAt),
      killToElectedMs: since(b.electedAt),
      // Reading every record back: elected → serving.
      electedToServingMs: b.electedAt !== undefined && got ? got.at - b.electedAt : null,
      killToServingMs: since(got?.at),
      killToStatusAsLeaderMs: since(statusAt),
      statusPolls: polls,
      ...(statusAt === undefined ? { timedOut: `no status answered by ${o.newId} as leader within ${o.timeoutMs} ms${lastError ? ` (last error: ${lastError})` : ''}` } : {}),
    },
  }
}
