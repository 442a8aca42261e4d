/**
 * Tiny-shares benchmark (issue 12's acceptance line): "Tiny shares end to end with real host
 * processes (2 hosts × 2 slots on this machine) ≥ 2,000 shares/s, and with synthetic instant hosts
 * ≥ 10,000 shares/s, with the KV writes and the balancer CPU per share printed."
 *
 * Two parts, one after the other, each on its own nats-server (a free port, JetStream in a fresh
 * store) with one real `shoal balancer` process on product defaults:
 *   real       2 `shoal host` processes × 2 slots running bench/processors/instant.ts, whose
 *              one-unit shares finish in their first step;
 *   synthetic  the scale benchmark's synthetic hosts (bench/scale/worker-pool.ts): shares finish at
 *              once (0 ms run), none fail.
 * Each part sweeps the jobs kept in flight (tiny/level.ts: a warm-up, a measured window, a drain)
 * and prints per level shares/s, KV writes and balancer CPU per share, submit → result p50/p99 and
 * the CPU split. Its headline is the best level's shares/s. Beside them, the raw KV put rate of the
 * same nats-server (tiny/kv-baseline.ts), before and after the sweep: the machine is shared and
 * noisy, so shares/s over that rate is the figure that compares across runs.
 *
 * The targets are printed as met or MISSED, never asserted. Only a wrong or failed job, a process
 * that died or hosts that never joined fail the run. Must never tune the balancer's or the hosts'
 * settings, and never leave a process running (each part stops what it started, also on failure).
 */

import { loadavg } from 'node:os'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { defaultConfig } from '../lib/config/mod.ts'
import { startNatsServer } from '../lib/nats-server/launcher.ts'
import { REPORT_TIMEOUT_MS } from '../lib/protocol/messages.ts'
import { ShoalClient } from '../lib/sdk/client.ts'
import { BenchError, round, sleep, type BenchContext, type Figures } from './support/bench.ts'
import { INSTANT_PROCESSOR } from './processors/instant.ts'
import { BalancerProcess } from './scale/balancer-process.ts'
import { SYNTHETIC_PROCESSOR } from './scale/ipc.ts'
import { scrape, total } from './scale/prom-scrape.ts'
import { WorkerPool } from './scale/worker-pool.ts'
import { RealHosts, SyntheticHosts, type HostSide } from './tiny/hosts.ts'
import { kvPutRate, type KvBaseline } from './tiny/kv-baseline.ts'
import { measureLevel, type Level, type Rig } from './tiny/level.ts'

export const description = 'tiny one-unit shares end to end: 2 real hosts × 2 slots, and synthetic instant hosts; shares/s per jobs in flight, KV writes and balancer CPU per share, against the raw KV put rate'

interface Size {
  real: { hosts: number; slots: number }
  synthetic: { hosts: number; slots: number; workers: number }
  /** Jobs kept in flight, one level each. */
  levels: number[]
  sharesPerJob: number
  warmupMs: number
  windowMs: number
  baselineMs: number
  baselineWarmupMs: number
  /** Measure the baseline again after the sweep (drift of a noisy machine shows). */
  baselineAfter: boolean
  joinTimeoutMs: number
  doneTimeoutMs: number
}

const FULL: Size = {
  real: { hosts: 2, slots: 2 },
  synthetic: { hosts: 100, slots: 8, workers: 2 },
  levels: [2, 8, 32],
  sharesPerJob: 100,
  warmupMs: 3_000,
  windowMs: 10_000,
  baselineMs: 2_000,
  baselineWarmupMs: 500,
  baselineAfter: true,
  joinTimeoutMs: 60_000,
  doneTimeoutMs: 120_000,
}

const SMOKE: Size = {
  real: { hosts: 2, slots: 2 },
  synthetic: { hosts: 20, slots: 8, workers: 1 },
  levels: [2, 8],
  sharesPerJob: 20,
  warmupMs: 300,
  windowMs: 1_200,
  baselineMs: 500,
  baselineWarmupMs: 200,
  baselineAfter: false,
  joinTimeoutMs: 30_000,
  doneTimeoutMs: 30_000,
}

/** The acceptance line's targets, shares/s. */
const TARGET = { real: 2_000, synthetic: 10_000 } as const
type PartName = keyof typeof TARGET

/** What synthetic hosts advertise (as the scale benchmark's). */
const CORES = 8
const MEMORY_BYTES = 16 * 1024 ** 3

