/**
 * One measured window of the scale benchmark: the same pool state held for a set time while the
 * synthetic hosts beat (and whatever `during` adds: jobs submitted, shares checkpointing), with
 * everything read at both ends in the same run:
 *   - the balancer's CPU time (/proc/<pid>/stat; its main thread apart from V8's helper threads,
 *     thread-cpu.ts), the nats-server's, the workers' own, and the CPU
 *     other people's processes took meanwhile (support/cpu-account.ts),
 *   - heartbeats and reports the synthetic hosts sent, how each report ended and its answer time,
 *   - the balancer's counters from its metrics endpoint (host transitions, failovers, ...),
 *   - what the nats-server delivered to the balancer and still holds for it (nats-monitor.ts),
 *   - the KV writes (stream sequence numbers), and the warnings and errors it logged.
 * The scrapes and stream reads are made outside the CPU window, so their cost is not the hosts'.
 *
 * Must never drop a sample or turn a missing reading into a zero: what could not be read is null.
 */

import type { NatsConnection } from '@nats-io/transport-node'
import { round, sleep } from '../support/bench.ts'
import { cpuSnapshot, foreignCpu, processTicks, USER_HZ } from '../support/cpu-account.ts'
import type { BalancerProcess } from './balancer-process.ts'
import type { ReportKind, WindowCounts } from './ipc.ts'
import { kvDelta, kvSequences, type KvWrites } from './kv-writes.ts'
import { readServer, serverDelta } from './nats-monitor.ts'
import { delta, quantile, quantileWhere, scrape, total, type Samples } from './prom-scrape.ts'
import { summarizeMany } from './stats.ts'
import { residentBytes, threadTicks } from './thread-cpu.ts'
import type { WorkerPool } from './worker-pool.ts'

export interface Probe {
  balancer: BalancerProcess
  natsPid: number
  workers: WorkerPool
  /** The benchmark's own connection (stream info). */
  nc: NatsConnection
  cluster: string
  /** The nats-server's HTTP monitoring endpoint, e.g. http://127.0.0.1:8222. */
  monitorUrl: string
}

/** Bytes still queued in the server for the balancer at a window's end above which it fell behind. */
const BEHIND_BYTES = 1024 * 1024

export interface Window {
  seconds: number
  counts: WindowCounts
  balancerCpuS: number
  kv: KvWrites
  before: Samples | null
  after: Samples | null
  figures: Record<string, unknown>
  /** What `during` returned: it may still run (jobs in flight finish outside the window). */
  during: Promise<unknown> | undefined
}

const KINDS: ReportKind[] = ['checkpoint', 'done', 'failed']

/**
 * Holds the window for `ms` (while `during`, if given, runs; it is told when the window ends and
 * may go on after it: only what happened inside is counted).
 */
