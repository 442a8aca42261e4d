/**
 * Uneven-cluster benchmark (issue 4, point 7): host processes made uneven for real, by CPU pinning
 * and a background CPU hog, and what balancing and dynamic splitting make of them.
 *
 * Part 1, makespan. Hosts `a` (taskset CPU 0, 1 slot), `b` and `c` (both CPU 1, 1 slot each): one
 * core against two halves of one. One cpu-burn job with the default share count (auto = 3 slots),
 * and a busy-loop hog pinned to CPU 0 (host a's) from ≈ 40 % of the ideal makespan to the end. Run
 * alternately with product defaults ("balanced": balancing and splits on) and with
 * `balancer.migrationThreshold` 1 and splits disabled ("static": the same shares placed once),
 * each on a fresh balancer and hosts. The ideal makespan M* is computed from the per-core rate r1
 * of the processor's own step, measured by a pinned child on each CPU alone before and after the
 * runs: 2 cores of work per second until the hog starts, 1.5 after (the hog takes half of CPU 0).
 * Every job's checksum must equal the one computed outside Shoal (by two pinned children, which
 * also show whether two busy CPUs each deliver r1); a mismatch means a unit was lost or counted
 * twice, and fails the run.
 *
 * Part 2, hog trigger. Hosts `a` (CPU 0) and `b` (CPU 1), 1 slot each, splits off, default
 * threshold and interval. A one-share job runs on one of them; once it has run past
 * `balancer.minResidencyMs` on it, a hog is started on that host's CPU, and the time from the hog's
 * first busy instant to the balancer's first `imbalance` migration away from that host is measured,
 * with every balancing pass seen meanwhile (loads and reasons). Full runs add one repeat with the
 * hog 3 s after placement (once the share's rate is measured): a freshly placed share, which
 * minResidencyMs does not guard (it guards only migrated shares), must move as fast.
 *
 * `--background CORES` keeps that much stray load on each of CPUs 0 and 1 through every part,
 * calibration included (so r1 and the ideal are those of CPUs that carry it), with what it used
 * reported (`support/background.ts`).
 *
 * The machine is shared: every figure comes with the CPU that processes this benchmark did not
 * start used meanwhile (`bench/support/cpu-account.ts`). Full runs keep every process's log in a
 * temporary directory (`setup.logDir`); `UNEVEN_LOG_DIR=dir` chooses it, also for smoke runs.
 *
 * Must never tune the job, the timing or the configuration to flatter the product (balanced runs use
 * the product defaults as users get them), never report a figure from a run whose checksum was
 * wrong, and never leave a process running: the hog, the calibration children and every cluster
 * process are killed on return, on failure and when this process exits.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startNatsServer } from '../lib/nats-server/launcher.ts'
import cpuBurn, { CPU_BURN_DEFAULT_WORK } from '../lib/processors/cpu-burn.ts'
import type { BalanceSummary, JobSummary, Migration } from '../lib/sdk/client.ts'
import { pinnedPrefix, tasksetPath } from '../spec/support/cluster.ts'
import { BenchError, median, round, sleep, until, type BenchContext, type Figures } from './support/bench.ts'
import { startBenchCluster, type TestCluster } from './support/cluster.ts'
import { usedBetween, withBackground, type Background } from './support/background.ts'
import { cpuSnapshot, foreignCpu } from './support/cpu-account.ts'
import type { RunContext } from './run.ts'

export const description = 'makespan on CPU-pinned uneven hosts with a CPU hog, balanced vs static placement, against the ideal; time from a hog to the first migration'

const BURN = fileURLToPath(new URL('./support/burn-range.ts', import.meta.url))
/** Hash rounds per unit, passed explicitly so the local checksum uses the same work as the job. */
const WORK = CPU_BURN_DEFAULT_WORK
/** The hog starts at this fraction of the planned ideal makespan. */
const HOG_FRACTION = 0.4
/** CPU capacity in cores before and after the hog (it takes half of CPU 0 under fair sharing). */
const CORES_BEFORE_HOG = 2
const CORES_AFTER_HOG = 1.5
/** Product defaults the hog-trigger part is measured against (set explicitly, so the unit is right). */
const INTERVAL_MS = 1000
const MIN_RESIDENCY_MS = 10_000
/** The early hog-trigger repeat starts the hog this long after placement. */
const EARLY_HOG_MS = 3000
/** A hog-trigger repeat waits this many balancing intervals for a migration before calling it missed. */
const TRIGGER_WAIT_INTERVALS = 10
/** Job positions are polled this often in part 1 (heartbeats bring them every 250 ms anyway). */
const POSITION_POLL_MS = 250
/**
 * Part 2 polls the balancer's status this often. The trigger time comes from the migration record
 * (its time minus its stun), not from when the poll sees it, so a faster poll buys no precision; it
 * only adds balancer, nats-server and benchmark CPU, and that lands on the idle CPU, the very one
 * the migration target's load is measured on (with 20 ms polling the idle target read 0.08–0.12 of
 * external load in a smoke run, and the policy refuses a move that takes a target past load 1).
 */
const STATUS_POLL_MS = 250
/** "No splits": a split needs 2 × splitMinUnits units left, more than any job here has. */
const NO_SPLITS = '1000000000000'

interface Mode {
  /** Units of the makespan job: sized so a balanced full run takes ≈ 25 s here (≈ 14k units/s per core when quiet). */
  units: number
  /** Makespan repeats per variant (balanced, static alternate). */
  repeats: number
  /** Hog-trigger repeats in the steady state. */
  triggerRepeats: number
  /** Also run one hog-trigger repeat with the hog EARLY_HOG_MS after placement (a freshly placed share). */
  earlyTrigger: boolean
  /** Solo calibration per CPU. */
  calibrateMs: number
  /**
   * Window over which part 2 measures a share's rate, before the hog and after the move. Positions
   * arrive with heartbeats (every 250 ms), so a short window is off by up to ≈ 20 %.
   */
  rateWindowMs: number
  /** minResidencyMs for part 2 (smoke shortens the wait; the figure is then not the product's). */
  residencyMs: number
}
const FULL: Mode = { units: 550_000, repeats: 3, triggerRepeats: 3, earlyTrigger: true, calibrateMs: 2000, rateWindowMs: 3000, residencyMs: MIN_RESIDENCY_MS }
const SMOKE: Mode = { units: 30_000, repeats: 1, triggerRepeats: 1, earlyTrigger: false, calibrateMs: 700, rateWindowMs: 1000, residencyMs: 2000 }

