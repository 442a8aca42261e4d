/**
 * One level of the tiny-shares sweep: a fixed number of tiny jobs kept in flight through the SDK
 * (bench/scale/job-stream.ts: every job's result checked exactly), a warm-up, then a measured
 * window, then the jobs in flight drained so the next level starts from an idle pool.
 *
 * In the window: shares of the jobs that completed in it (exact ones only) and their submit →
 * result times; the balancer's KV writes (stream sequences, kv-writes.ts); the CPU of the
 * balancer (its main thread apart: the JavaScript), the nats-server, the hosts, this process (the
 * SDK client) and everyone else's (support/cpu-account.ts), each from /proc.
 *
 * Shares are counted by whole jobs, at their completion: a job that straddles an edge of the window
 * counts wholly or not at all, which in a steady stream of jobs evens out (a window holds many).
 *
 * Must never count a share of a wrong, failed or timed-out job, nor a sample from outside the
 * window; a wrong or failed job fails the run (with instant shares that never fail, there is no
 * other honest reading of one).
 */

import type { NatsConnection } from '@nats-io/transport-node'
import type { ShoalClient } from '../../lib/sdk/client.ts'
import { BenchError, round, sleep } from '../support/bench.ts'
import { cpuSnapshot, foreignCpu, processTicks, USER_HZ } from '../support/cpu-account.ts'
import type { BalancerProcess } from '../scale/balancer-process.ts'
import { JobStream } from '../scale/job-stream.ts'
import { KV_BUCKETS, kvDelta, kvSequences, type KvWrites } from '../scale/kv-writes.ts'
import { summarizeMany } from '../scale/stats.ts'
import { threadTicks } from '../scale/thread-cpu.ts'
import type { HostSide } from './hosts.ts'

/** What a part of the benchmark runs its levels against. */
export interface Rig {
  balancer: BalancerProcess
  natsPid: number
  /** The benchmark's own connection (stream info). */
  nc: NatsConnection
  cluster: string
  client: ShoalClient
  hosts: HostSide
  processor: string
}

export interface LevelPlan {
  jobsInFlight: number
  sharesPerJob: number
  warmupMs: number
  windowMs: number
  doneTimeoutMs: number
}

export interface Level {
  figures: Record<string, unknown>
  sharesPerSec: number
  /** KV writes of every bucket per second of the window (null: a stream could not be read). */
  kvWritesPerSec: number | null
}

/** Resolves when `p` does, throwing meanwhile if `check` does (a process died). */
async function whileChecking<T>(p: Promise<T>, check: () => void): Promise<T> {
  let settled = false
  const watched = p.finally(() => (settled = true))
  // A rejection after `check` threw is nobody's to handle any more.
  watched.catch(() => undefined)
  while (!settled) {
    check()
    await Promise.race([watched, sleep(200)])
  }
  return watched
}

const sum = (kv: KvWrites, keys: ReadonlyArray<keyof KvWrites>): number | null => (keys.some((k) => kv[k] === null) ? null : keys.reduce((n, k) => n + kv[k]!, 0))

