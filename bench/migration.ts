/**
 * Live-migration benchmark: stun time (pause request sent → target confirmed it resumed, measured
 * by the balancer) and pause time (→ final checkpoint back from the source) for shares whose
 * checkpoints are 1 KiB, 64 KiB and 1 MiB, moved back and forth between two host processes with
 * `client.migrate`. As a same-run baseline it times a raw NATS request/reply carrying a payload of
 * the same size on the same nats-server, and prints stun / baseline ratios.
 *
 * Shares run the bench processor `ballast` (bench/processors/ballast.ts), which checks its own
 * state byte for byte; every job's result is compared with its range length, so a migration that
 * loses, repeats or damages work fails the benchmark. `--background CORES` runs it next to that
 * much stray load on each CPU (`support/background.ts`), with what that load used reported.
 *
 * Must never drop a sample (statistics are over every successful migration; failed ones are
 * counted and reported), never tune pacing or sizes to flatter the figures, and never leave a
 * process running.
 */

import { fileURLToPath } from 'node:url'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { startNatsServer } from '../lib/nats-server/launcher.ts'
import type { Job } from '../lib/sdk/job.ts'
import type { ShareSummary } from '../lib/sdk/client.ts'
import { BenchError, mean, round, summarize, until, type BenchContext, type Figures } from './support/bench.ts'
import { ClusterStartError, startBenchCluster, type TestCluster } from './support/cluster.ts'
import { withBackground } from './support/background.ts'
import type { RunContext } from './run.ts'

export const description = 'live-migration stun time p50/p99 for 1 KiB, 64 KiB and 1 MiB checkpoints vs raw NATS request/reply'

const BALLAST = fileURLToPath(new URL('./processors/ballast.ts', import.meta.url))
const HOSTS = ['a', 'b']
const MS_PER_UNIT = 1
const KIB = 1024
const MIB = 1024 * 1024
/** The limit the 1 MiB case runs with (the brief's setting; larger states go through the Object Store). */
const MAX_CHECKPOINT_BYTES_1MIB = 4 * MIB
/** Stop migrating a job's share when less than this much of it is left, so it never ends mid-move. */
const TAIL_MS = 1000
/** How long a migrated share may take to show progress on its new host. */
const PROGRESS_TIMEOUT_MS = 10_000

interface SizeCase {
  label: string
  bytes: number
  env: Record<string, string>
}

/**
 * Only mandatory moves from the balancer's own policy (DRS threshold 1): the benchmark's manual
 * migrations are the only ones, so none is refused as "already being moved" and none is counted
 * that the benchmark did not ask for.
 */
/**
 * Threshold 1 (no balancing moves) and no dynamic splits (a split would take the measured share
 * out of the benchmark's hands), so the benchmark's own migrations are the only moves.
 */
const BASE_ENV = { SHOAL_BALANCER_MIGRATION_THRESHOLD: '1', SHOAL_BALANCER_SPLIT_MIN_UNITS: '1000000000000' }

const SIZES: SizeCase[] = [
  { label: '1KiB', bytes: KIB, env: BASE_ENV },
  { label: '64KiB', bytes: 64 * KIB, env: BASE_ENV },
  { label: '1MiB', bytes: MIB, env: { ...BASE_ENV, SHOAL_SHARES_MAX_CHECKPOINT_BYTES: String(MAX_CHECKPOINT_BYTES_1MIB) } },
]

interface SizeResult {
  stun: number[]
  pause: number[]
  checkpointBytes: number[]
  failed: string[]
  jobs: number
  cycleMs: number[]
}

/** Messages of an error and its causes, joined. */
function fullMessage(e: unknown): string {
  const parts: string[] = []
  let cur: unknown = e
  while (cur instanceof Error && parts.length < 5) {
    const code = (cur as { code?: unknown }).code
    parts.push(typeof code === 'string' ? `${code}: ${cur.message}` : cur.message)
    cur = cur.cause
  }
  return parts.length ? parts.join(' ← ') : String(e)
}

/** An error that says the checkpoint (or a message carrying it) is too large. */
function isSizeError(e: unknown): boolean {
  return /E_CHECKPOINT_TOO_LARGE|E_MSG_TOO_LARGE|max_payload|MAX_PAYLOAD|too large|maxCheckpointBytes|maxMessageBytes/i.test(fullMessage(e))
}

// ------------------------------------------------------------------ raw NATS baseline