/** Part 1 layout: the CPUs each host is pinned to (every host gets 1 slot). */
const MAKESPAN_HOSTS = [
  { id: 'a', cpus: '0' },
  { id: 'b', cpus: '1' },
  { id: 'c', cpus: '1' },
]
const HOG_CPU = '0'
/** Part 2 layout (1 slot each). */
const TRIGGER_HOSTS = [
  { id: 'a', cpus: '0' },
  { id: 'b', cpus: '1' },
]

// ------------------------------------------------------------------ child processes

/** SIGKILLs `child` if this process exits first (the dispatcher exits on SIGINT/SIGTERM). */
function killOnExit(child: ChildProcess): ChildProcess {
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  process.once('exit', kill)
  child.once('exit', () => process.off('exit', kill))
  return child
}

function killNow(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

interface BurnOutput {
  checksum: number
  units: number
  ms: number
}

/** Runs `burn-range.ts` pinned to `cpu` and returns its JSON line. */
function burnChild(cpu: string, args: string[], timeoutMs: number): Promise<BurnOutput> {
  return new Promise((resolve, reject) => {
    const [exe, ...pre] = pinnedPrefix(cpu)
    const child = killOnExit(spawn(exe!, [...pre, process.execPath, '--import', 'tsx', BURN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }))
    let out = ''
    let err = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new BenchError(`burn-range ${args.join(' ')} on CPU ${cpu} did not finish within ${timeoutMs} ms`))
    }, timeoutMs)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      if (code !== 0) return reject(new BenchError(`burn-range ${args.join(' ')} on CPU ${cpu} exited with ${String(code)}: ${err.trim().slice(-600)}`))
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1)!) as BurnOutput)
      } catch {
        reject(new BenchError(`burn-range ${args.join(' ')} printed no result: ${out.slice(-300)} ${err.slice(-300)}`))
      }
    })
  })
}

interface Hog {
  child: ChildProcess
  cpu: string
  /** Date.now() when the hog reported it was about to spin. */
  busyAt: number
}

/** Starts a one-thread busy loop pinned to `cpu`; resolves once it spins (it says so first). */
function startHog(cpu: string): Promise<Hog> {
  return new Promise((resolve, reject) => {
    const [exe, ...pre] = pinnedPrefix(cpu)
    // A pipe write is synchronous on Linux, so the line is out before the loop starts.
    const child = killOnExit(spawn(exe!, [...pre, process.execPath, '-e', "process.stdout.write('spinning\\n'); for (;;) {}"], { stdio: ['ignore', 'pipe', 'ignore'] }))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new BenchError(`the CPU hog on CPU ${cpu} did not start within 10 s`))
    }, 10_000)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.stdout!.setEncoding('utf8').once('data', () => {
      clearTimeout(timer)
      resolve({ child, cpu, busyAt: Date.now() })
    })
  })
}

// ------------------------------------------------------------------ calibration

interface Solo {
  /** Units/s of CPU 0 and CPU 1, each burning alone with nothing else of the benchmark running. */
  cpu0: number
  cpu1: number
  /** Cores the `--background` load used on that CPU meanwhile (0 without one). */
  bgCpu0: number
  bgCpu1: number
}

/**
 * A solo rate with the CPU's background taken out: what the processor does per second of a whole
 * core, the unit the ideal counts in (equal to the measured rate without `--background`).
 */
function wholeCoreRates(s: Solo): [number, number] {
  return [s.cpu0 / (1 - s.bgCpu0), s.cpu1 / (1 - s.bgCpu1)]
}

interface Calibration {
  /** Solo rates before the makespan runs. */
  before: Solo
  /** r1 from `before` alone: what plans the hog time and sizes jobs. */
  r1Planning: number
  /** Units/s per CPU while both burn at once (the local checksum run). */
  pairedRateCpu0: number
  pairedRateCpu1: number
  /** Checksum of [0, units) at WORK, computed outside Shoal. */
  localChecksum: number
}

/** Each CPU burning alone for `ms` (one after the other, so they never share anything). */
async function soloRates(ms: number, bg?: Background): Promise<Solo> {
  const t = ms + 30_000
  const a = bg?.sample()
  const s0 = await burnChild('0', ['timed', String(ms), String(WORK)], t)
  const b = bg?.sample()
  const s1 = await burnChild('1', ['timed', String(ms), String(WORK)], t)
  const c = bg?.sample()
  // The children's start-up is inside these windows too: a slight under-estimate of the background.
  const bgCpu0 = a && b ? (usedBetween(a, b)['0'] ?? 0) : 0
  const bgCpu1 = b && c ? (usedBetween(b, c)['1'] ?? 0) : 0
  return { cpu0: (s0.units / s0.ms) * 1000, cpu1: (s1.units / s1.ms) * 1000, bgCpu0, bgCpu1 }
}

