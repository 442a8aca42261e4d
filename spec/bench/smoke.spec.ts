/**
 * Smoke test of the benchmark harness: runs each benchmark in smoke mode the way a user does
 * (`bench/run.ts NAME --smoke --json` as a child process) and checks that it exits 0 and that its
 * JSON figures exist and are sane numbers. Exact job results are checked inside the benchmarks,
 * which exit 1 on a wrong one; the dispatcher's usage errors are checked too.
 *
 * Must never assert a performance target (smoke figures on a shared 2-core machine mean nothing)
 * and must never leave a process running: each benchmark stops what it starts, and a child that
 * outlives its test is killed.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { existsSync } from 'node:fs'
import { expect } from 'chai'

const RUN = fileURLToPath(new URL('../../bench/run.ts', import.meta.url))

interface Outcome {
  code: number | null
  stdout: string
  stderr: string
}

const children = new Set<ChildProcess>()

function bench(args: string[], timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', RUN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGINT')
      reject(new Error(`bench ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr.slice(-3000)}`))
    }, timeoutMs)
    child.once('error', reject)
    child.once('close', (code) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, stdout, stderr })
    })
  })
}

/** The JSON object the dispatcher prints last on stdout. */
function lastJson(out: Outcome): Record<string, unknown> {
  const lines = out.stdout.trim().split('\n')
  return JSON.parse(lines.at(-1)!) as Record<string, unknown>
}

function expectPositive(v: unknown, what: string): void {
  expect(v, what).to.be.a('number')
  expect(Number.isFinite(v as number), `${what} is finite`).to.equal(true)
  expect(v as number, what).to.be.greaterThan(0)
}

interface Stats {
  n: number
  p50: number
  p99: number
  max: number
  mean: number
}

function expectStats(s: unknown, what: string, n?: number): void {
  const st = s as Stats
  expect(st, what).to.be.an('object')
  if (n !== undefined) expect(st.n, `${what}.n`).to.equal(n)
  for (const k of ['p50', 'p99', 'max', 'mean'] as const) expectPositive(st[k], `${what}.${k}`)
  expect(st.p99, `${what}.p99 >= p50`).to.be.at.least(st.p50)
  expect(st.max, `${what}.max >= p99`).to.be.at.least(st.p99)
}

