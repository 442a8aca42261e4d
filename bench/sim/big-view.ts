/**
 * Fixed, seeded `ClusterView`s at a given scale for timing `decide` on its own, in three states:
 *
 *  - `submit`: every host idle, every share pending (a burst of submissions: the biggest placement);
 *  - `queue`:  every slot busy with measured shares, the rest pending (steady state of a busy pool);
 *  - `running`: (almost) every share running on big hosts, a few hogs, some idle slots and long
 *    shares (splits), a draining host (mandatory moves), tags and spread jobs (constraints).
 *
 * Must never call the policy or the clock: it only builds data.
 */

import type { ClusterView, HostView, ShareView } from '../../lib/balancer/core/policy.ts'
import { pick, seededRng } from './rng.ts'

export type BigViewState = 'submit' | 'queue' | 'running'

export function bigView(state: BigViewState, hostCount: number, shareCount: number, seed: number): ClusterView {
  const rng = seededRng(seed)
  // `running` needs about one slot per share: hosts of 64–128 cores at 1,000 × 100,000.
  const perHost = shareCount / hostCount
  const coreChoices = state === 'running' ? [perHost * 0.66, perHost, perHost * 1.33].map((c) => Math.max(1, Math.round(c))) : [4, 8, 16, 32]
  const hosts: HostView[] = Array.from({ length: hostCount }, (_, i) => {
    const cores = pick(rng, coreChoices)
    return {
      hostId: `h${String(i).padStart(5, '0')}`,
      slots: cores,
      cores,
      memFreeBytes: 256 * 2 ** 30,
      tags: { zone: i % 3 === 0 ? 'a' : 'b' },
      processors: new Set(i % 10 === 9 ? ['cpu-burn'] : ['cpu-burn', 'count-primes']),
      draining: state === 'running' && i === 7,
      externalLoad: state !== 'submit' && i % 100 === 3 ? 0.5 + 0.4 * rng() : 0.05 * rng(),
    }
  })
  const free = hosts.map((h) => h.slots)
  const jobs = 100
  const shares: ShareView[] = []
  let cursor = 0
  for (let i = 0; i < shareCount; i++) {
    const job = i % jobs
    const processor = job % 4 === 0 ? 'count-primes' : 'cpu-burn'
    const requiredTags = job % 9 === 0 ? { zone: 'a' } : undefined
    // Running where there is a free slot (walking hosts round-robin), else pending.
    let host: HostView | undefined
    if (state !== 'submit') {
      for (let tries = 0; tries < hostCount && !host; tries++) {
        const h = (cursor + tries) % hostCount
        const cand = hosts[h]!
        const idleKeep = state === 'running' && h % 50 === 11 ? 8 : 0 // some hosts keep idle slots
        if (free[h]! > idleKeep && cand.processors.has(processor) && (!requiredTags || cand.tags.zone === requiredTags.zone)) {
          host = cand
          free[h]! -= 1
          cursor = h + 1
        }
      }
    }
    const to = 1_000_000 + Math.floor(rng() * 9_000_000)
    const position = host ? Math.floor(rng() * to * 0.8) : 0
    shares.push({
      shareId: `job${String(job).padStart(3, '0')}-s${i}`,
      jobId: `job${String(job).padStart(3, '0')}`,
      processor,
      ...(requiredTags ? { requiredTags } : {}),
      spread: job % 13 === 0,
      status: host ? 'running' : 'pending',
      host: host ? host.hostId : null,
      position,
      to,
      unitsPerSec: host ? 5_000 + rng() * 50_000 : 0,
      cpuDemand: host ? 0.95 + 0.05 * rng() : 0,
      checkpointBytes: Math.floor(rng() * 4 * 2 ** 20),
      lastMovedAt: host ? -Math.floor(rng() * 60_000) : null,
      busy: host !== undefined && rng() < 0.005,
    })
  }
  return { hosts, shares, stunBaseMs: 15, stunMsPerMiB: 40 }
}