async function calibrate(mode: Mode, log: (l: string) => void, bg?: Background): Promise<Calibration> {
  log(`calibration: cpu-burn (workPerUnit ${WORK}) alone on CPU 0, then alone on CPU 1, ${mode.calibrateMs} ms each`)
  const before = await soloRates(mode.calibrateMs, bg)
  const r1Planning = (before.cpu0 + before.cpu1) / 2
  log(`  ${Math.round(before.cpu0)} and ${Math.round(before.cpu1)} units/s per core`)
  const half = Math.floor(mode.units / 2)
  const budget = Math.round((mode.units / r1Planning) * 1000 * 3 + 30_000)
  log(`local checksum of [0, ${mode.units}) outside Shoal: CPU 0 and CPU 1 burn one half each, at once`)
  const [p0, p1] = await Promise.all([
    burnChild('0', ['range', '0', String(half), String(WORK)], budget),
    burnChild('1', ['range', String(half), String(mode.units), String(WORK)], budget),
  ])
  const pairedRateCpu0 = (p0.units / p0.ms) * 1000
  const pairedRateCpu1 = (p1.units / p1.ms) * 1000
  // The processor's own merge, in range order, as the balancer has a host merge share results.
  const localChecksum = cpuBurn.merge(p0.checksum, p1.checksum, { workPerUnit: WORK })
  log(`  checksum ${localChecksum}; ${Math.round(pairedRateCpu0)} and ${Math.round(pairedRateCpu1)} units/s per CPU with both busy`)
  return { before, r1Planning, pairedRateCpu0, pairedRateCpu1, localChecksum }
}

/**
 * Ideal makespan of `units` with capacity `before` cores until `hogAtMs` and `after` cores from
 * then on, at `rate` units/s per core (fluid: perfectly divisible work, no overhead).
 */
export function idealMakespanMs(units: number, rate: number, hogAtMs: number | null, before = CORES_BEFORE_HOG, after = CORES_AFTER_HOG): number {
  const allBefore = (units / (before * rate)) * 1000
  if (hogAtMs === null || allBefore <= hogAtMs) return allBefore
  const doneBefore = (before * rate * hogAtMs) / 1000
  return hogAtMs + ((units - doneBefore) / (after * rate)) * 1000
}

/** Foreign CPU above this (cores, averaged) is called out in the progress log. */
const FOREIGN_WARN_CORES = 0.05

function foreignNote(cores: number | null): string {
  return cores !== null && cores > FOREIGN_WARN_CORES ? `; WARNING: processes this benchmark did not start kept ${cores} cores busy meanwhile` : ''
}

// ------------------------------------------------------------------ part 1: makespan

type Variant = 'balanced' | 'static'

interface MakespanRun {
  variant: Variant
  repeat: number
  makespanMs: number
  /** Hog busy, ms after the balancer admitted the job; null if the job ended first. */
  hogAtMs: number | null
  /** Ideal makespan for this run's hog time at r1 (filled in once r1 is known, after all runs). */
  idealMs: number
  overIdeal: number
  checksum: number
  splits: number
  sharesAtStart: number
  sharesFinal: number
  migrationsByReason: Record<string, number>
  /** Fraction of the job's units each host processed (from live positions polled every 250 ms). */
  unitsByHost: Record<string, number>
  /** When each host last made progress, ms after admission. */
  hostLastProgressMs: Record<string, number>
  /** When the share count first grew (a split), ms after admission; null if never. */
  firstSplitAtMs: number | null
  /** Average cores busy with processes this benchmark did not start, over the run (null: not Linux). */
  foreignCores: number | null
  /** Cores the `--background` load used on CPU 0 and CPU 1 over the run (0 without one). */
  backgroundCores: [number, number]
}

function saveLogs(dir: string | undefined, tag: string, c: TestCluster): void {
  if (!dir) return
  for (const name of ['balancer', ...c.hosts.keys()]) writeFileSync(join(dir, `${tag}-${name}.log`), c.log(name))
}