describe('benchmark harness (smoke runs)', function () {
  this.timeout(120_000)

  afterEach(() => {
    for (const c of children) c.kill('SIGKILL')
    children.clear()
  })

  it('lists the benchmarks with --help and refuses an unknown one with exit code 2', async () => {
    const help = await bench(['--help'], 30_000)
    expect(help.code).to.equal(0)
    expect(help.stdout).to.include('failover').and.include('migration').and.include('simulator').and.include('tiny').and.include('uneven')
    const unknown = await bench(['no-such-bench'], 30_000)
    expect(unknown.code).to.equal(2)
    expect(unknown.stderr).to.include("unknown benchmark 'no-such-bench'")
  })

  it('runs the failover benchmark in smoke mode with exact results and sane figures', async () => {
    const out = await bench(['failover', '--smoke', '--json'], 100_000)
    expect(out.code, out.stderr.slice(-3000)).to.equal(0)
    const report = lastJson(out)
    expect(report.ok).to.equal(true)
    expect(report.benchmark).to.equal('failover')
    const f = report.figures as Record<string, unknown>
    expect((f.job as { resultsExact: boolean }).resultsExact).to.equal(true)
    for (const k of ['m0Ms', 'm1Ms', 'm2Ms', 'm1OverM0', 'm2OverM0', 'm1OverM2', 'detectionMs', 'killToAllRunningElsewhereMs', 'unitsPerCheckpointIntervalMedian']) {
      expectPositive(f[k], k)
    }
    // A kill is noticed no sooner than a host is declared dead, and the shares run again after that.
    expect(f.detectionMs as number).to.be.within(500, 10_000)
    expect(f.killToAllRunningElsewhereMs as number).to.be.at.least(f.detectionMs as number)
    expect(f.unitsRedoneOverCheckpointIntervalMedian as number).to.be.at.least(0)
    expect(f.runs).to.be.an('array').with.length(1)
    expect(out.stdout).to.include('published defaults, NOT measured')
  })

  it('runs the migration benchmark in smoke mode with exact results and sane stun figures', async () => {
    const out = await bench(['migration', '--smoke', '--json'], 100_000)
    expect(out.code, out.stderr.slice(-3000)).to.equal(0)
    const report = lastJson(out)
    expect(report.ok).to.equal(true)
    const sizes = (report.figures as { sizes: Record<string, Record<string, unknown>> }).sizes
    for (const label of ['1KiB', '64KiB']) {
      const s = sizes[label]!
      expect(s.supported, label).to.equal(true)
      expect(s.resultsExact, label).to.equal(true)
      expect(s.migrationsOk, label).to.equal(5)
      expectStats(s.stunMs, `${label}.stunMs`, 5)
      expectStats(s.pauseMs, `${label}.pauseMs`, 5)
      expectStats(s.rawNatsRoundTripMs, `${label}.rawNatsRoundTripMs`)
      expectPositive(s.stunOverRawP50, `${label}.stunOverRawP50`)
      expect((s.pauseMs as Stats).p50, `${label}: pause is part of stun`).to.be.at.most((s.stunMs as Stats).p50)
    }
    const big = sizes['1MiB']!
    if (big.supported) {
      expect(big.resultsExact).to.equal(true)
      expectStats(big.stunMs, '1MiB.stunMs', 5)
    } else {
      expect(big.result).to.match(/^1 MiB: not supported yet \(.+\)$/)
    }
  })

  it('runs the CLI start-up benchmark in smoke mode: shoal --help against node -e 0, as ratios', async function () {
    if (!existsSync(new URL('../../dist/lib/cli/main.js', import.meta.url))) this.skip() // no build (npm ci builds it; a bare checkout may not have one)
    const out = await bench(['cli-startup', '--smoke', '--json'], 60_000)
    expect(out.code, out.stderr.slice(-3000)).to.equal(0)
    const f = lastJson(out).figures as Record<string, number>
    for (const k of ['nodeMs', 'helpMs', 'submitHelpMs', 'helpOverNode', 'submitHelpOverNode']) expect(f[k], k).to.be.a('number').and.above(0)
    expect(f.helpOverNode).to.be.closeTo(f.helpMs! / f.nodeMs!, 0.05)
  })

  it('runs the simulator in smoke mode: every scenario completes, no schedule beats the ideal, no thrash on a noisy even pool, decide is timed', async () => {
    const out = await bench(['simulator', '--smoke', '--json'], 100_000)
    expect(out.code, out.stderr.slice(-3000)).to.equal(0)
    const f = lastJson(out).figures as { scenarios: Array<Record<string, Record<string, unknown>>>; decideOnFixedViews: Record<string, unknown>; targets: Record<string, unknown> }
    expect(f.scenarios.map((sc) => sc.scenario)).to.deep.equal(['tiny', 'tiny-noise-0.2', 'even-noise-0.2', 'timing-50x2000'] as unknown[])
    // Identical hosts with 0.2 core of jittery stray load and a free slot each: a balancing move is always possible, and never pays.
    expect(f.targets.thrash).to.deep.equal([{ scenario: 'even-noise-0.2', imbalanceMigrations: 0 }])
    for (const sc of f.scenarios) {
      for (const run of [sc.policy!, sc.static!]) {
        expect(run.completed, `${String(sc.scenario)} completed`).to.equal(true)
        // The ideal is a fluid lower bound: a ratio below 1 would mean the model lost work.
        expect(run.makespanRatio as number, `${String(sc.scenario)} makespan / ideal`).to.be.at.least(1)
      }
      // Static placement never migrates or splits; the policy's splits create shares.
      expect(sc.static!.migrations).to.equal(0)
      expect(sc.static!.splits).to.equal(0)
      expect(sc.policy!.sharesCreated as number).to.equal((sc.initialShares as unknown as number) + (sc.policy!.splits as number))
      expectStats(sc.policy!.decideMs, `${String(sc.scenario)}.decideMs`)
    }
    for (const state of ['submit', 'queue', 'running']) expectStats(f.decideOnFixedViews[state], `decideOnFixedViews.${state}`)
    expect(f.targets.decideMsP99).to.be.a('number')
  })

  it('runs the chaos benchmark in smoke mode with a given seed: one fault of each kind, exact jobs, no process exited, takeover and NATS figures', async () => {
    const out = await bench(['chaos', '--smoke', '--json', '--seed', '3'], 110_000)
    expect(out.code, out.stderr.slice(-3000)).to.equal(0)
    const report = lastJson(out)
    expect(report.ok).to.equal(true)
    const f = report.figures as {
      seed: number
      setup: { natsNodes: number; replicas: number }
      faults: Record<string, number>
      jobs: { exact: number; total: number }
      makespan: { worstOverUndisturbed: number }
      processesExitedOnTheirOwn: number
      hostsFalselyDeclaredDead: number
      takeover: { target: string; clean: Record<string, unknown>; underChaos: { n: number } }
      natsLeaderKill: Record<string, unknown>
    }
    expect(f.seed).to.equal(3)
    expect(out.stdout).to.include('--seed 3')
    // The benchmark exits 1 on a wrong result or an exited process; the figures say so too.
    expect(f.jobs.total).to.be.greaterThan(0)
    expect(f.jobs.exact).to.equal(f.jobs.total)
    expect(f.processesExitedOnTheirOwn).to.equal(0)
    // A false "host dead" is reported, not failed: it must at least be counted.
    expect(Number.isInteger(f.hostsFalselyDeclaredDead) && f.hostsFalselyDeclaredDead >= 0).to.equal(true)
    for (const k of ['host-kill', 'host-stop', 'leader-kill']) expect(f.faults[k], k).to.be.at.least(1)
    expectPositive(f.makespan.worstOverUndisturbed, 'makespan.worstOverUndisturbed')
    expect(f.takeover.clean.n).to.equal(2)
    for (const k of ['leaderElectedAfterMedianMs', 'pendingWorkPlacedAfterMedianMs']) expectPositive(f.takeover.clean[k], `takeover.clean.${k}`)
    // A takeover waits for the lease to lapse (balancer.leaseMs, 1 s by default).
    for (const ms of f.takeover.clean.leaseTakenAfterMs as number[]) expect(ms).to.be.at.least(500)
    expect(f.takeover.underChaos.n).to.be.at.least(1)
    expect(f.takeover.target).to.match(/: (met|MISSED)$/)
    if (f.setup.natsNodes === 3) {
      expect(f.setup.replicas).to.equal(3)
      expect(f.faults['nats-kill']! + f.faults['nats-term']!).to.be.at.least(1)
      expect(f.natsLeaderKill.n).to.equal(1)
      for (const k of ['jsElectionMs', 'kvWritesFailMs']) expectPositive((f.natsLeaderKill[k] as number[])[0], `natsLeaderKill.${k}`)
      expect((f.natsLeaderKill.longestProgressGapMs as number[])[0]).to.be.at.least(0)
      expect(f.natsLeaderKill.target).to.match(/: (met|MISSED)$/)
    } else expect(out.stdout).to.include('FALLBACK')
    const bad = await bench(['chaos', '--seed', 'x'], 30_000)
    expect(bad.code).to.equal(2)
    expect(bad.stderr).to.include('--seed must be a non-negative integer')
  })

  it('runs the scale benchmark in smoke mode: synthetic hosts against a real balancer, every window measured, jobs exact, recovery timed', async () => {
    const out = await bench(['scale', '--smoke', '--json', '--hosts', '40'], 110_000)
    expect(out.code, out.stderr.slice(-3000)).to.equal(0)
    const report = lastJson(out)
    expect(report.ok).to.equal(true)
    const f = report.figures as {
      setup: { hosts: number }
      headline: Record<string, unknown> & { balancerCpuPerHeartbeatUs: Record<string, number | null> }
      phases: Record<string, Record<string, unknown>>
      history: { finishedSharesInStore: number; jobs?: { wrong: number } }
      statusJson: Record<string, unknown>
      recovery: Record<string, unknown>
    }
    expect(f.setup.hosts).to.equal(40)
    for (const name of ['empty', 'throughput', 'finished', 'running', 'after']) {
      const p = f.phases[name]!
      expect(p, name).to.be.an('object')
      expectPositive(p.heartbeats, `${name}.heartbeats`)
      expect(p.balancerCpuS as number, `${name}.balancerCpuS`).to.be.at.least(0)
      // Transitions are counted from the balancer's metrics: integers, never missing.
      for (const to of ['suspect', 'dead']) {
        const n = (p.transitions as Record<string, unknown>)[to]
        expect(Number.isInteger(n) && (n as number) >= 0, `${name}.transitions.${to} = ${String(n)}`).to.equal(true)
      }
    }
    for (const name of ['empty', 'finished', 'running']) expect((f.phases[name]!.status as { ms: Stats }).ms.n, `${name}: status sampled`).to.be.greaterThan(0)
    // A one-tick window can measure 0 s of balancer CPU; the ratio is then 0, infinite or null, never a wrong type.
    expect(f.headline.balancerCpuPerHeartbeatUs.empty).to.be.a('number')
    const tp = f.phases.throughput!
    expectPositive(tp.sharesDone, 'throughput.sharesDone')
    expectPositive(tp.sharesPerSec, 'throughput.sharesPerSec')
    expectPositive(tp.kvWritesPerShare, 'throughput.kvWritesPerShare')
    const jobs = tp.jobs as { completed: number; exact: number; wrong: number }
    expect(jobs.completed).to.be.greaterThan(0)
    expect(jobs.exact).to.equal(jobs.completed)
    expect(jobs.wrong).to.equal(0)
    expectStats((tp.reports as { done: { ackMs: unknown } }).done.ackMs, 'throughput.reports.done.ackMs')
    expectStats((f.phases.running!.reports as { checkpoint: { ackMs: unknown } }).checkpoint.ackMs, 'running.reports.checkpoint.ackMs')
    expect(f.history.finishedSharesInStore).to.be.greaterThan(0)
    // Built only when the throughput window left fewer finished shares than wanted (8,000 in smoke).
    if (f.history.jobs) expect(f.history.jobs.wrong).to.equal(0)
    expect(f.statusJson.ok, JSON.stringify(f.statusJson)).to.equal(true)
    expect(f.statusJson.hostsWithIdAndState).to.equal(40)
    expect(f.recovery.allRecovered, JSON.stringify(f.recovery)).to.equal(true)
    for (const k of ['killToElectedMs', 'killToServingMs', 'killToStatusAsLeaderMs']) expectPositive(f.recovery[k], `recovery.${k}`)
    expect(f.recovery.killToStatusAsLeaderMs as number).to.be.at.least(f.recovery.killToElectedMs as number)
    expect(f.headline.heartbeatTarget).to.match(/: (met|MISSED)$|^not measured$/)
    const bad = await bench(['failover', '--hosts', '10'], 30_000)
    expect(bad.code).to.equal(2)
    expect(bad.stderr).to.include('--hosts is for scale, not failover')
  })

  it('runs the tiny-shares benchmark in smoke mode: real and synthetic hosts, every job exact, each level measured against the raw KV put rate', async () => {
    const out = await bench(['tiny', '--smoke', '--json'], 60_000)
    expect(out.code, out.stderr.slice(-3000)).to.equal(0)
    const report = lastJson(out)
    expect(report.ok).to.equal(true)
    type LevelFigures = Record<string, unknown> & { jobsInFlight: number; sharesDone: number; jobsDone: number; jobs: { submitted: number; exact: number }; cpuPerShareMs: Record<string, number> }
    const f = report.figures as {
      setup: { jobsInFlight: number[]; sharesPerJob: number }
      headline: Record<string, Record<string, unknown>>
    } & Record<string, { kvPutBaseline: { putsPerSecUsed: number }; levels: LevelFigures[] }>
    for (const part of ['real', 'synthetic']) {
      const p = f[part]!
      expectPositive(p.kvPutBaseline.putsPerSecUsed, `${part}.kvPutBaseline`)
      expect(p.levels.map((l) => l.jobsInFlight), part).to.deep.equal(f.setup.jobsInFlight)
      for (const l of p.levels) {
        const at = `${part}, ${l.jobsInFlight} jobs in flight`
        // The benchmark fails on a wrong or failed job; here every job submitted also ended exact.
        expect(l.jobs.exact, `${at}: jobs exact`).to.equal(l.jobs.submitted)
        expectPositive(l.sharesDone, `${at}: sharesDone`)
        // Shares are counted by whole jobs.
        expect(l.sharesDone, `${at}: sharesDone`).to.equal(l.jobsDone * f.setup.sharesPerJob)
        for (const k of ['sharesPerSec', 'kvWritesPerShare', 'kvWritesPerSec', 'balancerCpuPerShareMs', 'sharesPerSecOverKvPutRate', 'kvWritesPerSecOverKvPutRate']) expectPositive(l[k], `${at}: ${k}`)
        expectPositive(l.cpuPerShareMs.all, `${at}: cpuPerShareMs.all`)
        expect(l.cpuPerShareMs.all, `${at}: all processes' CPU includes the balancer's`).to.be.at.least(l.cpuPerShareMs.balancer!)
        expectStats(l.submitToResultMs, `${at}: submitToResultMs`, l.jobsDone)
      }
      expect(f.headline[part]!.target, part).to.match(/: (met|MISSED)$/)
    }
    for (const l of f.synthetic!.levels) expectPositive((l.hosts as { doneReportsAcked: number }).doneReportsAcked, 'synthetic done reports acked')
  })

  it('refuses a --background that is not a number of cores from 0 to 1, and on a benchmark that takes none', async () => {
    for (const v of ['2', 'x', '-0.1']) {
      const bad = await bench(['uneven', '--smoke', `--background=${v}`], 30_000)
      expect(bad.code, v).to.equal(2)
      expect(bad.stderr, v).to.include('--background must be a number of cores per CPU from 0 to 1')
    }
    const chaos = await bench(['chaos', '--smoke', '--background', '0.2'], 30_000)
    expect(chaos.code).to.equal(2)
    expect(chaos.stderr).to.include('--background is for uneven, failover and migration, not chaos')
  })

  it('runs the uneven benchmark in smoke mode with 0.15 core of stray load per CPU: checksums exact, and the hog\'s victim moves off onto the idle host all the same', async function () {
    if (process.platform !== 'linux') this.skip() // pinning needs taskset (util-linux)
    const out = await bench(['uneven', '--smoke', '--json', '--background', '0.15'], 120_000)
    expect(out.code, out.stderr.slice(-3000)).to.equal(0)
    const report = lastJson(out)
    expect(report.ok).to.equal(true)
    const f = report.figures as {
      correctness: Record<string, unknown>
      calibration: Record<string, unknown>
      makespan: Record<string, unknown> & { runs: Array<Record<string, unknown>> }
      hogTrigger: { runs: Array<Record<string, unknown>> }
      background: { askedCores: number; usedCores: Record<string, number> }
      foreignCpu: { overallCores: number | null }
    }
    expect(f.background.askedCores).to.equal(0.15)
    const foreign = f.foreignCpu.overallCores
    // Work this test did not start (a CPU hog and a benchmark beside the suite: 0.043 core once)
    // starves the stray-load generator: then this run cannot show the rule either.
    const starved = Object.values(f.background.usedCores).some((u) => u < 0.05)
    if (starved && foreign !== null && foreign > 0.3) {
      console.log(`      (skipped: processes this test did not start kept ${foreign} cores busy and starved the stray load: ${JSON.stringify(f.background.usedCores)})`)
      this.skip()
    }
    for (const cpu of ['0', '1']) expect(f.background.usedCores[cpu], `background used on CPU ${cpu}`).to.be.within(0.05, 0.3)
    // The benchmark exits 1 on a wrong checksum; the flags say it compared them.
    expect(f.correctness.checksumsAgree).to.equal(true)
    expect(f.correctness.matchesLocal).to.equal(true)
    for (const k of ['r1UnitsPerSec', 'pairedUnitsPerSecCpu0', 'pairedUnitsPerSecCpu1']) expectPositive(f.calibration[k], `calibration.${k}`)
    for (const k of ['balancedMs', 'staticMs', 'idealMs', 'balancedOverIdeal', 'staticOverIdeal', 'staticOverBalanced']) expectPositive(f.makespan[k], `makespan.${k}`)
    // The ideal is a lower bound measured on the same machine: far below it means the figures are wrong.
    expect(f.makespan.balancedOverIdeal as number).to.be.at.least(0.9)
    expect(f.makespan.staticOverIdeal as number).to.be.at.least(0.9)
    expect(f.makespan.runs.map((r) => r.variant)).to.deep.equal(['balanced', 'static'])
    for (const r of f.makespan.runs) {
      // Static placement never splits or migrates; every unit is on some host.
      if (r.variant === 'static') expect(r.splits, 'static splits').to.equal(0)
      const byHost = Object.values(r.unitsByHost as Record<string, number>).reduce((a, b) => a + b, 0)
      expect(byHost, `${String(r.variant)} units by host sum`).to.be.closeTo(1, 0.01)
    }
    expect(f.hogTrigger.runs).to.have.length(1)
    const t = f.hogTrigger.runs[0]!
    // Someone else's work on these CPUs (a CPU hog beside the suite, say) is a hog of its own: the
    // share may rightly move before ours starts, or have no idle host to go to. Then this run
    // cannot show the rule.
    if ((t.missed || (t.movedBeforeHog as unknown[]).length > 0) && foreign !== null && foreign > 0.3) {
      console.log(`      (skipped: processes this test did not start kept ${foreign} cores busy, so the pool was not idle apart from our hog)`)
      this.skip()
    }
    expect(t.movedBeforeHog, 'nothing moves the only share of a pool with no hog').to.deep.equal([])
    // Issue 9: with 0.15 core of added stray load on the idle host's CPU, the hogged share still moves there.
    expect(t.missed, `no migration; the balancer's reasons: ${JSON.stringify((t.balance as { reasons?: unknown } | undefined)?.reasons)}`).to.equal(false)
    expect(t.triggerMs as number).to.be.at.least(0)
  })
})
