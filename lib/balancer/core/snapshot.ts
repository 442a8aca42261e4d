/**
 * Builds the plain-data `ClusterView` the policy decides from, out of what the balancer shell
 * holds: live hosts' last heartbeats, jobs and share records, live positions and rates from
 * heartbeats, and what is in flight. Pure, so what the policy sees is testable without NATS.
 *
 * Choices made here:
 * - Alive hosts are in the view as they are. A suspect host (missed beats, not yet dead) is in it
 *   too, so its load counts, but with no free slot and all its shares busy: nothing is placed on,
 *   split onto or migrated off a host that may be gone (a pause there would time out).
 * - A benched host (it refused several assignments in a row) takes nothing new either, for a
 *   while; what runs there stays and may move as usual.
 * - Slots promised to migrations and splits in flight (`incoming`) are taken off the target's
 *   slots, so a cycle never gives the same slot twice.
 * - A running share whose host is not in the view (dead, not yet reclaimed) is left out: failover
 *   owns it.
 * - Live position, rate and CPU demand come from the host's heartbeat when it reports the share's
 *   current epoch; otherwise the durable position and "unknown" (0). CPU demands, a share's and a
 *   host's external one, are the smoothed readings of `loads` (with their noise) once it has one.
 *
 * Must never import NATS, timers or the clock.
 */

import type { ClusterView, HostView, ShareView } from './cluster-view.ts'
import type { SignalReading } from './load-signal.ts'
import type { StunCost } from './stun-model.ts'

/** The least CPU demand a measured share is given, so that it stays distinct from "unknown" (0). */
export const MIN_MEASURED_DEMAND = 0.001

export interface SnapshotHost {
  hostId: string
  state: 'alive' | 'suspect' | 'dead' | 'left'
  heartbeat: {
    capacity: { slots: number; cores: number; memoryBytes?: number }
    tags: Readonly<Record<string, string>>
    processors: readonly string[]
    load: { cpuMachine: number; cpuShoal: number; memFreeBytes: number }
  }
}

export interface SnapshotJob {
  jobId: string
  processor: string
  submittedAt: number
  requiredTags?: Readonly<Record<string, string>> | undefined
  memoryBytesPerShare?: number | undefined
  spread?: boolean | undefined
}

export interface SnapshotShare {
  shareId: string
  jobId: string
  to: number
  position: number
  status: string
  epoch: number
  host: string | null
  failedOn?: readonly string[] | undefined
  stateRef?: { bytes: number } | undefined
  /** Encoded size of the last durable checkpoint state (inline states). */
  stateBytes?: number | undefined
}

/** What the last heartbeats said about a running share. */
export interface LiveShare {
  epoch: number
  position: number
  unitsPerSec?: number | undefined
  /**
   * Cores the share wants: its worker thread's busy fraction, 0..1, from the heartbeat; absent
   * until the host has measured it (the policy then counts one core).
   */
  cpuDemand?: number | undefined
}

export interface SnapshotInput {
  hosts: Iterable<SnapshotHost>
  draining: ReadonlySet<string>
  /** Hosts that take nothing new for now (they kept refusing assignments). */
  benched?: ReadonlySet<string>
  /** Slots promised to migrations and splits in flight, by target host. */
  incoming: ReadonlyMap<string, number>
  /** Core speeds earlier plans measured (`Plan.coreSpeeds`), by host. */
  coreSpeeds: ReadonlyMap<string, number>
  /** Unfinished jobs (any order: the view lists them oldest first). */
  jobs: Iterable<SnapshotJob>
  sharesOf: (jobId: string) => readonly SnapshotShare[]
  live: ReadonlyMap<string, LiveShare>
  /** Last live migration of each share (placements do not count). */
  movedAt: ReadonlyMap<string, number>
  /** Shares a migration or split is working on. */
  moving: ReadonlySet<string>
  stun: StunCost
  /**
   * Smoothed loads (`load-history.ts`): a host's external demand and a share's CPU demand with
   * their noise. Absent, or no reading yet: the last heartbeat's figures, taken as exact.
   */
  loads?: {
    external(hostId: string): SignalReading | undefined
    shareDemand(hostId: string, shareId: string, epoch: number): SignalReading | undefined
  }
}