async function rawRoundTrips(url: string, bytes: number, samples: number): Promise<{ ms: number[]; error?: string }> {
  let server: NatsConnection | undefined
  let client: NatsConnection | undefined
  try {
    server = await connect({ servers: url, name: 'bench-raw-responder' })
    client = await connect({ servers: url, name: 'bench-raw-requester' })
    const subject = `bench.raw.${process.pid}.${bytes}`
    const empty = new Uint8Array(0)
    server.subscribe(subject, {
      callback: (err, msg) => {
        if (!err) msg.respond(empty)
      },
    })
    await server.flush()
    const payload = new Uint8Array(bytes)
    for (let i = 0; i < bytes; i++) payload[i] = (i * 131 + 17) & 0xff
    const ms: number[] = []
    const warmup = Math.min(20, samples)
    for (let i = 0; i < warmup + samples; i++) {
      const t0 = performance.now()
      await client.request(subject, payload, { timeout: 5000 })
      if (i >= warmup) ms.push(performance.now() - t0)
    }
    return { ms }
  } catch (e) {
    return { ms: [], error: fullMessage(e) }
  } finally {
    await client?.close()
    await server?.close()
  }
}

// ------------------------------------------------------------------ migrations

async function runningShare(job: Job<number>): Promise<ShareSummary> {
  const d = await job.fetch(true)
  if (d.state === 'failed' || d.state === 'cancelled') await job.result() // throws the job's error
  const s = d.shares![0]!
  return s
}

async function migrateSize(c: TestCluster, size: SizeCase, migrations: number, maxUnits: number, log: (l: string) => void): Promise<SizeResult> {
  const out: SizeResult = { stun: [], pause: [], checkpointBytes: [], failed: [], jobs: 0, cycleMs: [] }
  const done = (): number => out.stun.length + out.failed.length
  while (done() < migrations) {
    // Size the job for the migrations still to do (plus the tail), so little time is spent after them.
    const estCycleMs = out.cycleMs.length ? mean(out.cycleMs) : 500
    const units = Math.min(maxUnits, Math.ceil(((migrations - done()) * estCycleMs * 1.3 + TAIL_MS + 500) / MS_PER_UNIT))
    const job = await c.client.submit<number>({ processor: 'ballast', range: [0, units], input: { stateBytes: size.bytes, msPerUnit: MS_PER_UNIT }, shares: 1 })
    out.jobs++
    let share = await until(
      async () => {
        const s = await runningShare(job)
        return s.state === 'running' && s.host !== null && s.position > s.from ? s : undefined
      },
      PROGRESS_TIMEOUT_MS,
      `the ${size.label} share to run`,
    )
    while (done() < migrations && (share.to - share.position) * MS_PER_UNIT > TAIL_MS) {
      const t0 = performance.now()
      const toHost = HOSTS.find((h) => h !== share.host)!
      const m = await c.client.migrate(share.shareId, toHost)
      if (m.ok) {
        out.stun.push(m.stunMs)
        out.pause.push(m.pauseMs)
        out.checkpointBytes.push(m.checkpointBytes)
      } else {
        out.failed.push(m.error ? `${m.error.code}: ${m.error.message}` : 'failed without an error')
        if (m.error && isSizeError(Object.assign(new Error(m.error.message), { code: m.error.code }))) {
          throw Object.assign(new Error(m.error.message), { code: m.error.code })
        }
      }
      // Wait until the share shows progress past its resume point on its (new) host.
      const resumedAt = (await runningShare(job)).position
      share = await until(
        async () => {
          const s = await runningShare(job)
          if (s.state === 'done') return s
          return s.state === 'running' && s.host !== null && s.position > resumedAt ? s : undefined
        },
        PROGRESS_TIMEOUT_MS,
        `the ${size.label} share to make progress after migrating to ${toHost}`,
      )
      out.cycleMs.push(performance.now() - t0)
      if (share.state === 'done') break
    }
    const result = await job.result()
    if (result !== units) throw new BenchError(`${size.label}: ballast job returned ${result}, expected ${units} units: work was lost or counted twice`)
    log(`  ${size.label}: job ${out.jobs} exact (${units} units); ${done()}/${migrations} migrations`)
  }
  return out
}

// ------------------------------------------------------------------ run

export function run(ctx: RunContext): Promise<Figures> {
  // The hosts are not pinned: stray load on both CPUs.
  return withBackground(ctx, ctx.background, ['0', '1'], () => measure(ctx))
}