async function makespanRun(url: string, mode: Mode, cal: Calibration, variant: Variant, repeat: number, logDir: string | undefined, log: (l: string) => void, bg?: Background): Promise<MakespanRun> {
  const env: Record<string, string> = variant === 'static' ? { SHOAL_BALANCER_MIGRATION_THRESHOLD: '1', SHOAL_BALANCER_SPLIT_MIN_UNITS: NO_SPLITS } : {}
  const c = await startBenchCluster(url, { hosts: MAKESPAN_HOSTS.map((h) => ({ id: h.id, cpus: h.cpus, args: ['--slots', '1'] })), env })
  let hog: Hog | undefined
  let hogStarting: Promise<Hog> | undefined
  let hogTimer: NodeJS.Timeout | undefined
  try {
    // Planned hog time: 40 % of the ideal with the hog at 40 % of it, M* = units / (r1 (0.4·2 + 0.6·1.5)).
    const plannedMs = (mode.units / (cal.r1Planning * (HOG_FRACTION * CORES_BEFORE_HOG + (1 - HOG_FRACTION) * CORES_AFTER_HOG))) * 1000
    const hogPlanMs = Math.round(HOG_FRACTION * plannedMs)
    const job = await c.client.submit<number>({ processor: 'cpu-burn', range: [0, mode.units], input: { workPerUnit: WORK } })
    const first = await job.fetch(true)
    const admittedAt = first.submittedAt
    const cpu0 = cpuSnapshot()
    const bg0 = bg?.sample()
    hogTimer = setTimeout(() => {
      hogStarting = startHog(HOG_CPU)
      hogStarting.then((h) => (hog = h)).catch(() => undefined)
    }, Math.max(0, admittedAt + hogPlanMs - Date.now()))

    const prevPos = new Map<string, number>()
    const units: Record<string, number> = Object.fromEntries(MAKESPAN_HOSTS.map((h) => [h.id, 0]))
    const lastProgress: Record<string, number> = {}
    let firstSplitAtMs: number | null = null
    const sharesAtStart = first.sharesTotal
    const deadline = Date.now() + plannedMs * 10 + 60_000
    let d: JobSummary = first
    for (;;) {
      const now = Date.now()
      for (const s of d.shares ?? []) {
        const prev = prevPos.get(s.shareId) ?? s.from
        const host = s.host ?? s.hosts.at(-1)
        if (s.position > prev && host !== undefined) {
          units[host] = (units[host] ?? 0) + (s.position - prev)
          lastProgress[host] = now - admittedAt
        }
        prevPos.set(s.shareId, Math.max(prev, s.position))
      }
      if (firstSplitAtMs === null && d.sharesTotal > sharesAtStart) firstSplitAtMs = now - admittedAt
      if (d.state !== 'running' && d.state !== 'waiting') break
      if (now > deadline) throw new BenchError(`${variant} run: the job did not finish within ${deadline - admittedAt} ms (${d.unitsDone}/${d.unitsTotal} units)\n--- balancer log tail:\n${c.log('balancer').slice(-3000)}`)
      await sleep(POSITION_POLL_MS)
      d = await job.fetch(true)
    }
    clearTimeout(hogTimer)
    const bgUse = bg0 ? usedBetween(bg0, bg!.sample()) : {}
    if (hogStarting) hog = await hogStarting
    if (d.state !== 'completed') throw new BenchError(`${variant} run: the job ended ${d.state}: ${JSON.stringify(d.error ?? d.reason ?? '')}`)
    const checksum = await job.result()
    const makespanMs = d.elapsedMs ?? d.finishedAt! - admittedAt
    const hogAtMs = hog ? hog.busyAt - admittedAt : null
    const status = await c.client.status()
    const migrationsByReason: Record<string, number> = {}
    for (const m of status.migrations) if (m.jobId === job.id) migrationsByReason[m.reason] = (migrationsByReason[m.reason] ?? 0) + 1
    const run: MakespanRun = {
      variant,
      repeat,
      makespanMs,
      hogAtMs,
      idealMs: Number.NaN,
      overIdeal: Number.NaN,
      checksum,
      splits: status.balance?.splitsTotal ?? 0,
      sharesAtStart,
      sharesFinal: d.sharesTotal,
      migrationsByReason,
      unitsByHost: Object.fromEntries(Object.entries(units).map(([h, u]) => [h, round(u / mode.units)])),
      hostLastProgressMs: lastProgress,
      firstSplitAtMs,
      foreignCores: null,
      backgroundCores: [bgUse['0'] ?? 0, bgUse['1'] ?? 0],
    }
    const moved = Object.entries(migrationsByReason).map(([r, n]) => `${n} ${r}`).join(', ') || 'none'
    // From submit to completion, as the makespan: cluster start and stop are not part of it.
    run.foreignCores = foreignCpu(cpu0, cpuSnapshot())?.cores ?? null
    const provisional = idealMakespanMs(mode.units, cal.r1Planning, hogAtMs)
    log(`  ${variant}: makespan ${makespanMs} ms (≈ ${round(makespanMs / provisional)} × the ideal at the r1 measured before the runs), hog at ${hogAtMs ?? '—'} ms, ${run.splits} splits (${sharesAtStart} → ${d.sharesTotal} shares), migrations ${moved}, units ${Object.entries(run.unitsByHost).map(([h, f]) => `${h} ${(f * 100).toFixed(1)} %`).join(' / ')}, checksum ${checksum}${foreignNote(run.foreignCores)}`)
    return run
  } finally {
    clearTimeout(hogTimer)
    if (hogStarting) hog = await hogStarting.catch(() => undefined)
    if (hog) await killNow(hog.child)
    saveLogs(logDir, `makespan-${variant}-${repeat}`, c)
    await c.stop()
  }
}

// ------------------------------------------------------------------ part 2: hog trigger

interface TriggerRun {
  variant: 'steady' | 'early'
  repeat: number
  victim: string
  victimCpu: string
  /** Share first seen running on the victim → hog busy (null: no hog, see movedBeforeHog). */
  hogAfterPlacementMs: number | null
  /** The share's units/s on the victim over Mode.rateWindowMs before the hog. */
  rateBeforeHog: number
  /** Hog busy → the balancer started the migration (migration record time − its stun); null if missed. */
  triggerMs: number | null
  triggerIntervals: number | null
  /** Hog busy → the target confirmed the share resumed. */
  migratedMs: number | null
  toHost: string | null
  stunMs: number | null
  migrationOk: boolean | null
  /** The share's units/s on its new host over Mode.rateWindowMs after the move. */
  rateAfterMove: number | null
  missed: boolean
  /** The last balancing pass seen before the migration (or at the deadline when missed). */
  balance: PassSeen | null
  /** Every balancing pass seen from the hog to the migration (or the deadline), `atMs` after the hog. */
  passes: PassSeen[]
  /** Average cores busy with processes this benchmark did not start, from the hog to the migration or deadline. */
  foreignCores: number | null
  /**
   * Migrations of the share decided before the hog was busy. Nothing should move the only share of
   * an otherwise idle pool; when something did, the hog would land on the wrong CPU, so the repeat
   * measures no trigger time (it is reported, not retried).
   */
  movedBeforeHog: PreHogMove[]
}

interface PreHogMove {
  fromHost: string
  toHost: string
  reason: string
  /** Decision time (record time − stun), ms after the share was first seen running. */
  decidedAfterPlacementMs: number
  stunMs: number
}

function preHogMoves(migrations: readonly Migration[], jobId: string, before: number, placedSeenAt: number): PreHogMove[] {
  return migrations
    .filter((m) => m.jobId === jobId && m.at - m.stunMs < before)
    .map((m) => ({ fromHost: m.fromHost, toHost: m.toHost, reason: m.reason, decidedAfterPlacementMs: Math.round(m.at - m.stunMs - placedSeenAt), stunMs: round(m.stunMs, 2) }))
}

interface PassSeen {
  atMs?: number
  imbalance: number
  toleratedImbalance: number | null
  loads: Record<string, number>
  reasons: string[]
}

function pickBalance(b: BalanceSummary | undefined, since?: number): PassSeen | null {
  if (!b) return null
  return { ...(since === undefined ? {} : { atMs: b.at - since }), imbalance: round(b.imbalance), toleratedImbalance: b.toleratedImbalance === null ? null : round(b.toleratedImbalance), loads: Object.fromEntries(Object.entries(b.loads).map(([h, l]) => [h, round(l)])), reasons: b.reasons }
}

