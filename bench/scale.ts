/**
 * Scale benchmark (issue 12, point 7): what a real balancer costs and how it answers with
 * thousands of hosts and a large history, measured against synthetic hosts.
 *
 * A real nats-server and a real `shoal balancer` process (product defaults) serve N synthetic
 * hosts, simulated by a few worker processes (scale/synthetic-worker.ts) that speak the host
 * protocol with the project's own Bus, Codec, subjects and schemas: heartbeats every
 * pool.heartbeatMs with capacity, load and shares; reports (checkpoint, done, failed) waiting for
 * the balancer's answer; commands answered. Phases, each a window of the same length:
 *
 *   empty       every host beats, no job was ever submitted: balancer CPU per heartbeat (baseline)
 *   throughput  tiny jobs (one-unit shares that finish at once, 1 % failing their first attempt),
 *               a fixed number in flight: shares/s, KV writes and balancer CPU per share, report
 *               answer times, every job's result checked exactly
 *   (history)   more tiny jobs, with only a few hosts beating (the others silent), until K
 *               finished shares are in the store: not a measurement, the set-up of the next phase
 *   finished    every host beats again, K finished shares held: CPU per heartbeat against `empty`
 *               (target: within 1.2×)
 *   running     plus R shares running (5 per host) that checkpoint every shares.checkpointMs: CPU per
 *               report, checkpoint answer times; `shoal status --json` run once
 *   recovery    the balancer SIGKILLed and a new one started at once: kill → elected → serving
 *               (every record read back) → first status answered as leader
 *   after       a short window with the new balancer
 * In every window all hosts keep beating, so each suspect or dead transition the balancer's
 * metrics count in it is false. `status` round trips are sampled after each window.
 *
 * The balancer is measured as it is (a balancer that falls behind shows as timeouts, late answers
 * and false transitions, never as a crash of the benchmark). Only a wrong job result or a process
 * that died fails the run.
 *
 * Must never tune the balancer's settings, skip a sample, or leave a process running.
 */

import { connect, type NatsConnection } from '@nats-io/transport-node'
import { defaultConfig } from '../lib/config/mod.ts'
import { freePort } from '../lib/free-port.ts'
import { heartbeatPeriod, silenceFactor } from '../lib/pool/heartbeat-period.ts'
import { REPORT_TIMEOUT_MS } from '../lib/protocol/messages.ts'
import { startNatsServer } from '../lib/nats-server/launcher.ts'
import { ShoalClient } from '../lib/sdk/client.ts'
import type { Job } from '../lib/sdk/job.ts'
import { BenchError, round, sleep, type BenchContext, type Figures } from './support/bench.ts'
import type { RunContext } from './run.ts'
import { BalancerProcess } from './scale/balancer-process.ts'
import { SYNTHETIC_PROCESSOR } from './scale/ipc.ts'
import { JobStream, submitWithRetry } from './scale/job-stream.ts'
import { scrape, total } from './scale/prom-scrape.ts'
import { measureRecovery } from './scale/recovery.ts'
import { statusJson, statusLatency } from './scale/status-probe.ts'
import { summarizeMany } from './scale/stats.ts'
import { measureWindow, type Probe, type Window } from './scale/window.ts'
import { WorkerPool } from './scale/worker-pool.ts'

export const description = 'N synthetic hosts against a real balancer: CPU per heartbeat and report, report answer times, false suspect/dead, status latency, recovery, shares/s'

interface Size {
  hosts: number
  workers: number
  windowMs: number
  /** Pause after the pool changed, before a window. */
  settleMs: number
  finishedShares: number
  runningPerHost: number
  tiny: { sharesPerJob: number; concurrency: number }
  history: { sharesPerJob: number; concurrency: number; builders: number; capMs: number }
  statusSamples: number
  statusCapMs: number
  joinTimeoutMs: number
  placeTimeoutMs: number
  recoveryTimeoutMs: number
  afterRecoveryMs: number
}

const FULL: Size = {
  hosts: 2000,
  workers: 4,
  windowMs: 60_000,
  settleMs: 5_000,
  finishedShares: 100_000,
  runningPerHost: 5,
  tiny: { sharesPerJob: 100, concurrency: 8 },
  history: { sharesPerJob: 1000, concurrency: 4, builders: 16, capMs: 30 * 60_000 },
  statusSamples: 20,
  statusCapMs: 60_000,
  joinTimeoutMs: 180_000,
  placeTimeoutMs: 300_000,
  recoveryTimeoutMs: 300_000,
  afterRecoveryMs: 30_000,
}

