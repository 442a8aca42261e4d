/**
 * Plan-hash check for the decision core: `decide` on fixed views at several scales, states, seeds
 * and knobs, each whole plan (actions in order, loads, noise, speeds, reasons, waiting…) hashed.
 * A change that is meant only to make `decide` faster must leave every hash as it was (issue 12:
 * "without changing a single decision"); a recorded list of the hashes from before such work lives
 * next to this file, in plan-hashes.txt.
 *
 *   node --import tsx bench/sim/plan-hash.ts            print the hashes
 *   node --import tsx bench/sim/plan-hash.ts --check    compare with plan-hashes.txt (exit 1 on any change)
 *   node --import tsx bench/sim/plan-hash.ts --small    only the views below 1,000 hosts (quick)
 *
 * Besides the `big-view.ts` views as they are, each view is also checked "twisted": the fields the
 * bench views never set (declared memory, memory pressure, avoided hosts, unmeasured jobs, speed
 * hints, noise, orphans, tag objects that are equal but not the same, a job whose shares disagree on
 * their tags) filled in on a seeded part of it, so the paths a memo or fast path could get wrong are
 * covered too. Never tune these views for speed: they exist to catch a changed decision.
 */

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { decide, type ClusterView, type HostView, type Knobs, type ShareView } from '../../lib/balancer/core/policy.ts'
import { bigView, type BigViewState } from './big-view.ts'
import { seededRng } from './rng.ts'

const DEFAULT: Knobs = { migrationThreshold: 3, minResidencyMs: 10_000, maxMovesPerCycle: 8, maxConcurrentMigrationsPerHost: 2, splitMinUnits: 1000 }
const KNOBS: Record<string, Knobs> = {
  default: DEFAULT,
  eager: { migrationThreshold: 5, minResidencyMs: 0, maxMovesPerCycle: 64, maxConcurrentMigrationsPerHost: 4, splitMinUnits: 1000 },
  static: { ...DEFAULT, migrationThreshold: 1, splitMinUnits: Number.POSITIVE_INFINITY },
}

/** A copy of `view` with the rarely set fields filled in on a seeded part of its hosts and shares. */
function twisted(view: ClusterView, seed: number): ClusterView {
  const rng = seededRng(seed * 31 + 5)
  const hosts: HostView[] = view.hosts.map((h, i) => {
    const out: HostView = { ...h, externalNoise: rng() * 0.05 }
    if (i % 17 === 4) out.coreSpeed = 0.5 + rng()
    if (i % 23 === 6) {
      out.memTotalBytes = 64 * 2 ** 30
      out.memFreeBytes = 2 ** 30 * rng() * 2
    }
    return out
  })
  const hostIds = hosts.map((h) => h.hostId)
  const shares: ShareView[] = view.shares.map((s, i) => {
    const job = Number(s.jobId.slice(3))
    const out: ShareView = { ...s, cpuDemandNoise: rng() * 0.02 }
    // Declared memory: the same for a job's shares (as a real job declares it), on some jobs.
    if (job % 5 === 1) out.memoryBytes = (1 + (job % 3)) * 2 ** 28
    // An unmeasured job, and unmeasured shares of measured ones.
    if (job === 2 || (s.status === 'running' && rng() < 0.02)) out.unitsPerSec = 0
    // Tags equal in content but not the same object; and one job whose shares disagree.
    if (s.requiredTags) out.requiredTags = { ...s.requiredTags }
    if (job === 4 && i % 7 === 0) out.requiredTags = { zone: 'b' }
    if (s.status === 'pending' && rng() < 0.01) out.avoidHosts = [hostIds[Math.floor(rng() * hostIds.length)]!]
    if (s.status === 'running' && rng() < 0.001) out.host = 'gone-host'
    if (s.status === 'running' && rng() < 0.01) out.lastMovedAt = null
    return out
  })
  return { hosts, shares, stunMsPerMiB: 30 }
}

function hashPlan(view: ClusterView, knobs: Knobs): string {
  const plan = decide(view, knobs, 0)
  // Numbers in full; Infinity and NaN spelled out (JSON would turn them into null).
  const json = JSON.stringify(plan, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? `#${v}` : v))
  return `${createHash('sha256').update(json).digest('hex').slice(0, 16)} ${plan.actions.length}`
}

function main(): void {
  const args = process.argv.slice(2)
  const small = args.includes('--small')
  const scales: Array<[number, number]> = [
    [50, 2_000],
    [200, 10_000],
    ...(small ? [] : ([[1_000, 100_000]] as Array<[number, number]>)),
  ]
  const lines: string[] = []
  for (const [H, S] of scales) {
    for (const state of ['submit', 'queue', 'running'] as BigViewState[]) {
      for (const seed of [1, 7]) {
        const plain = bigView(state, H, S, seed)
        const views: Array<[string, ClusterView]> = [
          ['plain', plain],
          ['twisted', twisted(plain, seed)],
        ]
        for (const [kind, view] of views) {
          for (const [name, knobs] of Object.entries(KNOBS)) {
            const line = `${H}x${S} ${state} seed${seed} ${kind} ${name} ${hashPlan(view, knobs)}`
            lines.push(line)
            console.log(line)
          }
        }
      }
    }
  }
  if (!args.includes('--check')) return
  const expected = new Map(
    readFileSync(new URL('./plan-hashes.txt', import.meta.url), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => {
        const p = l.split(' ')
        return [p.slice(0, 5).join(' '), p.slice(5).join(' ')] as const
      }),
  )
  let bad = 0
  for (const line of lines) {
    const p = line.split(' ')
    const want = expected.get(p.slice(0, 5).join(' '))
    if (want !== p.slice(5).join(' ')) {
      bad++
      console.error(`CHANGED: ${line} (recorded: ${want ?? 'none'})`)
    }
  }
  console.log(bad ? `${bad} of ${lines.length} plans changed` : `all ${lines.length} plans unchanged`)
  if (bad) process.exitCode = 1
}

main()
