/**
 * Times `buildClusterView` alone (the snapshot half of a balancing pass) on synthetic input: HOSTS
 * alive hosts, SHARES running shares in 100 jobs (with `{}` required tags, as submitted jobs carry),
 * each with a live position and ten samples of smoothed CPU demand, as heartbeats leave them
 * (issue 12, point 6). Five untimed calls, then 30 timed; prints the median and the slowest.
 *
 *   node --import tsx bench/sim/snapshot-time.ts [HOSTS] [SHARES]     (default 2000 10000)
 *
 * What it does not see: a balancer's large heap and a contended core, which in full runs stretch a
 * pass's wall time beyond this (bench/RESULTS.md). Must never shape the input to flatter a figure.
 */

import { performance } from 'node:perf_hooks'
import { LoadHistory } from '../../lib/balancer/core/load-history.ts'
import { buildClusterView, type SnapshotInput, type SnapshotShare } from '../../lib/balancer/core/snapshot.ts'

function input(hostCount: number, shareCount: number): SnapshotInput {
  const hosts = Array.from({ length: hostCount }, (_, i) => ({
    hostId: `h${i}`,
    state: 'alive' as const,
    heartbeat: { capacity: { slots: 8, cores: 8, memoryBytes: 2 ** 34 }, tags: {}, processors: ['p'], load: { cpuMachine: 0.5, cpuShoal: 0.4, memFreeBytes: 2 ** 33 } },
  }))
  const jobs = Array.from({ length: 100 }, (_, j) => ({ jobId: `j${j}`, processor: 'p', submittedAt: j, requiredTags: {} }))
  const sharesOf = new Map<string, SnapshotShare[]>()
  const live = new Map<string, { epoch: number; position: number; unitsPerSec: number; cpuDemand: number }>()
  const onHost = new Map<string, Array<{ shareId: string; epoch: number; busy: number }>>()
  for (let i = 0; i < shareCount; i++) {
    const jobId = `j${i % 100}`
    const host = `h${i % hostCount}`
    const shareId = `${jobId}-s${i}`
    const list = sharesOf.get(jobId) ?? []
    sharesOf.set(jobId, list)
    list.push({ shareId, jobId, to: 1e6, position: 10, status: 'running', epoch: 1, host, stateBytes: 100 })
    live.set(shareId, { epoch: 1, position: 20, unitsPerSec: 5, cpuDemand: 0.9 })
    const mine = onHost.get(host) ?? []
    onHost.set(host, mine)
    mine.push({ shareId, epoch: 1, busy: 0.9 })
  }
  const loads = new LoadHistory(10_000)
  for (let beat = 0; beat < 10; beat++) for (const [host, mine] of onHost) loads.observe(beat * 1000, host, 8, { cpuMachine: 0.5, cpuShoal: 0.4 }, mine)
  return { hosts, draining: new Set(), incoming: new Map(), coreSpeeds: new Map(), jobs, sharesOf: (j) => sharesOf.get(j) ?? [], live, movedAt: new Map(), moving: new Set(), stun: {}, loads }
}

const hosts = Number(process.argv[2] ?? 2000)
const shares = Number(process.argv[3] ?? 10_000)
const view = input(hosts, shares)
for (let i = 0; i < 5; i++) buildClusterView(view)
const ms: number[] = []
for (let i = 0; i < 30; i++) {
  const t0 = performance.now()
  buildClusterView(view)
  ms.push(performance.now() - t0)
}
ms.sort((a, b) => a - b)
console.log(`buildClusterView, ${hosts} hosts x ${shares} running shares: median ${ms[15]!.toFixed(2)} ms, slowest ${ms[29]!.toFixed(2)} ms`)