export function buildClusterView(input: SnapshotInput): ClusterView {
  const hosts: HostView[] = []
  const suspect = new Set<string>()
  for (const h of input.hosts) {
    if (h.state !== 'alive' && h.state !== 'suspect') continue
    const hb = h.heartbeat
    if (h.state === 'suspect') suspect.add(h.hostId)
    const view: HostView = {
      hostId: h.hostId,
      slots: Math.max(0, hb.capacity.slots - (input.incoming.get(h.hostId) ?? 0)),
      cores: hb.capacity.cores,
      memFreeBytes: hb.load.memFreeBytes,
      ...(hb.capacity.memoryBytes ? { memTotalBytes: hb.capacity.memoryBytes } : {}),
      tags: hb.tags,
      processors: new Set(hb.processors),
      draining: input.draining.has(h.hostId),
      externalLoad: Math.max(0, hb.load.cpuMachine - hb.load.cpuShoal),
    }
    const ext = input.loads?.external(h.hostId)
    if (ext && ext.samples > 0) {
      view.externalLoad = ext.level
      view.externalNoise = ext.noise
    }
    const speed = input.coreSpeeds.get(h.hostId)
    if (speed !== undefined) view.coreSpeed = speed
    hosts.push(view)
  }
  const inView = new Set(hosts.map((h) => h.hostId))

  const shares: ShareView[] = []
  const running = new Map<string, number>()
  const jobs = [...input.jobs].sort((a, b) => a.submittedAt - b.submittedAt || (a.jobId < b.jobId ? -1 : 1))
  for (const job of jobs) {
    // Once a job, not once a share (an Object.keys array per share at 50,000 shares a pass).
    const tags = job.requiredTags && Object.keys(job.requiredTags).length ? job.requiredTags : undefined
    for (const s of input.sharesOf(job.jobId)) {
      if (s.status !== 'pending' && s.status !== 'running') continue
      if (s.status === 'running' && (s.host === null || !inView.has(s.host))) continue
      const live = s.status === 'running' ? input.live.get(s.shareId) : undefined
      const current = live !== undefined && live.epoch === s.epoch
      const view: ShareView = {
        shareId: s.shareId,
        jobId: job.jobId,
        processor: job.processor,
        status: s.status,
        host: s.status === 'running' ? s.host : null,
        position: current ? Math.max(s.position, Math.min(live.position, s.to)) : s.position,
        to: s.to,
        unitsPerSec: current ? (live.unitsPerSec ?? 0) : 0,
        // 0 means "unknown" to the policy (one core): a measured idle share must not read as that.
        cpuDemand: current && live.cpuDemand !== undefined ? Math.max(MIN_MEASURED_DEMAND, live.cpuDemand) : 0,
        checkpointBytes: s.stateRef?.bytes ?? s.stateBytes ?? 0,
        lastMovedAt: input.movedAt.get(s.shareId) ?? null,
        busy: input.moving.has(s.shareId) || (s.host !== null && suspect.has(s.host)),
      }
      const demand = current ? input.loads?.shareDemand(s.host!, s.shareId, s.epoch) : undefined
      if (demand) {
        view.cpuDemand = Math.max(MIN_MEASURED_DEMAND, demand.level)
        view.cpuDemandNoise = demand.noise
      }
      if (tags) view.requiredTags = tags
      if (job.memoryBytesPerShare) view.memoryBytes = job.memoryBytesPerShare
      if (job.spread) view.spread = true
      if (s.status === 'pending' && s.failedOn?.length) view.avoidHosts = s.failedOn
      if (view.status === 'running') running.set(view.host!, (running.get(view.host!) ?? 0) + 1)
      shares.push(view)
    }
  }
  // A suspect or benched host takes nothing new: its slots are exactly what already runs there.
  for (const h of hosts) if (suspect.has(h.hostId) || input.benched?.has(h.hostId)) h.slots = Math.min(h.slots, running.get(h.hostId) ?? 0)

  const view: ClusterView = { hosts, shares }
  if (input.stun.stunBaseMs !== undefined) view.stunBaseMs = input.stun.stunBaseMs
  if (input.stun.stunMsPerMiB !== undefined) view.stunMsPerMiB = input.stun.stunMsPerMiB
  return view
}
