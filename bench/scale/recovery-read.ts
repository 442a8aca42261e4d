/**
 * Recovery's cost alone, without the 6-minute scale run (issue 12: "recovery of 100,000 share
 * records ≤ 3 s"). A private nats-server is filled once, through the real Store, with records
 * shaped as the scale benchmark leaves them: `jobs` finished jobs of `sharesPerJob` done shares
 * (made by the ledger's own transitions, so their fields are a real done share's), plus running
 * jobs whose shares run `perHost` to a host on `hosts` hosts, each host with a journal record of
 * later checkpoints; each share record is then written `rewrites` more times, as a real one is
 * (created, assigned, done), so the stream holds mostly holes. Then a fresh process per run starts
 * a real Balancer in-process over those buckets (`Balancer.start`: the store read, the ledger, the
 * journal, the trims) and reports how long that took and what it recovered, alternating between
 * checkouts (`--lib`), so an old and a new version are compared in the same minute on the same data.
 *
 *   node --import tsx bench/scale/recovery-read.ts [--jobs 1000] [--shares-per-job 100]
 *        [--hosts 2000] [--per-host 5] [--rewrites 2] [--runs 5] [--lib DIR ...] [--cpu-prof DIR] [--hold]
 *
 * A fresh process per run: a takeover is a process whose recovery code has never run (cold JIT)
 * and whose heap is empty. `--cpu-prof DIR` writes there each run's V8 profile of `Balancer.start`.
 * `--hold` only fills the server, prints its URL and keeps it up until interrupted (for probes).
 *
 * Must never use a nats-server it did not start, or tune what it measures.
 */

import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { resolve } from 'node:path'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HERE = fileURLToPath(import.meta.url)
const CLUSTER = 'rr'

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '1000' },
    'shares-per-job': { type: 'string', default: '100' },
    hosts: { type: 'string', default: '2000' },
    'per-host': { type: 'string', default: '5' },
    rewrites: { type: 'string', default: '2' },
    runs: { type: 'string', default: '5' },
    lib: { type: 'string', multiple: true },
    'cpu-prof': { type: 'string' },
    hold: { type: 'boolean', default: false },
    // Internal: one measured run in this process.
    measure: { type: 'boolean', default: false },
    url: { type: 'string' },
    'prof-out': { type: 'string' },
  },
})

if (args.measure) await measure(resolve(args.lib![0]!), args.url!)
else await drive()