async function measure({ smoke, log }: BenchContext): Promise<Figures> {
  const migrations = smoke ? 5 : 100
  const rawSamples = smoke ? 100 : 1000
  const maxUnits = smoke ? 3000 : 12_000
  const nats = await startNatsServer()
  const sizes: Record<string, unknown> = {}
  let stunP99At64KiB = Number.NaN
  try {
    let cluster: TestCluster | undefined
    let clusterEnv = ''
    try {
      for (const size of SIZES) {
        let res: SizeResult
        let raw: { ms: number[]; error?: string }
        try {
          const envKey = JSON.stringify(size.env)
          if (!cluster || envKey !== clusterEnv) {
            await cluster?.stop()
            cluster = undefined
            log(`${size.label}: starting a balancer and hosts ${HOSTS.join(', ')}${Object.keys(size.env).length ? ` with ${Object.entries(size.env).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`)
            cluster = await startBenchCluster(nats.url, { hosts: HOSTS.map((id) => ({ id, args: ['--processor', BALLAST] })), env: size.env })
            clusterEnv = envKey
          }
          log(`${size.label}: raw NATS request/reply baseline (${rawSamples} round trips of ${size.bytes} bytes)`)
          raw = await rawRoundTrips(nats.url, size.bytes, rawSamples)
          log(`${size.label}: ${migrations} migrations`)
          res = await migrateSize(cluster, size, migrations, maxUnits, log)
        } catch (e) {
          if (e instanceof BenchError || !isSizeError(e)) {
            if (e instanceof ClusterStartError) throw new BenchError(`${size.label}: ${e.message}`)
            throw e
          }
          const why = e instanceof ClusterStartError ? e.message : fullMessage(e)
          log(`${size.label}: not supported yet (${why})`)
          sizes[size.label] = { stateBytes: size.bytes, supported: false, result: `${size.label === '1MiB' ? '1 MiB' : size.label}: not supported yet (${why})` }
          await cluster?.stop()
          cluster = undefined
          continue
        }
        const rawStats = summarize(raw.ms)
        const stun = summarize(res.stun)
        const pause = summarize(res.pause)
        if (size.bytes === 64 * KIB) stunP99At64KiB = stun.p99
        sizes[size.label] = {
          stateBytes: size.bytes,
          supported: true,
          checkpointBytesMean: Math.round(mean(res.checkpointBytes)),
          migrationsOk: res.stun.length,
          migrationsFailed: res.failed.length,
          failures: res.failed.slice(0, 5),
          jobs: res.jobs,
          resultsExact: true,
          migrationCycleMsMean: round(mean(res.cycleMs), 1),
          stunMs: stun,
          pauseMs: pause,
          rawNatsRoundTripMs: raw.error ? { error: raw.error } : rawStats,
          stunOverRawP50: raw.error ? null : round(stun.p50 / rawStats.p50, 1),
          stunOverRawP99: raw.error ? null : round(stun.p99 / rawStats.p99, 1),
        }
        log(`${size.label}: stun p50 ${stun.p50} ms, p99 ${stun.p99} ms, max ${stun.max} ms; raw NATS p50 ${rawStats.p50} ms, p99 ${rawStats.p99} ms`)
      }
    } finally {
      await cluster?.stop()
    }
  } finally {
    await nats.stop()
  }

  return {
    config: {
      hosts: HOSTS.length,
      slotsPerHost: 2,
      processor: 'ballast (bench/processors/ballast.ts)',
      msPerUnit: MS_PER_UNIT,
      migrationsPerSize: migrations,
      rawRoundTripsPerSize: rawSamples,
      checkpointMs: 1000,
      migrationThreshold: 1,
      maxCheckpointBytesFor1MiB: MAX_CHECKPOINT_BYTES_1MIB,
    },
    sizes,
    targets: {
      stunP99At64KiBMs: `<= 50: ${Number.isFinite(stunP99At64KiB) ? `${stunP99At64KiB <= 50 ? 'met' : 'MISSED'} (${stunP99At64KiB} ms)` : 'not measured'}`,
    },
    notes: [
      'Stun = the balancer sends the pause → the target host confirms it resumed (performance.now() in the balancer). It includes waiting for the source\'s next safe point (steps are sized to ≈5 ms; a ballast unit waits 1 ms), the final checkpoint\'s trip back, storing it durably in JetStream KV (and the Object Store for states over half of protocol.maxMessageBytes), and the assign request that carries it to the target.',
      'Pause = pause request → final checkpoint received from the source.',
      'Raw NATS baseline = one request with a payload of the state\'s size and an empty reply, between two connections of this process, on the same nats-server, while the cluster idles. A migration moves the state at least three times (checkpoint back, durable store, assign to target), so stun / baseline ≥ 3 is expected even with no overhead.',
      'Each migration waits until the share has shown progress on its new host (a heartbeat position past its resume point) before the next one, so moves are not back to back.',
      'Every job\'s result is the exact unit count and each share verified its ballast byte for byte.',
    ],
  }
}