/** Waits until the balancer counts `n` hosts alive (its `shoal_hosts` gauge); BenchError if not. */
async function untilAlive(b: BalancerProcess, hosts: HostSide, n: number, timeoutMs: number): Promise<number> {
  const t0 = Date.now()
  let alive: number | null = null
  while (Date.now() - t0 < timeoutMs) {
    b.check()
    hosts.check()
    alive = total(await scrape(b.metricsUrl), 'shoal_hosts', { state: 'alive' })
    if (alive === n) return Date.now() - t0
    await sleep(200)
  }
  throw new BenchError(`only ${String(alive)} of ${n} hosts were alive after ${timeoutMs} ms`)
}

/** Starts the hosts of a part next to its balancer; on failure stops whatever did start. */
async function startHosts(part: PartName, S: Size, natsUrl: string, cluster: string, b: BalancerProcess): Promise<HostSide> {
  const lead = () => b.until(() => b.serving !== undefined && b.metricsUrl !== undefined, 60_000, 'it to lead and serve metrics')
  if (part === 'real') {
    const hosts = new RealHosts(S.real.hosts, S.real.slots, natsUrl, cluster)
    try {
      await lead()
    } catch (e) {
      await hosts.stop()
      throw e
    }
    return hosts
  }
  const cfg = defaultConfig()
  const ids = Array.from({ length: S.synthetic.hosts }, (_, i) => `s${String(i).padStart(4, '0')}`)
  // Both settle before going on, so that whatever started is stopped if the other failed.
  const [pool, led] = await Promise.allSettled([
    WorkerPool.start(S.synthetic.workers, { natsUrl, cluster, slots: S.synthetic.slots, cores: CORES, memoryBytes: MEMORY_BYTES, heartbeatMs: cfg.pool.heartbeatMs, checkpointMs: cfg.shares.checkpointMs, reportLingerMs: Math.min(cfg.shares.reportLingerMs, Math.floor(cfg.shares.checkpointMs / 2)), maxMessageBytes: cfg.protocol.maxMessageBytes, reportTimeoutMs: REPORT_TIMEOUT_MS }, ids),
    lead(),
  ])
  if (pool.status === 'rejected') throw pool.reason
  if (led.status === 'rejected') {
    await pool.value.stop()
    throw led.reason
  }
  await pool.value.setActive(S.synthetic.hosts)
  return new SyntheticHosts(pool.value)
}

interface Part {
  figures: Record<string, unknown>
  best: Level & { jobsInFlight: number }
  putRate: number
}

async function runPart(ctx: BenchContext, part: PartName, S: Size): Promise<Part> {
  const nats = await startNatsServer()
  const cluster = `tiny${part}${process.pid}`
  const hostCount = part === 'real' ? S.real.hosts : S.synthetic.hosts
  let balancer: BalancerProcess | undefined
  let hosts: HostSide | undefined
  let client: ShoalClient | undefined
  let admin: NatsConnection | undefined
  try {
    ctx.log(`${part}: nats-server at ${nats.url}; starting a balancer and ${part === 'real' ? `${S.real.hosts} shoal host processes × ${S.real.slots} slots` : `${S.synthetic.hosts} synthetic hosts × ${S.synthetic.slots} slots in ${S.synthetic.workers} worker process(es)`}`)
    balancer = new BalancerProcess('b1', nats.url, cluster)
    hosts = await startHosts(part, S, nats.url, cluster, balancer)
    const joinMs = await untilAlive(balancer, hosts, hostCount, S.joinTimeoutMs)
    ctx.log(`${part}: ${hostCount} hosts alive after ${joinMs} ms`)
    client = await ShoalClient.connect({ servers: nats.url, cluster, requestTimeoutMs: 30_000 })
    admin = await connect({ servers: nats.url, name: 'shoal-bench-tiny-admin' })
    const baseline = async (when: string): Promise<KvBaseline> => {
      const b = await kvPutRate(admin!, S.baselineMs, S.baselineWarmupMs)
      ctx.log(`${part}: raw KV put rate ${when}: ${b.putsPerSec}/s (${b.inFlight} in flight)`)
      return b
    }
    const before = await baseline('before the sweep')
    const rig: Rig = { balancer, natsPid: nats.pid, nc: admin, cluster, client, hosts, processor: part === 'real' ? INSTANT_PROCESSOR : SYNTHETIC_PROCESSOR }
    const levels: Array<Level & { jobsInFlight: number }> = []
    for (const jobs of S.levels) {
      ctx.log(`${part}: ${jobs} jobs × ${S.sharesPerJob} shares in flight: ${S.warmupMs / 1000} s warm-up, ${S.windowMs / 1000} s window`)
      const l = await measureLevel(rig, { jobsInFlight: jobs, sharesPerJob: S.sharesPerJob, warmupMs: S.warmupMs, windowMs: S.windowMs, doneTimeoutMs: S.doneTimeoutMs }, `${part}-${jobs}`)
      const f = l.figures
      ctx.log(`${part}: ${jobs} jobs in flight: ${l.sharesPerSec} shares/s, ${String(f.kvWritesPerShare)} KV writes and ${String(f.balancerCpuPerShareMs)} ms balancer CPU per share, cores ${JSON.stringify(f.cores)}`)
      levels.push({ ...l, jobsInFlight: jobs })
    }
    const after = S.baselineAfter ? await baseline('after the sweep') : undefined
    // The mean of the two readings when there are two: the sweep ran between them.
    const putRate = after ? (before.putsPerSec + after.putsPerSec) / 2 : before.putsPerSec
    const ratio = (x: number | null) => (x === null ? null : round(x / putRate, 4))
    const best = levels.reduce((a, l) => (l.sharesPerSec > a.sharesPerSec ? l : a))
    const complaints = Object.fromEntries(balancer.complaints)
    return {
      best,
      putRate,
      figures: {
        hosts: hostCount,
        joinMs,
        kvPutBaseline: { before, ...(after ? { after } : {}), putsPerSecUsed: round(putRate, 0) },
        levels: levels.map((l) => ({ ...l.figures, sharesPerSecOverKvPutRate: ratio(l.sharesPerSec), kvWritesPerSecOverKvPutRate: ratio(l.kvWritesPerSec) })),
        balancerLogged: complaints,
        loadAverage1mAtEnd: round(loadavg()[0] ?? Number.NaN, 2),
      },
    }
  } finally {
    await client?.close().catch(() => undefined)
    await admin?.close().catch(() => undefined)
    await hosts?.stop()
    await balancer?.stop()
    await nats.stop()
  }
}