/**
 * Units/s of one share from live positions over about `ms`, and the host it ran on throughout (else
 * null). Positions change only when a heartbeat arrives (every 250 ms), so the rate is taken between
 * the first and the last change seen, polled every 50 ms, not between two arbitrary polls.
 */
async function shareRate(fetch: () => Promise<JobSummary>, shareId: string, ms: number): Promise<{ rate: number; host: string | null }> {
  const changes: Array<{ t: number; pos: number }> = []
  const hosts = new Set<string | null>()
  const end = Date.now() + ms
  while (Date.now() < end || changes.length < 2) {
    const s = (await fetch()).shares!.find((x) => x.shareId === shareId)!
    hosts.add(s.host)
    if (!changes.length || s.position !== changes.at(-1)!.pos) changes.push({ t: Date.now(), pos: s.position })
    if (Date.now() > end + 5000) break
    await sleep(50)
  }
  const a = changes[0]!
  const b = changes.at(-1)!
  return { rate: b.t > a.t ? ((b.pos - a.pos) / (b.t - a.t)) * 1000 : 0, host: hosts.size === 1 ? [...hosts][0]! : null }
}

async function triggerRun(url: string, mode: Mode, cal: Calibration, variant: 'steady' | 'early', repeat: number, logDir: string | undefined, log: (l: string) => void): Promise<TriggerRun> {
  const residencyMs = variant === 'early' ? MIN_RESIDENCY_MS : mode.residencyMs
  const env: Record<string, string> = {
    SHOAL_BALANCER_SPLIT_MIN_UNITS: NO_SPLITS,
    SHOAL_BALANCER_INTERVAL_MS: String(INTERVAL_MS),
    SHOAL_BALANCER_MIN_RESIDENCY_MS: String(residencyMs),
  }
  const c = await startBenchCluster(url, { hosts: TRIGGER_HOSTS.map((h) => ({ id: h.id, cpus: h.cpus, args: ['--slots', '1'] })), env })
  let hog: Hog | undefined
  try {
    // Long enough never to finish while measured: the residency wait, the trigger wait, and margin, at full speed.
    const units = Math.ceil(cal.r1Planning * ((residencyMs + TRIGGER_WAIT_INTERVALS * INTERVAL_MS) / 1000 + 30))
    const job = await c.client.submit<number>({ processor: 'cpu-burn', range: [0, units], input: { workPerUnit: WORK }, shares: 1 })
    const fetch = (): Promise<JobSummary> => job.fetch(true)
    const running = await until(
      async () => {
        const d = await fetch()
        const s = d.shares?.[0]
        return s && s.state === 'running' && s.host ? s : undefined
      },
      15_000,
      'the share to run',
    )
    const placedSeenAt = Date.now()
    // Rate measured (position moving), and in the steady variant past minResidencyMs, so what holds
    // a move back is the policy's view of the load, not the anti-thrash rule for a fresh placement.
    const waitMs = variant === 'early' ? Math.max(EARLY_HOG_MS, mode.rateWindowMs) : residencyMs + INTERVAL_MS
    // A clock condition (residency runs out at a known time) that no state exposes: a timed wait.
    await sleep(Math.max(0, placedSeenAt + waitMs - mode.rateWindowMs - Date.now()))
    const before = await shareRate(fetch, running.shareId, mode.rateWindowMs)
    const victim = running.host!
    const victimCpu = TRIGGER_HOSTS.find((h) => h.id === victim)!.cpus
    const rateBeforeHog = before.rate
    const out: TriggerRun = {
      variant,
      repeat,
      victim,
      victimCpu,
      hogAfterPlacementMs: null,
      rateBeforeHog: Math.round(rateBeforeHog),
      triggerMs: null,
      triggerIntervals: null,
      migratedMs: null,
      toHost: null,
      stunMs: null,
      migrationOk: null,
      rateAfterMove: null,
      missed: false,
      balance: null,
      passes: [],
      foreignCores: null,
      movedBeforeHog: [],
    }
    // Nothing should move an idle pool's only share; if something did, the hog would land on the
    // wrong CPU: report the move (a figure about the policy) instead of a trigger time.
    const stBefore = await c.client.status()
    out.movedBeforeHog = preHogMoves(stBefore.migrations, job.id, Date.now(), placedSeenAt)
    if (out.movedBeforeHog.length || before.host !== victim) {
      out.balance = pickBalance(stBefore.balance)
      log(`  ${variant} ${repeat}: NOT MEASURED: with no hog, the share moved ${out.movedBeforeHog.map((m) => `${m.fromHost} → ${m.toHost} (${m.reason}, ${m.decidedAfterPlacementMs} ms after placement)`).join(', ') || `(now on ${String(before.host)})`}; last pass: ${JSON.stringify(out.balance)}`)
      return out
    }
    if (!(rateBeforeHog > 0)) throw new BenchError(`trigger run: the share made no progress on ${victim} before the hog`)
    hog = await startHog(victimCpu)
    const cpuAtHog = cpuSnapshot()
    out.hogAfterPlacementMs = hog.busyAt - placedSeenAt
    log(`  ${variant} ${repeat}: share on ${victim} (CPU ${victimCpu}) at ${Math.round(rateBeforeHog)} units/s; hog on CPU ${victimCpu} busy ${out.hogAfterPlacementMs} ms after placement`)

    const waitForMs = (variant === 'early' ? residencyMs : 0) + TRIGGER_WAIT_INTERVALS * INTERVAL_MS
    const deadline = hog.busyAt + waitForMs
    let balance: BalanceSummary | undefined
    let moved: Migration | undefined
    const passes: PassSeen[] = []
    let lastPassAt = 0
    let st = stBefore
    for (;;) {
      st = await c.client.status()
      // Only a move decided after the hog answers it (the pause is sent right after the decision).
      moved = st.migrations.find((m) => m.jobId === job.id && m.fromHost === victim && m.reason === 'imbalance' && m.at - m.stunMs >= hog!.busyAt)
      // The pass that decided the move is usually still the last one: keep it in the trace too.
      if (st.balance && st.balance.at >= hog.busyAt && st.balance.at !== lastPassAt) {
        lastPassAt = st.balance.at
        passes.push(pickBalance(st.balance, hog.busyAt)!)
      }
      if (moved) break
      balance = st.balance
      if (Date.now() > deadline) break
      await sleep(STATUS_POLL_MS)
    }
    const foreignCores = foreignCpu(cpuAtHog, cpuSnapshot())?.cores ?? null
    if ((await fetch()).state !== 'running') throw new BenchError('trigger run: the job ended while measured; it is too short')
    out.balance = pickBalance(balance)
    out.passes = passes
    out.foreignCores = foreignCores
    // A move decided between the check above and the hog's first busy instant: same as above.
    out.movedBeforeHog = preHogMoves(st.migrations, job.id, hog.busyAt, placedSeenAt)
    if (out.movedBeforeHog.length) {
      log(`    NOT MEASURED: the share moved just before the hog: ${JSON.stringify(out.movedBeforeHog)}`)
      return out
    }
    out.missed = !moved
    if (moved) {
      out.triggerMs = Math.round(moved.at - moved.stunMs - hog.busyAt)
      out.triggerIntervals = round(out.triggerMs / INTERVAL_MS, 2)
      out.migratedMs = moved.at - hog.busyAt
      out.toHost = moved.toHost
      out.stunMs = round(moved.stunMs, 2)
      out.migrationOk = moved.ok
      if (moved.ok) out.rateAfterMove = Math.round((await shareRate(fetch, running.shareId, mode.rateWindowMs)).rate)
      log(`    first imbalance migration ${victim} → ${moved.toHost} decided ${out.triggerMs} ms after the hog (${out.triggerIntervals} intervals), stun ${out.stunMs} ms${out.rateAfterMove !== null ? `, then ${out.rateAfterMove} units/s` : ''}${foreignNote(foreignCores)}`)
    } else {
      log(`    MISSED: no imbalance migration away from ${victim} within ${waitForMs} ms; last pass: ${JSON.stringify(out.balance)}${foreignNote(foreignCores)}`)
    }
    return out
  } finally {
    if (hog) await killNow(hog.child)
    saveLogs(logDir, `trigger-${variant}-${repeat}`, c)
    await c.stop()
  }
}

