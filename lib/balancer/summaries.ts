/**
 * Builds the summaries the balancer shows users (SDK, CLI, events) from its records. Pure.
 *
 * Progress counts each unit of a job's range once: a done share contributes its whole range, any
 * other share the units before its position (the live one from heartbeats when it is ahead of the
 * durable one). Units redone after a loss are not counted twice because position never double
 * counts a unit.
 *
 * Must never import NATS, timers or the clock.
 */

import type { JobSummary, ShareSummary, HostSummary } from '../protocol/messages.ts'
import type { PoolHost } from '../pool/membership.ts'
import type { JobRecord, ShareRecord } from './store.ts'

/** Live progress reported by hosts in heartbeats, keyed by shareId. */
export type LivePositions = ReadonlyMap<string, { epoch: number; position: number }>

export function sharePosition(s: ShareRecord, live: LivePositions): number {
  if (s.status === 'done') return s.to
  const l = live.get(s.shareId)
  const p = l && l.epoch === s.epoch && s.status === 'running' ? Math.max(s.position, l.position) : s.position
  return Math.min(p, s.to)
}

export function shareSummary(s: ShareRecord, live: LivePositions): ShareSummary {
  const position = sharePosition(s, live)
  return {
    shareId: s.shareId,
    jobId: s.jobId,
    from: s.from,
    to: s.to,
    position,
    unitsDone: position - s.from,
    state: s.status,
    epoch: s.epoch,
    host: s.host,
    hosts: s.hosts,
  }
}

export function jobSummary(job: JobRecord, shares: readonly ShareRecord[], live: LivePositions, now: number, withShares = false): JobSummary {
  let unitsDone = 0
  let sharesDone = 0
  for (const s of shares) {
    unitsDone += sharePosition(s, live) - s.from
    if (s.status === 'done') sharesDone++
  }
  const out: JobSummary = {
    jobId: job.jobId,
    processor: job.processor,
    state: job.state,
    from: job.from,
    to: job.to,
    unitsTotal: job.to - job.from,
    unitsDone,
    sharesTotal: shares.length,
    sharesDone,
    submittedAt: job.submittedAt,
    elapsedMs: (job.finishedAt ?? now) - job.submittedAt,
    owner: job.owner ?? 'operator',
  }
  if (job.finishedAt !== undefined) out.finishedAt = job.finishedAt
  if (job.reason !== undefined) out.reason = job.reason
  if (job.state === 'completed') out.result = job.result
  if (job.error !== undefined) out.error = job.error
  if (withShares) out.shares = [...shares].sort((a, b) => a.from - b.from).map((s) => shareSummary(s, live))
  return out
}

export function hostSummary(h: PoolHost, runningShares: number, draining: boolean, now: number): HostSummary {
  const hb = h.heartbeat
  return {
    hostId: h.hostId,
    state: h.state,
    lastSeenMsAgo: Math.max(0, now - h.lastSeen),
    capacity: hb.capacity,
    load: hb.load,
    tags: hb.tags,
    processors: hb.processors,
    shares: runningShares,
    draining,
    ...(hb.periodMs === undefined ? {} : { heartbeatMs: hb.periodMs }),
  }
}
