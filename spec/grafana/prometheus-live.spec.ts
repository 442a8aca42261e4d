/**
 * The dashboards against real data: a real Prometheus scrapes a real cluster (a balancer and three
 * hosts serving metrics) while the cluster finishes jobs, drains, fails a migration, fails over a
 * lost host, rejects malformed messages, takes a live setting change and splits a running share.
 * Then every panel query and every annotation of grafana/dashboards/*.json runs against
 * Prometheus's HTTP API the way Grafana would run it (its variables filled in, range panels and
 * annotations as range queries, stat panels as instant queries), and the test fails naming each
 * "dashboard / panel / query" that came back empty.
 *
 * Skipped, saying what to install, where Prometheus is missing. scripts/install.sh installs it, so
 * `.ci/run` runs this test. Must never use a Prometheus or nats-server it did not start, and must
 * leave none running.
 */

import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { Packr } from 'msgpackr'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { replyAs, useNatsServer } from '../support/nats.ts'
import { killAndWait, TestCluster } from '../support/cluster.ts'
import { findPrometheus, freePort, PROMETHEUS_INSTALL, startPrometheus, type PromResult, type RunningPrometheus } from '../support/prometheus.ts'
import { allPanels, dashboards, variableQuery, type Dashboard } from './dashboards.ts'

/** Prometheus's scrape interval, which Grafana's data source must know as well (its `timeInterval`). */
const SCRAPE_MS = 1000
/** Grafana's default maxDataPoints is the panel's width in pixels; any value keeps short ranges at the minimum interval. */
const MAX_DATA_POINTS = 1000
const HOSTS = ['a', 'b', 'c'] as const