// ------------------------------------------------------------------ the run

/** The CPUs this process may run on (Linux); null when unknown. */
function allowedCpus(): string | null {
  try {
    return /^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]?.trim() ?? null
  } catch {
    return null
  }
}

const ratio = (a: number, b: number): number => round(a / b)

export function run(ctx: RunContext): Promise<Figures> {
  return withBackground(ctx, ctx.background, ['0', '1'], (bg) => measure(ctx, bg))
}

async function measure({ smoke, log }: BenchContext, bg?: Background): Promise<Figures> {
  const mode = smoke ? SMOKE : FULL
  // Fail before anything starts: pinning needs taskset, and the layout needs CPUs 0 and 1.
  try {
    tasksetPath()
  } catch (e) {
    throw new BenchError((e as Error).message)
  }
  const cpus = allowedCpus()
  if (cpus !== null && !/^0-\d+$|^0,1(,|$)/.test(cpus)) throw new BenchError(`this benchmark pins hosts to CPUs 0 and 1, but this process may run only on CPUs ${cpus}`)
  // Full runs keep every process's log for reading the figures; a smoke run only when asked to.
  const logDir = process.env.UNEVEN_LOG_DIR || (smoke ? undefined : join(tmpdir(), `shoal-bench-uneven-${new Date().toISOString().replace(/[:.]/g, '-')}`))
  if (logDir) mkdirSync(logDir, { recursive: true })

  const cpuStart = cpuSnapshot()
  const cal = await calibrate(mode, log, bg)
  const foreignCal = foreignCpu(cpuStart, cpuSnapshot())
  if (foreignCal && foreignCal.cores > FOREIGN_WARN_CORES) log(`  WARNING: processes this benchmark did not start kept ${foreignCal.cores} cores busy during calibration: r1 is too low`)
  const nats = await startNatsServer()
  const runs: MakespanRun[] = []
  const triggers: TriggerRun[] = []
  const solo: Solo[] = []
  try {
    for (let i = 1; i <= mode.repeats; i++) {
      for (const variant of ['balanced', 'static'] as const) {
        log(`makespan ${i}/${mode.repeats}: ${variant} (${variant === 'balanced' ? 'product defaults' : 'threshold 1, no splits'}), ${mode.units.toLocaleString('en-US')} units, hog on CPU ${HOG_CPU} at ${HOG_FRACTION * 100} % of the ideal`)
        const r = await makespanRun(nats.url, mode, cal, variant, i, logDir, log, bg)
        // Exactly once: every run must produce the checksum computed outside Shoal.
        if (r.checksum !== cal.localChecksum) {
          throw new BenchError(`${variant} run ${i}: cpu-burn over [0, ${mode.units}) returned checksum ${r.checksum}, expected ${cal.localChecksum} (computed outside Shoal): units were lost or counted twice`)
        }
        runs.push(r)
      }
    }
    // r1 again, after the makespan runs: the ideal uses the mean of both, and the drift between them
    // says whether the machine's speed held still while the runs were measured.
    log(`calibration again, after the makespan runs: each CPU alone, ${mode.calibrateMs} ms`)
    const after = await soloRates(mode.calibrateMs, bg)
    solo.push(cal.before, after)
    log(`  ${Math.round(after.cpu0)} and ${Math.round(after.cpu1)} units/s per core`)
    for (let i = 1; i <= mode.triggerRepeats; i++) {
      log(`hog trigger ${i}/${mode.triggerRepeats}: hosts a (CPU 0) and b (CPU 1), 1 slot each, one-share job, splits off`)
      triggers.push(await triggerRun(nats.url, mode, cal, 'steady', i, logDir, log))
    }
    if (mode.earlyTrigger) {
      log(`hog trigger, early: the hog ${EARLY_HOG_MS / 1000} s after placement (a share only placed: minResidencyMs does not guard it)`)
      triggers.push(await triggerRun(nats.url, mode, cal, 'early', 1, logDir, log))
    }
  } finally {
    await nats.stop()
  }
  const foreignOverall = foreignCpu(cpuStart, cpuSnapshot())
  if (foreignOverall && foreignOverall.cores > FOREIGN_WARN_CORES) log(`WARNING: processes this benchmark did not start kept ${foreignOverall.cores} cores busy on average during the run: the figures are not those of the machine the ideal assumes`)

  // Per whole core: with --background, each solo rate is scaled up by the part of its CPU the
  // background took meanwhile, and each run's ideal counts only what the background left it.
  const soloRatesAll = solo.flatMap(wholeCoreRates)
  const r1 = soloRatesAll.reduce((a, b) => a + b, 0) / soloRatesAll.length
  const r1Spread = (Math.max(...soloRatesAll) - Math.min(...soloRatesAll)) / r1
  if (r1Spread > 0.05) log(`WARNING: the solo rates spread over ${(r1Spread * 100).toFixed(1)} % of r1: the machine's speed changed during the run`)
  for (const r of runs) {
    const [u0, u1] = r.backgroundCores
    // Shoal can have at most what the background left of each CPU; after the hog, half of CPU 0's.
    const ideal = idealMakespanMs(mode.units, r1, r.hogAtMs, 1 - u0 + (1 - u1), (1 - u0) / 2 + (1 - u1))
    r.idealMs = Math.round(ideal)
    r.overIdeal = round(r.makespanMs / ideal)
  }
  const of = (v: Variant): MakespanRun[] => runs.filter((r) => r.variant === v)
  // Each balanced run and the static run right after it are measured minutes apart at most: their
  // ratio is the figure least moved by the machine's speed drifting (see r1SpreadFraction).
  const perPair = of('balanced').map((b) => {
    const st = of('static').find((x) => x.repeat === b.repeat)
    return st ? round(st.makespanMs / b.makespanMs) : null
  })
  const pairedOverSolo = round((cal.pairedRateCpu0 + cal.pairedRateCpu1) / (cal.before.cpu0 + cal.before.cpu1))
  if (pairedOverSolo < 0.9) log(`WARNING: with both CPUs busy each delivered only ${pairedOverSolo} × its solo rate during the checksum run: the 2 × r1 capacity the ideal assumes was not there then`)
  const balancedMs = median(of('balanced').map((r) => r.makespanMs))
  const staticMs = median(of('static').map((r) => r.makespanMs))
  const balancedOverIdeal = round(median(of('balanced').map((r) => r.overIdeal)))
  const staticOverIdeal = round(median(of('static').map((r) => r.overIdeal)))
  // A repeat whose share moved before the hog measured nothing (see TriggerRun.movedBeforeHog).
  const steady = triggers.filter((t) => t.variant === 'steady' && t.movedBeforeHog.length === 0)
  const movedBeforeHog = triggers.filter((t) => t.movedBeforeHog.length > 0).length
  const hits = steady.filter((t) => t.triggerMs !== null).map((t) => t.triggerMs!)
  const triggerMedian = hits.length ? median(hits) : null
  // Rule 5 (issue 9): within 2 intervals in every run, early or steady (minResidencyMs guards only
  // migrated shares, so a freshly placed one must move as soon as the hog shows).
  const measured = triggers.filter((t) => t.movedBeforeHog.length === 0)
  const allWithin2 = measured.length > 0 && measured.every((t) => t.triggerIntervals !== null && t.triggerIntervals <= 2)
  const early = triggers.filter((t) => t.variant === 'early' && t.movedBeforeHog.length === 0)

  return {
    setup: {
      processor: 'cpu-burn',
      workPerUnit: WORK,
      units: mode.units,
      makespanHosts: MAKESPAN_HOSTS.map((h) => `${h.id}: CPU ${h.cpus}, 1 slot`).join('; '),
      shares: 'default (auto = total slots = 3)',
      hog: `one busy-loop thread pinned to CPU ${HOG_CPU} from ${HOG_FRACTION * 100} % of the planned ideal makespan to the job's end`,
      balanced: 'product defaults (threshold 3, interval 1000 ms, splitMinUnits 1000)',
      static: `balancer.migrationThreshold 1, balancer.splitMinUnits ${NO_SPLITS} (the same shares placed once, never moved or split)`,
      repeats: mode.repeats,
      order: 'balanced, static, balanced, static … each on a fresh balancer and hosts, one nats-server',
      triggerHosts: TRIGGER_HOSTS.map((h) => `${h.id}: CPU ${h.cpus}, 1 slot`).join('; '),
      triggerConfig: `threshold 3 (default), intervalMs ${INTERVAL_MS}, splits off, minResidencyMs ${mode.residencyMs}${mode.residencyMs !== MIN_RESIDENCY_MS ? ` (smoke; the default is ${MIN_RESIDENCY_MS})` : ' (default)'}`,
      logDir: logDir ?? null,
    },
    foreignCpu: {
      overallCores: foreignOverall?.cores ?? null,
      overallFractionOfMachine: foreignOverall?.fraction ?? null,
      makespanRunsCores: runs.map((r) => r.foreignCores),
      triggerRunsCores: triggers.map((t) => t.foreignCores),
    },
    calibration: {
      soloUnitsPerSecBefore: [Math.round(cal.before.cpu0), Math.round(cal.before.cpu1)],
      soloBackgroundCores: solo.map((x) => [x.bgCpu0, x.bgCpu1]),
      soloUnitsPerSecAfter: solo[1] ? [Math.round(solo[1].cpu0), Math.round(solo[1].cpu1)] : null,
      r1UnitsPerSec: Math.round(r1),
      r1SpreadFraction: round(r1Spread),
      pairedUnitsPerSecCpu0: Math.round(cal.pairedRateCpu0),
      pairedUnitsPerSecCpu1: Math.round(cal.pairedRateCpu1),
      pairedOverSolo,
      foreignCores: foreignCal?.cores ?? null,
    },
    correctness: {
      localChecksum: cal.localChecksum,
      checksums: runs.map((r) => r.checksum),
      checksumsAgree: runs.every((r) => r.checksum === runs[0]!.checksum),
      matchesLocal: runs.every((r) => r.checksum === cal.localChecksum),
    },
    makespan: {
      balancedMs,
      staticMs,
      idealMs: median(runs.map((r) => r.idealMs)),
      balancedOverIdeal,
      staticOverIdeal,
      staticOverBalanced: ratio(staticMs, balancedMs),
      staticOverBalancedPerPair: perPair,
      runs,
    },
    hogTrigger: {
      intervalMs: INTERVAL_MS,
      triggerMsMedian: triggerMedian,
      triggerIntervalsMedian: triggerMedian === null ? null : round(triggerMedian / INTERVAL_MS, 2),
      triggerIntervalsMax: hits.length ? round(Math.max(...hits) / INTERVAL_MS, 2) : null,
      earlyTriggerIntervals: early.map((t) => t.triggerIntervals),
      missed: steady.filter((t) => t.missed).length,
      measuredSteadyRepeats: steady.length,
      repeatsMovedBeforeHog: movedBeforeHog,
      runs: triggers,
    },
    targets: {
      balancedOverIdeal: `<= 1.10: ${balancedOverIdeal <= 1.1 ? 'met' : 'MISSED'} (static beside it: ${staticOverIdeal})`,
      hogTriggerIntervals: `<= 2 in every repeat, early or steady: ${allWithin2 ? 'met' : 'MISSED'} (${measured.length} of ${triggers.length} repeats measured${movedBeforeHog ? `; in ${movedBeforeHog} repeat(s) the share moved with no hog, see runs[].movedBeforeHog` : ''})`,
    },
    notes: [
      `The ideal M* is fluid: ${CORES_BEFORE_HOG} cores × r1 until the hog is busy, ${CORES_AFTER_HOG} × r1 after (the hog takes half of CPU ${HOG_CPU}), with r1 the mean per-core rate of the processor's own step measured by a pinned child on each CPU alone, before and after the makespan runs (r1SpreadFraction: how far those 4 figures spread). It assumes those cores do nothing but the job; in fact nats-server, the balancer, the host processes' main threads and this benchmark (unpinned) run on the same 2 cores, and share start, checkpoints and the final merge are not in it. So a run should not beat it; a ratio below 1 means r1 was measured low (noise during calibration), or the hog got less than half of CPU ${HOG_CPU}.`,
      'pairedUnitsPerSecCpu0/1: each CPU\'s rate while both burn at once (the local checksum run); pairedOverSolo compares them with the solo rates measured just before. The ideal assumes two busy CPUs each deliver r1; a pairedOverSolo well below 1 means they did not then (the two virtual CPUs slowing each other, or the hypervisor giving the machine less than 2 cores, which /proc/stat does not always show as steal). staticOverBalancedPerPair compares runs measured back to back, so it moves least when the machine\'s speed drifts.',
      'With --background: the background\'s use of each CPU is measured from its processes\' CPU times (per solo calibration window, and per makespan run as makespan.runs[].backgroundCores). r1 is then per whole core (each solo rate ÷ (1 − what the background used of that CPU meanwhile)), and each run\'s ideal gives Shoal only what the background left: (1 − u0) + (1 − u1) cores of r1 before the hog, (1 − u0)/2 + (1 − u1) after. Without --background both are the plain figures.',
      `Hog timing: planned at ${HOG_FRACTION * 100} % of the planned ideal M* = units / (r1 × (${HOG_FRACTION}·${CORES_BEFORE_HOG} + ${1 - HOG_FRACTION}·${CORES_AFTER_HOG})), with r1 as measured before the runs; each run's ideal uses the instant its hog actually started spinning.`,
      'unitsByHost attributes each share\'s progress (live positions, polled every 250 ms) to the host it ran on at the poll; a share that moved between two polls has that interval\'s units counted on its new host.',
      'foreignCpu: CPU time of processes this benchmark did not start (machine busy time from /proc/stat minus this process tree\'s), as average busy cores over the whole run, each makespan run (submit → completion) and each hog-trigger window; anything well above 0 means someone else\'s work shared the 2 cores and the figures are not comparable with a quiet run.',
      'Checksums: cpu-burn seeds each unit by its index, so every run must return the checksum computed outside Shoal (two pinned children, one half of the range each); any other value fails the benchmark.',
      `Hog trigger: time from the hog's first busy instant to the start of the balancer's first \`imbalance\` migration away from the share's host (the migration record's time minus its stun). The steady repeats start the hog after the share has stayed minResidencyMs + one interval on its host, so the anti-thrash rule is not what is measured; the early repeat (full runs) starts it ${EARLY_HOG_MS / 1000} s after placement (once the share's rate is measured), as a user's hog may arrive: the share was only placed, so minResidencyMs (which guards migrated shares) must not hold it, and rule 5 of issue 9 counts it like the steady ones. A repeat with no migration within ${TRIGGER_WAIT_INTERVALS} intervals is reported as missed, with the balancer's last reasons; one where the share moved before the hog (nothing should move the only share of an idle pool) is reported under movedBeforeHog and measures no trigger time.`,
    ],
  }
}