async function drive(): Promise<void> {
  const { startNatsServer } = await import('../../lib/nats-server/launcher.ts')
  const libs = (args.lib?.length ? args.lib : [resolve(HERE, '../../../lib')]).map((l) => resolve(l))
  const server = await startNatsServer()
  try {
    const t0 = performance.now()
    const filled = await fill(server.url)
    console.error(`filled ${JSON.stringify(filled)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    if (args.hold) {
      // For ad-hoc probes: the filled server stays up until this process is interrupted.
      console.log(JSON.stringify({ url: server.url, cluster: CLUSTER, pid: server.pid }))
      await new Promise((r) => process.once('SIGINT', r))
      return
    }
    const results: Record<string, number[]> = Object.fromEntries(libs.map((l) => [l, []]))
    for (let run = 0; run < Number(args.runs); run++) {
      for (const lib of run % 2 ? [...libs].reverse() : libs) {
        const cpu0 = serverCpuMs(server.pid)
        const r = await child(lib, server.url, run)
        r.serverCpuMs = serverCpuMs(server.pid) - cpu0
        results[lib]!.push(r.startMs!)
        console.log(JSON.stringify({ lib, run, load1: loadavg()[0]!.toFixed(2), ...r }))
      }
    }
    for (const [lib, ms] of Object.entries(results)) {
      const sorted = [...ms].sort((a, b) => a - b)
      const mid = sorted.length / 2
      const median = sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2
      console.log(JSON.stringify({ lib, medianStartMs: median, runsMs: ms, records: filled, loadavg: loadavg().map((x) => x.toFixed(2)), at: new Date().toISOString() }))
    }
  } finally {
    await server.stop()
  }
}

/** CPU time the nats-server process used so far (Linux /proc; clock ticks of 10 ms). */
function serverCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

function child(lib: string, url: string, run: number): Promise<Record<string, number>> {
  const prof = args['cpu-prof'] ? ['--prof-out', resolve(args['cpu-prof'], `run${run}-${lib.replace(/\W+/g, '_')}.cpuprofile`)] : []
  const p = spawn(process.execPath, ['--import', 'tsx', HERE, '--measure', '--lib', lib, '--url', url, ...prof], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  p.stdout.on('data', (d: Buffer) => (out += d.toString()))
  return new Promise((res, rej) => {
    p.on('exit', (code) => (code === 0 ? res(JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>) : rej(new Error(`measure run exited with ${code}: ${out}`))))
  })
}

/** Writes the records through the real store (this checkout's), 512 writes in flight. */
async function fill(url: string): Promise<Record<string, number>> {
  const { connect } = await import('@nats-io/transport-node')
  const { openBuckets } = await import('../../lib/balancer/buckets.ts')
  const { openFence } = await import('../../lib/balancer/fence.ts')
  const { Store } = await import('../../lib/balancer/store.ts')
  const { Ledger, newPendingShare } = await import('../../lib/balancer/ledger.ts')
  const { Subjects } = await import('../../lib/protocol/subjects.ts')
  type JobRecord = import('../../lib/balancer/store.ts').JobRecord
  const nc = await connect({ servers: url })
  const store = new Store(await openBuckets(nc, new Subjects(CLUSTER), { leaseMs: 1000 }), openFence(1))
  const ledger = new Ledger()
  const jobs = Number(args.jobs)
  const per = Number(args['shares-per-job'])
  const hosts = Number(args.hosts)
  const perHost = Number(args['per-host'])
  const host = (i: number) => `host-${String(i % hosts).padStart(5, '0')}`
  const writes: Array<() => Promise<void>> = []
  const now = Date.parse('2026-12-07T10:00:00Z')
  const job = (i: number, done: boolean, shares: number): JobRecord => ({
    jobId: `scale-${String(i).padStart(6, '0')}`,
    owner: 'operator',
    processor: 'synthetic',
    input: { runMs: done ? 0 : 600_000, failPermille: 10 },
    from: 0,
    to: shares,
    state: done ? 'completed' : 'running',
    submittedAt: now + i,
    ...(done ? { finishedAt: now + i + 500, result: shares } : {}),
    nextShare: shares,
  })
  let shareCount = 0
  for (let i = 0; i < jobs; i++) {
    const j = job(i, true, per)
    ledger.addJob(j)
    writes.push(() => store.putJob(j))
    for (let k = 0; k < per; k++) {
      const s = newPendingShare(j.jobId, k, k, k + 1, now + i)
      ledger.addShare(s)
      ledger.assign(s, host(i * per + k), now + i + 1)
      // 1 % fail their first attempt and finish elsewhere, as the scale run's tiny jobs do.
      if (k % 100 === 7) {
        s.attempts = 1
        s.failedOn = [s.host!]
        ledger.requeue(s, now + i + 2)
        ledger.assign(s, host(i * per + k + 1), now + i + 3)
      }
      ledger.finish(s, 1, 1, now + i + 4)
      writes.push(() => store.putShare(s))
      shareCount++
    }
  }
  // Running shares: `perHost` on each host, 100 to a job, each with a later checkpoint in its host's journal.
  const running = hosts * perHost
  const journal = new Map<string, Array<Record<string, unknown>>>()
  for (let r = 0, i = jobs; r < running; i++) {
    const n = Math.min(100, running - r)
    const j = job(i, false, n * 1000)
    ledger.addJob(j)
    writes.push(() => store.putJob(j))
    for (let k = 0; k < n; k++, r++) {
      const s = newPendingShare(j.jobId, k, k * 1000, (k + 1) * 1000, now + i)
      ledger.addShare(s)
      ledger.assign(s, host(r), now + i + 1)
      s.position = s.from + 100
      s.unitsDone = 100
      s.state = { units: 100 }
      s.stateBytes = 9
      writes.push(() => store.putShare(s))
      shareCount++
      const entries = journal.get(s.host!) ?? []
      entries.push({ shareId: s.shareId, epoch: s.epoch, position: s.from + 250, unitsDone: 250, state: { units: 250 }, stateBytes: 9 })
      journal.set(s.host!, entries)
    }
  }
  for (const [hostId, entries] of journal) writes.push(() => store.journal.put(hostId, { hostId, entries: entries as never }))
  // Two hosts drained by an operator.
  writes.push(() => store.putHost({ hostId: host(1), draining: true }), () => store.putHost({ hostId: host(2), draining: false }))
  const run = async (all: Array<() => Promise<void>>) => {
    let next = 0
    await Promise.all(Array.from({ length: 512 }, async () => {
      while (next < all.length) await all[next++]!()
    }))
  }
  await run(writes)
  // A real share record is written about three times (created, assigned, done): with history 1
  // the stream keeps only the last, so its sequences are mostly holes the server skips when read.
  const shareWrites = [...ledgerShares(ledger)].map((s) => () => store.putShare(s))
  for (let i = 0; i < Number(args.rewrites); i++) await run(shareWrites)
  await nc.close()
  return { jobs: ledger.jobCount, shares: shareCount, shareWrites: shareCount * (1 + Number(args.rewrites)), finishedShares: jobs * per, runningShares: running, journal: journal.size }
}

function* ledgerShares(ledger: import('../../lib/balancer/ledger.ts').Ledger) {
  for (const j of ledger.allJobs()) yield* ledger.sharesOf(j.jobId)
}

/** One run: a Balancer of term 2 started over the filled buckets, timed from start to serving. */
async function measure(lib: string, url: string): Promise<void> {
  const { connect } = await import('@nats-io/transport-node')
  const { Balancer } = (await import(`${lib}/balancer/balancer.ts`)) as typeof import('../../lib/balancer/balancer.ts')
  const { openBuckets } = (await import(`${lib}/balancer/buckets.ts`)) as typeof import('../../lib/balancer/buckets.ts')
  const { openFence } = (await import(`${lib}/balancer/fence.ts`)) as typeof import('../../lib/balancer/fence.ts')
  const { loadConfig } = (await import(`${lib}/config/mod.ts`)) as typeof import('../../lib/config/mod.ts')
  const { silentLogger } = (await import(`${lib}/log.ts`)) as typeof import('../../lib/log.ts')
  const { BalancerMetrics } = (await import(`${lib}/metrics/balancer-metrics.ts`)) as typeof import('../../lib/metrics/balancer-metrics.ts')
  const { Subjects } = (await import(`${lib}/protocol/subjects.ts`)) as typeof import('../../lib/protocol/subjects.ts')
  const { Store } = (await import(`${lib}/balancer/store.ts`)) as typeof import('../../lib/balancer/store.ts')
  // The store's read timed on its own (the same module instance the balancer uses): the rest of
  // the start is decoding left over, the ledger, the journal and the trims.
  let loadAllMs = 0
  const loadAll = Store.prototype.loadAll
  Store.prototype.loadAll = async function (this: InstanceType<typeof Store>, ...a: Parameters<typeof loadAll>) {
    const t = performance.now()
    try {
      return await loadAll.apply(this, a)
    } finally {
      loadAllMs = performance.now() - t
    }
  }
  const config = loadConfig({ env: {}, overrides: { cluster: CLUSTER, nats: { url } } as never })
  const nc = await connect({ servers: url })
  const buckets = await openBuckets(nc, new Subjects(CLUSTER), { leaseMs: config.balancer.leaseMs })
  const metrics = new BalancerMetrics(() => ({ hostsByState: {}, hosts: [], sharesByState: {}, jobsByState: {}, jobProgress: [], settings: {} }))
  // Profiled from just before the start to serving: the profile holds recovery and nothing else.
  const session = args['prof-out'] ? new Session() : undefined
  if (session) {
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 250 })
    await session.post('Profiler.start')
  }
  const heap0 = process.memoryUsage().heapUsed
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const b = await Balancer.start({ config, logger: silentLogger(), nc, buckets, fence: openFence(2), metrics, hearing: () => true, lastHeard: () => Date.now(), leadership: () => ({ leader: { id: 'rr', pid: process.pid, term: 2, since: 0 }, standbys: [] }) })
  const startMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const heapMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20
  if (session) {
    const { profile } = await session.post('Profiler.stop')
    writeFileSync(args['prof-out']!, JSON.stringify(profile))
    session.disconnect()
  }
  const ctx = (b as unknown as { ctx: { ledger: { jobCount: number; shareCount: number } } }).ctx
  const out = { startMs: Math.round(startMs), loadAllMs: Math.round(loadAllMs), cpuMs: Math.round((cpu.user + cpu.system) / 1000), heapMb: Math.round(heapMb), jobs: ctx.ledger.jobCount, shares: ctx.ledger.shareCount }
  await b.stop()
  await nc.close()
  console.log(JSON.stringify(out))
  process.exit(0)
}