/** "15s", "1m", "500ms" → milliseconds (Grafana's ">15s" means the same as a minimum). */
function durationMs(d: string): number {
  const m = /^>?(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(d.trim())
  if (!m) throw new Error(`not a Grafana duration: "${d}"`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd']
  return Number(m[1]) * unit
}
const promDuration = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`)

/** The dashboard time range and the template variables chosen for it. */
interface Frame { fromMs: number, toMs: number, vars: Record<string, string> }

/**
 * Fills in Grafana's variables as Grafana does for a Prometheus data source whose scrape interval
 * (`timeInterval`) is SCRAPE_MS: `$__interval` = max(panel min interval or the scrape interval,
 * range ÷ max data points); `$__rate_interval` = max(`$__interval` + scrape interval, 4 × scrape
 * interval); `$__range` = the range in whole seconds; template variables from `frame.vars`.
 * Returns the names it does not know in `unknown`.
 */
function interpolate(expr: string, frame: Frame, minIntervalMs: number): { expr: string, intervalMs: number, unknown: string[] } {
  const rangeMs = frame.toMs - frame.fromMs
  const intervalMs = Math.max(minIntervalMs, Math.ceil(rangeMs / MAX_DATA_POINTS))
  const rangeS = Math.round(rangeMs / 1000)
  const values: Record<string, string> = {
    __interval: promDuration(intervalMs),
    __interval_ms: String(intervalMs),
    __rate_interval: promDuration(Math.max(intervalMs + SCRAPE_MS, 4 * SCRAPE_MS)),
    __range: `${rangeS}s`,
    __range_s: String(rangeS),
    __range_ms: String(rangeMs),
    ...frame.vars,
  }
  const unknown: string[] = []
  const out = expr.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a?: string, b?: string, c?: string) => {
    const name = a ?? b ?? c ?? ''
    if (name in values) return values[name]!
    unknown.push(name)
    return whole
  })
  return { expr: out, intervalMs, unknown }
}

/** Whether a query result holds at least one value that is a number (NaN is what Grafana shows as no data). */
function hasData(r: PromResult): boolean {
  if (r.resultType === 'scalar' || r.resultType === 'string') return (r.result as [number, string])[1] !== 'NaN'
  return (r.result as Array<{ value?: [number, string], values?: Array<[number, string]> }>)
    .some((s) => (s.values ?? (s.value ? [s.value] : [])).some(([, v]) => v !== 'NaN'))
}

/**
 * Runs every panel query and annotation of `boards` against `prom` over `frame`, as Grafana would:
 * template variables first (label_values(metric, label) from Prometheus's label values over the
 * range; `prefer` names the value to pick, else the first in order), then each query — instant
 * targets at the end of the range; range targets over the range with step `$__interval`;
 * annotations over the range with their own step. The range is aligned to the step as Grafana
 * does, except that its end is rounded up rather than down, so that the last step holds the last
 * scrapes (Grafana shows those at its next refresh).
 *
 * Returns one line per empty query ("dashboard / panel / query as sent") and one per query that
 * could not be run at all (an unknown variable, a query Prometheus refused).
 */
async function check(prom: RunningPrometheus, boards: Array<[string, Dashboard]>, frame: Omit<Frame, 'vars'>, prefer: Record<string, string>): Promise<{ empty: string[], problems: string[], evaluated: number }> {
  const empty: string[] = []
  const problems: string[] = []
  let evaluated = 0
  const fromS = frame.fromMs / 1000
  const toS = frame.toMs / 1000
  for (const [file, d] of boards) {
    const name = `${d.title} (${file})`
    const vars: Record<string, string> = {}
    for (const v of d.templating?.list ?? []) {
      const q = variableQuery(v)
      const m = /^label_values\((.+),\s*(\w+)\s*\)$/.exec(q.trim())
      if (!m || v.name === undefined) {
        problems.push(`${name} / variable ${v.name} / ${q}: only label_values(metric, label) can be filled in here`)
        continue
      }
      const values = (await prom.labelValues(m[2]!, m[1]!.trim(), fromS, toS)).sort()
      const want = prefer[v.name]
      if (want !== undefined && !values.includes(want)) problems.push(`${name} / variable ${v.name} / ${q}: offers [${values.join(', ')}], not ${want}`)
      else if (values.length === 0) problems.push(`${name} / variable ${v.name} / ${q}: no values`)
      else vars[v.name] = want ?? values[0]!
    }
    const run = async (where: string, expr: string, minIntervalMs: number, kind: 'instant' | 'range', stepMs?: number): Promise<void> => {
      const f = interpolate(expr, { ...frame, vars }, minIntervalMs)
      const label = `${name} / ${where} / ${f.expr}`
      if (f.unknown.length) {
        problems.push(`${label}: unknown variable ${f.unknown.map((u) => `$${u}`).join(', ')}`)
        return
      }
      evaluated++
      try {
        let r: PromResult
        if (kind === 'instant') r = await prom.query(f.expr, toS)
        else {
          const step = (stepMs ?? f.intervalMs) / 1000
          r = await prom.queryRange(f.expr, Math.floor(fromS / step) * step, Math.ceil(toS / step) * step, String(step))
        }
        if (!hasData(r)) empty.push(label)
      } catch (e) {
        problems.push(`${label}: ${(e as Error).message}`)
      }
    }
    for (const p of allPanels(d)) {
      const minMs = p.interval ? durationMs(p.interval) : SCRAPE_MS
      for (const t of p.targets ?? []) {
        const where = `${p.title}${(p.targets?.length ?? 0) > 1 ? ` (${t.refId})` : ''}`
        // A target may ask for both (Grafana then shows both): each must have data.
        if (t.range ?? !t.instant) await run(where, t.expr ?? '', minMs, 'range')
        if (t.instant) await run(where, t.expr ?? '', minMs, 'instant')
      }
    }
    for (const a of d.annotations?.list ?? []) {
      if (a.expr === undefined) continue
      // Grafana's Prometheus annotations are range queries stepped by the annotation's step (default 60s).
      const stepMs = durationMs(a.step ?? '60s')
      await run(`annotation "${a.name}"`, a.expr, SCRAPE_MS, 'range', stepMs)
    }
  }
  return { empty, problems, evaluated }
}

describe('the Grafana dashboards on a real Prometheus scraping a real cluster', function () {
  this.timeout(120_000)
  const bin = findPrometheus()
  before(function () {
    if (bin === undefined) {
      // scripts/install.sh installs it, so CI runs this test; here it is skipped rather than failed.
      console.log(`      skipped: prometheus not found: ${PROMETHEUS_INSTALL}`)
      this.skip()
    }
  })
  const nats = useNatsServer()
  let prom: RunningPrometheus | undefined
  let c: TestCluster | undefined
  let raw: NatsConnection | undefined
  const ports: Record<string, number> = {}
  let startedMs = 0

  before(async function () {
    this.timeout(60_000)
    startedMs = Date.now()
    for (const k of ['balancer', ...HOSTS]) ports[k] = await freePort()
    c = new TestCluster(nats.url, {
      hosts: HOSTS.map((id) => ({ id, args: ['--slots', '1', '--metrics-port', String(ports[id])] })),
      balancerArgs: ['--metrics-port', String(ports.balancer)],
      env: {
        SHOAL_SHARES_CHECKPOINT_MS: '150',
        // Threshold 1: no balancing moves, so the shares stay where the test puts them.
        SHOAL_BALANCER_MIGRATION_THRESHOLD: '1',
        // Dynamic splits off until a live setting change turns them on (step 6 of the test).
        SHOAL_BALANCER_SPLIT_MIN_UNITS: '1000000000000',
      },
    })
    // Prometheus scrapes first about 5 s after its start: the cluster starts meanwhile.
    const started = await Promise.allSettled([
      startPrometheus({
        jobs: { 'shoal-balancer': [`127.0.0.1:${ports.balancer}`], 'shoal-hosts': HOSTS.map((h) => `127.0.0.1:${ports[h]}`) },
        scrapeIntervalS: SCRAPE_MS / 1000,
      }).then((p) => {
        prom = p
      }),
      c.start(),
    ])
    for (const s of started) if (s.status === 'rejected') throw s.reason
  })

  after(async () => {
    await raw?.close()
    await c?.stop()
    await prom?.stop()
  })

  /** Polls `cond` every 50 ms; on timeout fails with `what`, the scrape targets and the balancer's log. */
  async function until(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await cond())) {
      if (Date.now() > deadline) {
        const targets = await prom!.targets().catch(() => [])
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n--- scrape targets:\n${targets.map((t) => `${t.job} ${t.instance} ${t.health} ${t.lastError}`).join('\n')}\n--- balancer log tail:\n${c!.log('balancer').slice(-3000)}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  /** The value of the first sample of an instant query now, or undefined. */
  async function value(expr: string): Promise<number | undefined> {
    const r = await prom!.query(expr)
    const first = (r.result as Array<{ value?: [number, string] }>)[0]
    return first?.value ? Number(first.value[1]) : undefined
  }

  it('answers every panel and annotation query with data after jobs, drains, a failed migration, a failover, rejects, a setting change and a split', async () => {
    const cl = c!
    const p = prom!
    const subjects = new Subjects(cl.cluster)

    // 1. Two finished jobs, the second after Prometheus has seen the first: a finished job creates
    //    its job-duration series at 1, and rate() sees only rises of a series it already has.
    const small = { processor: 'count-primes', range: [0, 2_000_000] as [number, number], shares: 1 }
    expect(await (await cl.client.submit<number>(small)).result()).to.equal(148_933)
    // Every target scraped once before any other event: the counters that start at zero are seen at zero.
    await until(async () => (await p.targets()).filter((t) => t.health === 'up').length === 1 + HOSTS.length, 20_000, 'Prometheus to scrape the balancer and every host')
    await until(async () => (await value('shoal_job_duration_seconds_count{state="completed"}')) === 1, 10_000, 'Prometheus to scrape the first job duration')
    expect(await (await cl.client.submit<number>(small)).result()).to.equal(148_933)

    // 2. Malformed messages: a heartbeat the balancer cannot decode, a command no host knows.
    raw = await connect({ servers: nats.url })
    const pack = new Packr({ useRecords: false })
    raw.publish(subjects.heartbeat('intruder'), new Uint8Array([0xc1, 0xff, 0x00, 0x13]))
    for (const h of HOSTS) await raw.request(subjects.hostCommand(h), pack.pack({ v: 1, t: 'teleport' }), replyAs(subjects, 'balancer'))

    // 3. A long job, one share (splits are off): it runs until the cluster stops, so "Job progress" has a job.
    const long = await cl.client.submit<number>({ processor: 'count-primes', range: [0, 1e11], shares: 1 })
    await until(async () => ((await long.fetch(true)).shares?.[0]?.unitsDone ?? 0) > 0, 20_000, 'the long job running')
    const shareId = (await long.fetch(true)).shares![0]!.shareId
    const hostOfShare = async (): Promise<string> => {
      const s = (await long.fetch(true)).shares!.find((x) => x.shareId === shareId)
      return s?.state === 'running' && s.host !== null ? s.host : ''
    }
    const drains = async (): Promise<number> => (await cl.client.status()).migrations.filter((m) => m.reason === 'drain' && m.ok).length

    // 4. Two drains of the share's host, the second after Prometheus has seen the first's stun
    //    (a stun series, too, appears at its first observation: quantiles need a second one).
    for (const n of [1, 2]) {
      let from = ''
      await until(async () => (from = await hostOfShare()) !== '', 10_000, 'the long share running on a host')
      await cl.client.drain(from)
      await until(async () => (await drains()) >= n, 10_000, `drain migration ${n}, off ${from}`)
      await cl.client.drain(from, false)
      if (n === 1) await until(async () => ((await value('shoal_migration_stun_seconds_count{reason="drain"}')) ?? 0) >= 1, 10_000, 'Prometheus to scrape the first drain\'s stun')
    }

    // 5. A failed migration and a failover: the share's host is stopped (SIGSTOP), so it can
    //    neither answer the pause of a manual migration (which fails at the balancer's pause timeout)
    //    nor heartbeat (it is declared dead and its share fails over). Then it is killed.
    let victim = ''
    await until(async () => (victim = await hostOfShare()) !== '', 10_000, 'the long share running on a host')
    const target = HOSTS.find((h) => h !== victim)!
    const stopped = cl.hosts.get(victim)!
    stopped.kill('SIGSTOP')
    const refused = await cl.client.migrate(shareId, target).then(() => undefined, (e: Error) => e)
    expect(refused, `a migration off the stopped host ${victim}`).to.be.instanceOf(Error)
    await until(async () => (await cl.client.status()).failovers.some((f) => f.hostId === victim), 10_000, `a failover off ${victim}`)
    await killAndWait(stopped, 'SIGKILL')
    expect((await cl.client.status()).migrations.some((m) => m.reason === 'manual' && !m.ok), 'a failed manual migration').to.equal(true)

    // 6. A live setting change: splits on. The host left idle by the failover takes a tail.
    await cl.client.setSetting('balancer.splitMinUnits', '1000')
    await until(async () => ((await cl.client.status()).balance?.splitsTotal ?? 0) >= 1, 15_000, 'a dynamic split onto the idle host')

    // The host dashboard's $host: the first live host that runs a share now (checkpoint latency, units).
    const alive = (await cl.aliveHosts()).map((h) => h.hostId).sort()
    let host: string | undefined
    await until(async () => {
      const busy = new Set((await long.fetch(true)).shares!.filter((s) => s.state === 'running').map((s) => s.host))
      host = alive.find((h) => busy.has(h))
      return host !== undefined
    }, 10_000, 'a live host running a share')

    // Two scrapes of every live target after the last event, so each rise has a sample on both sides.
    const lastEventMs = Date.now()
    await until(async () => (await p.targets()).filter((t) => t.instance !== `127.0.0.1:${ports[victim]}`)
      .every((t) => t.health === 'up' && t.lastScrapeMs > lastEventMs + SCRAPE_MS), 10_000, 'two scrapes after the last event')

    const { empty, problems, evaluated } = await check(p, [...dashboards.entries()], { fromMs: startedMs, toMs: Date.now() }, { host: host! })
    expect(problems, 'queries that could not be run').to.deep.equal([])
    expect(evaluated, 'queries run').to.be.greaterThan(50)
    if (empty.length) expect.fail(`${empty.length} of ${evaluated} dashboard queries returned no data ($host=${host}):\n${empty.join('\n')}`)
  })

  it('names the dashboard, panel and query of a panel that returns nothing', async () => {
    const board: Dashboard = {
      title: 'Made up',
      panels: [
        { id: 1, type: 'timeseries', title: 'Scrapes', targets: [{ refId: 'A', expr: 'up' }] },
        { id: 2, type: 'stat', title: 'Nothing', targets: [{ refId: 'A', expr: 'shoal_no_such_metric{host="$host"}', instant: true, range: false }] },
      ],
      annotations: { list: [{ name: 'Never', expr: 'up > 1', step: '10s' }] },
      templating: { list: [{ name: 'host', type: 'query', query: 'label_values(shoal_host_slots, host)' }] },
    }
    const { empty, problems } = await check(prom!, [['made-up.json', board]], { fromMs: startedMs, toMs: Date.now() }, {})
    expect(problems).to.deep.equal([])
    expect(empty).to.deep.equal([
      'Made up (made-up.json) / Nothing / shoal_no_such_metric{host="a"}',
      'Made up (made-up.json) / annotation "Never" / up > 1',
    ])
  })
})