export async function measureLevel(rig: Rig, plan: LevelPlan, prefix: string): Promise<Level> {
  const check = () => {
    rig.balancer.check()
    rig.hosts.check()
  }
  const stream = new JobStream(rig.client, { prefix, processor: rig.processor, sharesPerJob: plan.sharesPerJob, unitsPerShare: 1, input: { runMs: 0, failPermille: 0 }, concurrency: plan.jobsInFlight, doneTimeoutMs: plan.doneTimeoutMs })
  let stopping = false
  const running = stream.run(() => stopping)
  // Awaited below; marked handled so that a process death found first does not leave it unhandled.
  running.catch(() => undefined)
  try {
    await whileChecking(sleep(plan.warmupMs), check)
    // Stream reads are made outside the CPU window, as the scale benchmark's are.
    const kv0 = await kvSequences(rig.nc, rig.cluster)
    await rig.hosts.windowStart()
    const s0 = { shares: stream.stats.completedShares, jobs: stream.stats.exact, latencies: stream.stats.latencyMs.length }
    const b0 = processTicks(rig.balancer.pid)
    const bt0 = threadTicks(rig.balancer.pid)
    const n0 = processTicks(rig.natsPid)
    const self0 = process.cpuUsage()
    const m0 = cpuSnapshot()
    const t0 = performance.now()
    await whileChecking(sleep(plan.windowMs), check)
    const seconds = (performance.now() - t0) / 1000
    const b1 = processTicks(rig.balancer.pid)
    const bt1 = threadTicks(rig.balancer.pid)
    const n1 = processTicks(rig.natsPid)
    const self = process.cpuUsage(self0)
    const m1 = cpuSnapshot()
    const s1 = { shares: stream.stats.completedShares, jobs: stream.stats.exact, latencies: stream.stats.latencyMs.length }
    stopping = true
    const hosts = await rig.hosts.windowEnd()
    const kv = kvDelta(kv0, await kvSequences(rig.nc, rig.cluster))
    await whileChecking(running, check)
    const st = stream.stats
    if (st.wrong.length) throw new BenchError(`${st.wrong.length} job(s) ended with a wrong result, e.g. ${st.wrong.slice(0, 3).join('; ')}`)
    if (st.failed) throw new BenchError(`${st.failed} job(s) of ${prefix} failed, though instant shares never fail`)

    const shares = s1.shares - s0.shares
    const balancerCpuS = (b1 - b0) / USER_HZ
    const records = sum(kv, ['jobs', 'shares', 'hosts'])
    const all = sum(kv, KV_BUCKETS)
    const perShare = (x: number | null) => (x === null || shares === 0 ? null : round(x / shares, 3))
    const cpuS = { balancer: balancerCpuS, natsServer: (n1 - n0) / USER_HZ, hosts: hosts.cpuS, benchClient: (self.user + self.system) / 1e6 }
    const sharesPerSec = round(shares / seconds, 1)
    const kvWritesPerSec = all === null ? null : round(all / seconds, 1)
    return {
      sharesPerSec,
      kvWritesPerSec,
      figures: {
        jobsInFlight: plan.jobsInFlight,
        sharesPerJob: plan.sharesPerJob,
        seconds: round(seconds, 2),
        sharesDone: shares,
        jobsDone: s1.jobs - s0.jobs,
        sharesPerSec,
        // Share, job and host records, as the scale benchmark counts them; every bucket below.
        kvWritesPerShare: perShare(records),
        kvWritesPerShareByBucket: Object.fromEntries(KV_BUCKETS.map((b) => [b, perShare(kv[b])])),
        kvWritesPerSec,
        balancerCpuPerShareMs: perShare(balancerCpuS * 1000),
        submitToResultMs: summarizeMany(stream.stats.latencyMs.slice(s0.latencies, s1.latencies)),
        cores: {
          balancer: round(cpuS.balancer / seconds),
          balancerMainThread: round((bt1.main - bt0.main) / USER_HZ / seconds),
          natsServer: round(cpuS.natsServer / seconds),
          hosts: round(cpuS.hosts / seconds),
          benchClient: round(cpuS.benchClient / seconds),
          others: foreignCpu(m0, m1)?.cores ?? null,
        },
        // What one share costs the machine in every process of the run: on 2 cores shared by all of
        // them, this (not the balancer's part alone) is what caps the rate.
        cpuPerShareMs: {
          balancer: perShare(cpuS.balancer * 1000),
          natsServer: perShare(cpuS.natsServer * 1000),
          hosts: perShare(cpuS.hosts * 1000),
          benchClient: perShare(cpuS.benchClient * 1000),
          all: perShare((cpuS.balancer + cpuS.natsServer + cpuS.hosts + cpuS.benchClient) * 1000),
        },
        hosts: hosts.counted,
        // The whole level: warm-up, window and drain.
        jobs: { submitted: st.submitted, exact: st.exact, timedOut: st.timedOut, submitErrors: st.submitErrors },
      },
    }
  } finally {
    stopping = true
  }
}
