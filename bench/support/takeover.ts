/**
 * One balancer takeover, measured the way a user meets it: the leading balancer is SIGKILLed (or
 * SIGSTOPped) and, from that moment,
 *   - "leader elected after": until `status()` is answered by another balancer naming itself
 *     leader with a higher term (the lease record's own takeover time is kept too), and
 *   - "pending work placed after": a small job submitted right after the fault (retried while no
 *     leader answers, under one job id so that a retry is the same job) until every share of it
 *     is running or done.
 * Both are polled every 25 ms with requests that give up after 150 ms, so a request sent into the
 * gap costs little time. A SIGSTOPped leader that was continued before any standby could take the
 * lease (the lease bucket itself unavailable, say) may rightly keep leading: that is reported as
 * `kept`, not as a takeover, once it has answered as the same leader for three leases after SIGCONT.
 *
 * Must never send the fault itself (the caller does, so it can account for the process it
 * signals), and never wait without a deadline.
 */

import type { JobSpec, ShoalClient } from '../../lib/sdk/client.ts'
import { BenchError, sleep } from './bench.ts'

const POLL_MS = 25

export interface LeaderRef {
  id: string
  pid: number
  term: number
}

export interface Takeover {
  cause: 'SIGKILL' | 'SIGSTOP'
  /** `kept`: no takeover happened, the stopped leader kept its lease (the figures below are then its). */
  outcome: 'takeover' | 'kept'
  from: LeaderRef
  to: LeaderRef
  /** Fault → the first status() answered by the new leader with a higher term. */
  leaderElectedAfterMs: number
  /** Fault → the new leader's lease record says it took over (its own clock, same machine). */
  leaseTakenAfterMs: number
  /** Fault → every share of the job submitted after the fault is running or done. */
  pendingWorkPlacedAfterMs: number
  probeJobId: string
}

/**
 * Measures a takeover from `faultAt` (Date.now() just before the caller signalled `from`).
 * `fast` must be a client whose requests give up quickly (150 ms), so the polls stay 25 ms apart.
 */
export async function measureTakeover(o: {
  fast: ShoalClient
  from: LeaderRef
  cause: Takeover['cause']
  faultAt: number
  probe: JobSpec & { jobId: string }
  timeoutMs: number
  leaseMs: number
  /** When a stopped leader was continued (undefined while it is stopped, and for a kill). */
  contAt?: () => number | undefined
}): Promise<Takeover> {
  const deadline = o.faultAt + o.timeoutMs
  const late = (what: string): BenchError => new BenchError(`takeover after ${o.cause} of balancer ${o.from.id} (term ${o.from.term}): ${what} within ${o.timeoutMs} ms`)

  const elected = (async () => {
    let sameSince: number | undefined
    for (;;) {
      const leader = await o.fast.status().then((st) => st.leader, () => undefined)
      if (leader && leader.id !== o.from.id && leader.term > o.from.term) return { at: Date.now(), leader, kept: false }
      // The old leader answering under its old term after SIGCONT: kept, once it has for three leases.
      const cont = o.contAt?.()
      if (cont !== undefined && leader?.id === o.from.id && leader.term === o.from.term) {
        sameSince ??= Date.now()
        if (Date.now() - sameSince >= 3 * o.leaseMs) return { at: sameSince, leader, kept: true }
      } else sameSince = undefined
      if (Date.now() > deadline) throw late('no other balancer answered as leader with a higher term')
      await sleep(POLL_MS)
    }
  })()

  const placed = (async () => {
    for (;;) {
      try {
        // Resolves once a leader admitted it; a second submit of the same id returns the same job.
        const job = await o.fast.submit(o.probe)
        job.close()
        break
      } catch (e) {
        // No leader yet (no responders, timeouts, a deposed leader's E_NOT_LEADER): try again.
        if ((e as { retryable?: boolean }).retryable !== true) throw e
      }
      if (Date.now() > deadline) throw late(`the probe job ${o.probe.jobId} was not admitted`)
      await sleep(POLL_MS)
    }
    for (;;) {
      const s = await o.fast.fetchJob(o.probe.jobId, true).catch(() => undefined)
      if (s && (s.state === 'completed' || (s.shares?.length && s.shares.every((sh) => sh.state === 'running' || sh.state === 'done')))) return Date.now()
      if (Date.now() > deadline) throw late(`the probe job ${o.probe.jobId} was not placed (last state: ${s?.state ?? 'no answer'}, shares: ${s?.shares?.map((sh) => sh.state).join('/') ?? '?'})`)
      await sleep(POLL_MS)
    }
  })()

  // Both run to the end (or their deadline) before either error is reported.
  const [e, p] = await Promise.allSettled([elected, placed])
  if (e.status === 'rejected') throw e.reason
  if (p.status === 'rejected') throw p.reason
  const to = e.value.leader
  return {
    cause: o.cause,
    outcome: e.value.kept ? 'kept' : 'takeover',
    from: o.from,
    to: { id: to.id, pid: to.pid, term: to.term },
    leaderElectedAfterMs: e.value.at - o.faultAt,
    leaseTakenAfterMs: to.since - o.faultAt,
    pendingWorkPlacedAfterMs: p.value - o.faultAt,
    probeJobId: o.probe.jobId,
  }
}