export async function measureWindow(p: Probe, ms: number, during?: (endsAt: number) => Promise<unknown>): Promise<Window> {
  const before = await scrape(p.balancer.metricsUrl)
  const kv0 = await kvSequences(p.nc, p.cluster)
  const complaints0 = new Map(p.balancer.complaints)
  const s0 = await readServer(p.monitorUrl)
  await p.workers.windowStart()
  const b0 = processTicks(p.balancer.pid)
  const bt0 = threadTicks(p.balancer.pid)
  const n0 = processTicks(p.natsPid)
  const m0 = cpuSnapshot()
  const t0 = performance.now()
  const endsAt = Date.now() + ms
  const background = during?.(endsAt)
  // Awaited by the caller (Window.during); marked handled so a failure waits for it there.
  background?.catch(() => undefined)
  while (Date.now() < endsAt) {
    p.balancer.check()
    p.workers.check()
    await sleep(Math.min(200, Math.max(0, endsAt - Date.now())))
  }
  const seconds = (performance.now() - t0) / 1000
  const b1 = processTicks(p.balancer.pid)
  const bt1 = threadTicks(p.balancer.pid)
  const n1 = processTicks(p.natsPid)
  const m1 = cpuSnapshot()
  const counts = await p.workers.windowEnd()
  const server = serverDelta(s0, await readServer(p.monitorUrl))
  const after = await scrape(p.balancer.metricsUrl)
  const kv = kvDelta(kv0, await kvSequences(p.nc, p.cluster))
  const balancerCpuS = (b1 - b0) / USER_HZ
  const foreign = foreignCpu(m0, m1)
  const reports: Record<string, unknown> = {}
  for (const k of KINDS) {
    if (!counts.sent[k]) continue
    reports[k] = {
      sent: counts.sent[k],
      acked: counts.acked[k],
      nacked: counts.nacked[k],
      timeouts: counts.timeouts[k],
      errors: counts.errors[k],
      ackMs: summarizeMany(counts.ackMs[k]),
    }
  }
  const transitions = (to: string) => delta(before, after, 'shoal_host_transitions_total', { to })
  const figures = {
    seconds: round(seconds),
    heartbeats: counts.heartbeats,
    heartbeatsPerSec: round(counts.heartbeats / seconds, 1),
    balancerCpuS: round(balancerCpuS, 2),
    balancerCores: round(balancerCpuS / seconds),
    balancerCpuPerHeartbeatUs: counts.heartbeats ? round((balancerCpuS * 1e6) / counts.heartbeats, 1) : null,
    // The JavaScript thread and the rest (V8's concurrent GC and compiler threads, libuv's pool).
    balancerThreadsCpuS: { main: round((bt1.main - bt0.main) / USER_HZ, 2), others: round((bt1.others - bt0.others) / USER_HZ, 2) },
    balancerRssMiB: round(residentBytes(p.balancer.pid) / 1024 ** 2, 1),
    natsServerCores: round((n1 - n0) / USER_HZ / seconds),
    workersCores: round(counts.cpuMs / 1000 / seconds),
    foreignCores: foreign?.cores ?? null,
    maxHeartbeatGapMs: round(counts.maxHeartbeatGapMs, 1),
    natsServer: server,
    // Every message the server handed the balancer (heartbeats, reports, KV and API answers): the
    // denominator that still holds when heartbeats pile up unread.
    balancerCpuPerDeliveredMessageUs: server.msgsDeliveredToBalancer ? round((balancerCpuS * 1e6) / server.msgsDeliveredToBalancer, 1) : null,
    // Busy all the time, or its messages piling up in the server: it did not keep up with the window.
    balancerFellBehind: balancerCpuS / seconds >= 0.9 || (server.bytesQueuedForBalancerAtEnd ?? 0) > BEHIND_BYTES || (server.slowConsumerDisconnects ?? 0) > 0 || server.balancerReconnected === 1,
    transitions: { alive: transitions('alive'), suspect: transitions('suspect'), dead: transitions('dead'), left: transitions('left') },
    // The balancer's own part of a report's answer (from its handling's start), p50 / p99 in ms:
    // what the hosts measure also holds the work queue's wait and their own process's delays.
    balancerReportAnswerMs: Object.fromEntries(KINDS.map((t) => [t, [0.5, 0.99].map((q) => ((x) => (x === null ? null : round(x * 1000, 1)))(quantileWhere(before, after, 'shoal_report_answer_seconds', q, { t })))])),
    // Record writes' round trips to JetStream as the balancer read them, p50 / p99 in ms.
    storeWriteMs: [0.5, 0.99].map((q) => ((x) => (x === null ? null : round(x * 1000, 1)))(quantile(before, after, 'shoal_store_write_seconds', q))),
    // Balancing passes in the window: each holds the event loop for its snapshot and decide.
    balancerPasses: {
      count: delta(before, after, 'shoal_balancer_pass_seconds_count'),
      seconds: round(delta(before, after, 'shoal_balancer_pass_seconds_sum') ?? Number.NaN, 3),
      p99Ms: ((q) => (q === null ? null : round(q * 1000, 1)))(quantile(before, after, 'shoal_balancer_pass_seconds', 0.99)),
      // Passes of 100 ms or more, and how much of the passes' time was `decide` (the rest: the snapshot).
      over100ms: ((all, under) => (all === null || under === null ? null : all - under))(delta(before, after, 'shoal_balancer_pass_seconds_count'), delta(before, after, 'shoal_balancer_pass_seconds_bucket', { le: '0.1' })),
      decideSeconds: round(delta(before, after, 'shoal_decide_duration_seconds_sum') ?? Number.NaN, 3),
    },
    // The balancer's garbage collections in the window, by kind: seconds in all, and how many took
    // 100 ms or more (what a report answer would wait behind).
    balancerGc: Object.fromEntries(['major', 'minor', 'incremental', 'weakcb'].map((kind) => {
      const all = delta(before, after, 'shoal_balancer_gc_seconds_count', { kind })
      const under = delta(before, after, 'shoal_balancer_gc_seconds_bucket', { kind, le: '0.1' })
      return [kind, { seconds: round(delta(before, after, 'shoal_balancer_gc_seconds_sum', { kind }) ?? Number.NaN, 3), count: all, over100ms: all === null || under === null ? null : all - under }]
    })),
    failovers: delta(before, after, 'shoal_failovers_total'),
    migrations: delta(before, after, 'shoal_migrations_total'),
    splits: delta(before, after, 'shoal_splits_total'),
    checkpointsStored: delta(before, after, 'shoal_checkpoints_total'),
    checkpointFailures: {
      stale: delta(before, after, 'shoal_checkpoint_failures_total', { cause: 'stale' }),
      notLeader: delta(before, after, 'shoal_checkpoint_failures_total', { cause: 'not-leader' }),
      tooLarge: delta(before, after, 'shoal_checkpoint_failures_total', { cause: 'too-large' }),
    },
    // The leader's lease: lapses (it could not act), renewal times, and how late its event loop ran.
    lease: {
      lapses: delta(before, after, 'shoal_balancer_lease_lapses_total'),
      lapsedS: round(delta(before, after, 'shoal_balancer_lease_lapsed_seconds_total') ?? Number.NaN, 2),
      renewalP99Ms: ((q) => (q === null ? null : q * 1000))(quantile(before, after, 'shoal_balancer_lease_renewal_seconds', 0.99)),
      eventLoopDelayMaxMs: ((d) => (d === null ? null : round(d * 1000, 1)))(total(after, 'shoal_balancer_event_loop_delay_seconds')),
      // How long the oldest message of a slice of the balancer's work queue had waited.
      workQueueWaitP99Ms: ((q) => (q === null ? null : round(q * 1000, 1)))(quantile(before, after, 'shoal_balancer_work_queue_wait_seconds', 0.99)),
    },
    messagesRejected: delta(before, after, 'shoal_messages_rejected_total'),
    storeRetries: delta(before, after, 'shoal_store_write_retries_total'),
    balancerErrors: delta(before, after, 'shoal_errors_total'),
    reports,
    // Periodic checkpoints a host did not send because the share's previous one was still unanswered.
    checkpointsSkipped: counts.checkpointsSkipped,
    commands: counts.commands,
    kvWrites: kv,
    balancerLogged: p.balancer.complaintsSince(complaints0),
  }
  return { seconds, counts, balancerCpuS, kv, before, after, figures, during: background }
}