const SMOKE: Size = {
  hosts: 50,
  workers: 2,
  windowMs: 3_000,
  settleMs: 1_000,
  // More than the 3 s throughput window leaves (≈ 2,500-4,500 here), so the history phase runs too.
  finishedShares: 8_000,
  runningPerHost: 2,
  tiny: { sharesPerJob: 20, concurrency: 4 },
  history: { sharesPerJob: 100, concurrency: 2, builders: 8, capMs: 30_000 },
  statusSamples: 5,
  statusCapMs: 10_000,
  joinTimeoutMs: 30_000,
  placeTimeoutMs: 30_000,
  recoveryTimeoutMs: 60_000,
  afterRecoveryMs: 2_000,
}

/** What each synthetic host advertises: room for the running phase's 5 shares and then some. */
const SLOTS = 8
const CORES = 8
const MEMORY_BYTES = 16 * 1024 ** 3
/** Tiny shares: one unit, finished at once; this many per thousand fail their first attempt. */
const FAIL_PERMILLE = 10
/**
 * Running shares: 1,000 units each, under 2 × balancer.splitMinUnits (1,000 by default), so the
 * balancer never splits them into the free slots; they run for a day (the run ends long before).
 */
const HELD_UNITS = 1000
const HELD_RUN_MS = 24 * 3_600_000
const HELD_SHARES_PER_JOB = 1000
const JOB_DONE_TIMEOUT_MS = 300_000
/** suspect after this much silence (pool.suspectAfterMs default): a worker gap above it is our fault. */
const SUSPECT_AFTER_MS = defaultConfig().pool.suspectAfterMs

function sizeFor(ctx: RunContext): Size {
  const base = ctx.smoke ? SMOKE : FULL
  const hosts = ctx.hosts ?? base.hosts
  return { ...base, hosts, workers: Math.max(1, Math.min(base.workers, Math.ceil(hosts / 25))), history: { ...base.history, builders: Math.min(hosts, base.history.builders) } }
}

/** Polls the balancer's `shoal_hosts{state="alive"}` until it is `n`; returns what it reached. */
async function untilAlive(probe: Probe, n: number, timeoutMs: number): Promise<{ alive: number | null; ms: number }> {
  const t0 = Date.now()
  let alive: number | null = null
  while (Date.now() - t0 < timeoutMs) {
    probe.balancer.check()
    probe.workers.check()
    alive = total(await scrape(probe.balancer.metricsUrl), 'shoal_hosts', { state: 'alive' })
    if (alive === n) break
    await sleep(500)
  }
  return { alive, ms: Date.now() - t0 }
}

const perShare = (x: number | null, shares: number) => (x === null || shares === 0 ? null : round(x / shares, 3))

/**
 * CPU left over once a window's heartbeats are charged at another window's cost each, per item; null
 * when nothing is left (the balancer got less CPU per heartbeat than in that window: starved by
 * other processes, or behind on its messages), because the estimate then says nothing.
 */
function beyondHeartbeats(cpuS: number, heartbeats: number, costPerHeartbeatS: number, items: number, unit: number, why: string[], what: string): number | null {
  const rest = cpuS - costPerHeartbeatS * heartbeats
  if (!items) return null
  if (rest <= 0) {
    why.push(`${what}: not estimated, the window's heartbeats at the reference cost each (${round(costPerHeartbeatS * heartbeats, 2)} s) exceed the balancer's whole CPU in it (${round(cpuS, 2)} s)`)
    return null
  }
  return round((rest * unit) / items, 3)
}