function headline(part: PartName, p: Part): Record<string, unknown> {
  const f = p.best.figures
  const lat = f.submitToResultMs as { p50: number; p99: number }
  const met = p.best.sharesPerSec >= TARGET[part]
  return {
    sharesPerSec: p.best.sharesPerSec,
    atJobsInFlight: p.best.jobsInFlight,
    sharesPerSecOverKvPutRate: round(p.best.sharesPerSec / p.putRate, 4),
    kvWritesPerShare: f.kvWritesPerShare,
    kvWritesPerSecOverKvPutRate: p.best.kvWritesPerSec === null ? null : round(p.best.kvWritesPerSec / p.putRate, 4),
    balancerCpuPerShareMs: f.balancerCpuPerShareMs,
    allProcessesCpuPerShareMs: (f.cpuPerShareMs as { all: number | null }).all,
    submitToResultMsP50: lat.p50,
    submitToResultMsP99: lat.p99,
    target: `best ${p.best.sharesPerSec.toLocaleString('en-US')} shares/s (target ≥ ${TARGET[part].toLocaleString('en-US')}/s): ${met ? 'met' : 'MISSED'}`,
  }
}

export async function run(ctx: BenchContext): Promise<Figures> {
  const S = ctx.smoke ? SMOKE : FULL
  const real = await runPart(ctx, 'real', S)
  const synthetic = await runPart(ctx, 'synthetic', S)
  const notes = [
    'shares/s counts the one-unit shares of the jobs that completed inside the window, each job checked exact; a job straddling an edge counts wholly or not at all',
    'kvWritesPerShare: writes to the jobs, shares and hosts buckets per share (as the scale benchmark counts them); kvWritesPerShareByBucket has every bucket, kvWritesPerSec all of them',
    'balancer CPU per share: all the balancer process\'s CPU in the window (heartbeats, lease renewals, passes included) over the shares done in it',
    'kvPutBaseline: raw JetStream KV puts/s of the same nats-server, 256 in flight to a scratch bucket (R1, history 1, 200-byte values) with the cluster idle, after a short uncounted warm-up; the ratios divide by the mean of before and after',
    'every process of a part (nats-server, balancer, hosts, this SDK client) shares the machine\'s cores: see each level\'s cores, and others for processes outside the run',
  ]
  if (ctx.smoke) notes.push('smoke run: windows of about a second over a small pool; the figures only show the machinery works')
  return {
    setup: {
      real: `${S.real.hosts} \`shoal host\` processes × ${S.real.slots} slots, processor instant (bench/processors/instant.ts), product defaults`,
      synthetic: `${S.synthetic.hosts} synthetic hosts × ${S.synthetic.slots} slots in ${S.synthetic.workers} worker process(es) (bench/scale), shares finish at once, none fail`,
      balancer: 'one `shoal balancer` process per part, product defaults, log level info; each part on its own nats-server',
      jobsInFlight: S.levels,
      sharesPerJob: S.sharesPerJob,
      warmupS: S.warmupMs / 1000,
      windowS: S.windowMs / 1000,
    },
    headline: { real: headline('real', real), synthetic: headline('synthetic', synthetic) },
    real: real.figures,
    synthetic: synthetic.figures,
    notes,
  }
}