export async function run(ctx: BenchContext): Promise<Figures> {
  const rc = ctx as RunContext
  const S = sizeFor(rc)
  const cfg = defaultConfig()
  const notes: string[] = []
  const monitorPort = await freePort()
  const nats = await startNatsServer({ args: ['-m', String(monitorPort)] })
  const monitorUrl = `http://127.0.0.1:${monitorPort}`
  const cluster = `scale${process.pid}`
  let balancer: BalancerProcess | undefined
  let workers: WorkerPool | undefined
  let client: ShoalClient | undefined
  let statusClient: ShoalClient | undefined
  let admin: NatsConnection | undefined
  const held: Job[] = []
  try {
    ctx.log(`nats-server at ${nats.url}; starting a balancer and ${S.workers} worker processes simulating ${S.hosts} hosts`)
    const b1 = (balancer = new BalancerProcess('b1', nats.url, cluster))
    const hostIds = Array.from({ length: S.hosts }, (_, i) => `h${String(i).padStart(5, '0')}`)
    // Both settle before going on, so that whatever started is stopped in `finally` if the other failed.
    const [pool, lead] = await Promise.allSettled([
      WorkerPool.start(S.workers, { natsUrl: nats.url, cluster, slots: SLOTS, cores: CORES, memoryBytes: MEMORY_BYTES, heartbeatMs: cfg.pool.heartbeatMs, checkpointMs: cfg.shares.checkpointMs, reportLingerMs: Math.min(cfg.shares.reportLingerMs, Math.floor(cfg.shares.checkpointMs / 2)), maxMessageBytes: cfg.protocol.maxMessageBytes, reportTimeoutMs: REPORT_TIMEOUT_MS }, hostIds),
      b1.until(() => b1.serving !== undefined && b1.metricsUrl !== undefined, 60_000, 'it to lead and serve metrics'),
    ])
    if (pool.status === 'rejected') throw pool.reason
    workers = pool.value
    if (lead.status === 'rejected') throw lead.reason
    client = await ShoalClient.connect({ servers: nats.url, cluster, requestTimeoutMs: 30_000 })
    statusClient = await ShoalClient.connect({ servers: nats.url, cluster, requestTimeoutMs: 30_000 })
    admin = await connect({ servers: nats.url, name: 'shoal-bench-scale-admin' })
    const probe: Probe = { balancer: b1, natsPid: nats.pid, workers, nc: admin, cluster, monitorUrl }
    const phases: Record<string, Record<string, unknown>> = {}
    const windows: Record<string, Window> = {}
    const measure = async (name: string, during?: (endsAt: number) => Promise<unknown>) => {
      const ms = name === 'after' ? S.afterRecoveryMs : S.windowMs
      ctx.log(`${name}: measuring for ${ms / 1000} s`)
      const w = await measureWindow(probe, ms, during)
      windows[name] = w
      phases[name] = { ...w.figures }
      const f = w.figures
      ctx.log(`${name}: ${String(f.heartbeatsPerSec)} heartbeats/s, balancer ${String(f.balancerCores)} cores, ${String(f.balancerCpuPerHeartbeatUs)} µs CPU/heartbeat, transitions ${JSON.stringify(f.transitions)}`)
      return w
    }
    const sampleStatus = async (name: string) => {
      phases[name]!.status = await statusLatency(statusClient!, S.statusSamples, S.statusCapMs)
    }

    // ---------------------------------------------------------------- empty
    await workers.setActive(S.hosts)
    const join = await untilAlive(probe, S.hosts, S.joinTimeoutMs)
    ctx.log(`${String(join.alive)} of ${S.hosts} hosts alive after ${join.ms} ms`)
    if (join.alive !== S.hosts) notes.push(`only ${String(join.alive)} of ${S.hosts} hosts were alive ${S.joinTimeoutMs / 1000} s after they started beating: the balancer did not keep up with their first heartbeats`)
    await sleep(S.settleMs)
    await measure('empty')
    await sampleStatus('empty')

    // ---------------------------------------------------------------- throughput
    const tiny = new JobStream(client, { prefix: 'tiny', sharesPerJob: S.tiny.sharesPerJob, unitsPerShare: 1, input: { runMs: 0, failPermille: FAIL_PERMILLE }, concurrency: S.tiny.concurrency, doneTimeoutMs: JOB_DONE_TIMEOUT_MS })
    const tp = await measure('throughput', (endsAt) => tiny.run(() => Date.now() >= endsAt))
    ctx.log('throughput: waiting for the jobs in flight')
    await tp.during
    const done = tp.counts.acked.done
    const kvTp = tp.kv
    const kvData = kvTp.jobs === null || kvTp.shares === null || kvTp.hosts === null ? null : kvTp.jobs + kvTp.shares + kvTp.hosts
    const hbCost = windows.empty!.balancerCpuS / Math.max(1, windows.empty!.counts.heartbeats)
    Object.assign(phases.throughput!, {
      sharesDone: done,
      sharesPerSec: round(done / tp.seconds, 1),
      kvWritesPerShare: perShare(kvData, done),
      kvWritesPerShareByBucket: { jobs: perShare(kvTp.jobs, done), shares: perShare(kvTp.shares, done), hosts: perShare(kvTp.hosts, done) },
      balancerCpuPerShareMs: perShare(tp.balancerCpuS * 1000, done),
      // What is left once the window's heartbeats are charged at the empty window's cost per heartbeat.
      balancerCpuPerShareBeyondHeartbeatsMs: beyondHeartbeats(tp.balancerCpuS, tp.counts.heartbeats, hbCost, done, 1000, notes, 'balancerCpuPerShareBeyondHeartbeatsMs'),
      jobs: { ...tiny.stats, wrong: tiny.stats.wrong.length, latencyMs: summarizeMany(tiny.stats.latencyMs) },
    })
    await sampleStatus('throughput')

    // ---------------------------------------------------------------- history (set-up, not measured)
    const hist = new JobStream(client, { prefix: 'hist', sharesPerJob: S.history.sharesPerJob, unitsPerShare: 1, input: { runMs: 0 }, concurrency: S.history.concurrency, doneTimeoutMs: JOB_DONE_TIMEOUT_MS })
    const have = tiny.stats.completedShares
    let history: Record<string, unknown>
    if (have >= S.finishedShares) {
      ctx.log(`history: the throughput window left ${have} finished shares (${S.finishedShares} wanted): nothing to add`)
      history = { finishedSharesInStore: have, built: `not needed: the throughput window alone left ${have} finished shares` }
      await sleep(S.settleMs)
    } else {
      ctx.log(`history: ${have} finished shares so far; ${S.history.builders} hosts beat while more tiny jobs run, up to ${S.finishedShares}`)
      await workers.setActive(S.history.builders)
      const h0 = performance.now()
      const histStopAt = Date.now() + S.history.capMs
      const progress = setInterval(() => ctx.log(`history: ${have + hist.stats.completedShares} finished shares`), 15_000)
      try {
        await hist.run(() => have + hist.started * S.history.sharesPerJob >= S.finishedShares || Date.now() > histStopAt)
      } finally {
        clearInterval(progress)
      }
      const histS = (performance.now() - h0) / 1000
      const inStore = have + hist.stats.completedShares
      history = {
        finishedSharesInStore: inStore,
        built: `${hist.stats.completedShares} more finished shares with ${S.history.builders} hosts beating and the rest silent (the balancer declared them dead, then alive again when they came back)`,
        sharesPerJob: S.history.sharesPerJob,
        seconds: round(histS, 1),
        sharesPerSec: round(hist.stats.completedShares / histS, 1),
        jobs: { ...hist.stats, wrong: hist.stats.wrong.length, latencyMs: summarizeMany(hist.stats.latencyMs) },
      }
      if (inStore < S.finishedShares) notes.push(`history reached ${inStore} finished shares, not the ${S.finishedShares} wanted, within ${S.history.capMs / 60_000} min`)
      await workers.setActive(S.hosts)
      const rejoin = await untilAlive(probe, S.hosts, S.joinTimeoutMs)
      ctx.log(`${String(rejoin.alive)} of ${S.hosts} hosts alive again after ${rejoin.ms} ms`)
      await sleep(S.settleMs)
    }
    const finishedShares = have + hist.stats.completedShares

    // ---------------------------------------------------------------- finished
    await measure('finished')
    phases.finished!.finishedShares = finishedShares
    await sampleStatus('finished')

    // ---------------------------------------------------------------- running
    const want = S.hosts * S.runningPerHost
    ctx.log(`running: submitting ${want} shares that run for a day`)
    let submittedHeld = 0
    let admittedHeld = 0
    const s0 = Date.now()
    // One deadline for admitting the jobs and placing their shares: a balancer busy with the
    // checkpoints of the first ones admits the later ones ever more slowly.
    const runDeadline = s0 + S.placeTimeoutMs
    for (let i = 0; submittedHeld < want && Date.now() < runDeadline; i++) {
      const shares = Math.min(HELD_SHARES_PER_JOB, want - submittedHeld)
      const job = await submitWithRetry(client, { processor: SYNTHETIC_PROCESSOR, range: [0, shares * HELD_UNITS], shares, input: { runMs: HELD_RUN_MS }, jobId: `held-${i}` })
      if (job) {
        held.push(job)
        admittedHeld += shares
      } else notes.push(`held job held-${i} (${shares} shares) was not admitted`)
      submittedHeld += shares
    }
    const submitMs = Date.now() - s0
    if (submittedHeld < want) notes.push(`only ${submittedHeld} of ${want} running shares were submitted: admitting them took longer than ${S.placeTimeoutMs / 1000} s`)
    const p0 = Date.now()
    let running = 0
    for (;;) {
      running = (await workers.census()).running
      if (running >= admittedHeld || Date.now() >= runDeadline) break
      b1.check()
      await sleep(500)
    }
    const placeMs = Date.now() - p0
    ctx.log(`running: ${running} of ${want} shares running on the hosts ${submitMs} ms after the first submission and ${placeMs} ms after the last`)
    if (running < admittedHeld) notes.push(`only ${running} of the ${admittedHeld} admitted running shares were running ${S.placeTimeoutMs / 1000} s after the first submission`)
    // A checkpoint interval for every share to be in its steady rhythm.
    await sleep(S.settleMs + cfg.shares.checkpointMs)
    const rw = await measure('running')
    const reportsSent = rw.counts.sent.checkpoint + rw.counts.sent.done + rw.counts.sent.failed
    const hbCostFinished = windows.finished!.balancerCpuS / Math.max(1, windows.finished!.counts.heartbeats)
    Object.assign(phases.running!, {
      sharesRunning: (await workers.census()).running,
      // Submitting the jobs one after another (each admitted once its share records are durable),
      // then until every share ran on a host.
      heldSharesAdmitted: admittedHeld,
      heldJobsSubmitMs: submitMs,
      sharesRunningAfterLastSubmitMs: placeMs,
      reportsPerSec: round(reportsSent / rw.seconds, 1),
      // The window's heartbeats charged at the finished window's cost each; the rest over the reports.
      balancerCpuPerReportUs: beyondHeartbeats(rw.balancerCpuS, rw.counts.heartbeats, hbCostFinished, reportsSent, 1e6, notes, 'balancerCpuPerReportUs'),
      balancerCpuPerMessageUs: round((rw.balancerCpuS * 1e6) / Math.max(1, reportsSent + rw.counts.heartbeats), 1),
    })
    await sampleStatus('running')
    ctx.log('running: shoal status --json')
    const cli = await statusJson(nats.url, cluster, S.hosts, Math.ceil(S.statusCapMs / 1000))

    // ---------------------------------------------------------------- recovery
    const pre = await scrape(b1.metricsUrl)
    const expected = { jobs: total(pre, 'shoal_jobs'), shares: total(pre, 'shoal_shares') }
    ctx.log(`recovery: SIGKILL of the balancer holding ${String(expected.jobs)} jobs and ${String(expected.shares)} shares; a new one starts at once`)
    const rec = await measureRecovery({ old: b1, newId: 'b2', natsUrl: nats.url, cluster, maxMessageBytes: cfg.protocol.maxMessageBytes, expected, timeoutMs: S.recoveryTimeoutMs })
    balancer = rec.balancer
    probe.balancer = rec.balancer
    ctx.log(`recovery: ${JSON.stringify(rec.figures)}`)
    await rec.balancer.until(() => rec.balancer.metricsUrl !== undefined, 30_000, 'its metrics endpoint')
    await measure('after')

    // ---------------------------------------------------------------- figures
    const wrong = [...tiny.stats.wrong, ...hist.stats.wrong]
    if (wrong.length) throw new BenchError(`${wrong.length} job(s) completed with a wrong result (a unit lost or counted twice): ${wrong.slice(0, 5).join('; ')}`)
    const hb = (name: string) => (phases[name]?.balancerCpuPerHeartbeatUs as number | null | undefined) ?? null
    const emptyHb = hb('empty')
    const finishedHb = hb('finished')
    const ratio = emptyHb && finishedHb ? round(finishedHb / emptyHb) : null
    const beating = ['empty', 'throughput', 'finished', 'running']
    const falseCount = (to: string) => beating.reduce((n, p) => n + (((phases[p]?.transitions as Record<string, number | null> | undefined)?.[to]) ?? 0), 0)
    const ack = (name: string, kind: 'done' | 'checkpoint') => {
      const r = (phases[name]?.reports as Record<string, { ackMs: { p50: number; p99: number }; timeouts: number; sent: number }> | undefined)?.[kind]
      return r ? { p50: r.ackMs.p50, p99: r.ackMs.p99, timeouts: r.timeouts, sent: r.sent } : null
    }
    const statusP50 = (name: string) => ((phases[name]?.status as { ms?: { p50: number } } | undefined)?.ms?.p50 ?? null)
    const worstGap = Math.max(...beating.map((p) => (phases[p]?.maxHeartbeatGapMs as number | undefined) ?? 0))
    // The period the balancer asks of a pool this size, and the suspect time that goes with it.
    const period = heartbeatPeriod(S.hosts, cfg.pool.heartbeatMs, cfg.pool.heartbeatMs, cfg.pool.maxHeartbeatsPerSec)
    const suspectMs = SUSPECT_AFTER_MS * silenceFactor(period, cfg.pool.heartbeatMs)
    if (worstGap >= suspectMs) notes.push(`a worker itself once sent a host's heartbeats ${worstGap} ms apart (suspect after ${suspectMs} ms at a ${period} ms period): a suspect transition in that window may be the load generator's fault, not the balancer's`)
    notes.push(
      'CPU per heartbeat = all the balancer process\'s CPU in the window (heartbeats, its timers, balancing passes, lease renewals) / heartbeats the hosts sent in it; per share and per report also charge everything else it did in the window, and the "beyond heartbeats" figures subtract the heartbeats at the cost of a window without them',
      'every host keeps beating in the empty, throughput, finished and running windows, so every suspect or dead transition counted there is false',
      'figures of one run on a shared machine; workers, nats-server and the balancer share its cores (see workersCores, natsServerCores, foreignCores of each window)',
    )
    const behind = Object.entries(phases).filter(([, f]) => f.balancerFellBehind === true).map(([n]) => n)
    if (behind.length) notes.push(`the balancer fell behind in: ${behind.join(', ')} (busy ≥ 0.9 core, > 1 MiB queued for it in nats-server at the end, or a slow-consumer disconnect): there its CPU per heartbeat sent is a lower bound, and balancerCpuPerDeliveredMessageUs divides by what it was handed instead`)
    if (ctx.smoke) notes.push('smoke run: windows of a few seconds over a small pool; the figures only show the machinery works')
    return {
      setup: {
        hosts: S.hosts,
        workerProcesses: workers.hostCount === S.hosts ? S.workers : `${S.workers} (${workers.hostCount} hosts)`,
        slotsPerHost: SLOTS,
        coresPerHost: CORES,
        heartbeatMs: cfg.pool.heartbeatMs,
        checkpointMs: cfg.shares.checkpointMs,
        windowS: S.windowMs / 1000,
        finishedSharesWanted: S.finishedShares,
        runningSharesWanted: want,
        tinySharesPerJob: S.tiny.sharesPerJob,
        tinyJobsInFlight: S.tiny.concurrency,
        tinyFailFirstAttemptPermille: FAIL_PERMILLE,
        balancer: 'one `shoal balancer` process, product defaults, log level info',
      },
      headline: {
        balancerCpuPerHeartbeatUs: { empty: emptyHb, finished: finishedHb, running: hb('running'), afterRecovery: hb('after') },
        finishedOverEmpty: ratio,
        heartbeatTarget: ratio === null ? 'not measured' : `CPU per heartbeat with ${finishedShares} finished shares / with none = ${ratio} (target ≤ 1.2): ${ratio <= 1.2 ? 'met' : 'MISSED'}`,
        balancerCpuPerReportUs: phases.running!.balancerCpuPerReportUs,
        reportAckMs: { done: ack('throughput', 'done'), checkpoint: ack('running', 'checkpoint') },
        falseSuspect: falseCount('suspect'),
        falseDead: falseCount('dead'),
        statusMsP50: { empty: statusP50('empty'), throughput: statusP50('throughput'), finished: statusP50('finished'), running: statusP50('running') },
        statusJsonKeepsHosts: cli.ok === true && cli.everyHostAccountedFor === true,
        sharesPerSec: phases.throughput!.sharesPerSec,
        kvWritesPerShare: phases.throughput!.kvWritesPerShare,
        balancerCpuPerShareMs: phases.throughput!.balancerCpuPerShareMs,
        recoveryKillToStatusAsLeaderMs: rec.figures.killToStatusAsLeaderMs,
        recoveryElectedToServingMs: rec.figures.electedToServingMs,
      },
      joinMs: join.ms,
      phases,
      history,
      statusJson: cli,
      recovery: rec.figures,
      notes,
    }
  } finally {
    for (const j of held) j.close()
    await client?.close().catch(() => undefined)
    await statusClient?.close().catch(() => undefined)
    await workers?.stop()
    await balancer?.stop()
    await admin?.close().catch(() => undefined)
    await nats.stop()
  }
}
