/**
 * Prometheus metrics: the registries' contents from plain data (no NATS), the HTTP endpoint, and a
 * real cluster scraped over HTTP after a job: every metric of the contract in grafana/METRICS.md
 * is exported by the balancer or a host, with the values the job implies. Where `promtool` is
 * installed, the scraped text must also pass `promtool check metrics`.
 */

import { execFile, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { BalancerMetrics, type BalancerState } from '../../lib/metrics/balancer-metrics.ts'
import { HostMetrics } from '../../lib/metrics/host-metrics.ts'
import { startMetricsServer } from '../../lib/metrics/server.ts'
import { useNatsServer } from '../support/nats.ts'
import { freePort } from '../support/prometheus.ts'
import { startCluster, type TestCluster } from '../support/cluster.ts'

const CONTRACT = fileURLToPath(new URL('../../grafana/METRICS.md', import.meta.url))

function state(over: Partial<BalancerState> = {}): BalancerState {
  return {
    hostsByState: { alive: 2, dead: 1 },
    hosts: [
      { hostId: 'a', slots: 4, freeSlots: 1, cores: 4, draining: false },
      { hostId: 'b', slots: 2, freeSlots: 2, cores: 2, draining: true },
    ],
    balance: { imbalance: 0.25, toleratedImbalance: Number.POSITIVE_INFINITY, meanLoad: 0.5, loads: { a: 0.75, b: 0.25 } },
    sharesByState: { running: 3, done: 7 },
    jobsByState: { running: 1 },
    jobProgress: [{ jobId: 'j1', unitsDone: 30, unitsTotal: 100 }],
    settings: { 'balancer.migrationThreshold': 3 },
    ...over,
  }
}

/** The value of one series in Prometheus text, or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  if (line === undefined) return undefined
  const v = line.slice(series.length + 1)
  return v === '+Inf' ? Number.POSITIVE_INFINITY : v === '-Inf' ? Number.NEGATIVE_INFINITY : Number(v)
}

/** Metric names of the contract table in grafana/METRICS.md. */
function contractNames(): string[] {
  const text = fs.readFileSync(CONTRACT, 'utf8')
  return [...new Set([...text.matchAll(/^\|\s*`(shoal_[a-z0-9_]+)`/gm)].map((m) => m[1]!))]
}

describe('metrics', function () {
  describe('balancer registry', () => {
    it('reads hosts, loads, imbalance, shares, jobs and settings from the balancer at scrape time', async () => {
      let st = state()
      const m = new BalancerMetrics(() => st)
      const text = await m.registry.metrics()
      expect(value(text, 'shoal_hosts{state="alive"}')).to.equal(2)
      expect(value(text, 'shoal_hosts{state="suspect"}')).to.equal(0)
      expect(value(text, 'shoal_host_free_slots{host="a"}')).to.equal(1)
      expect(value(text, 'shoal_host_draining{host="b"}')).to.equal(1)
      expect(value(text, 'shoal_host_normalised_load{host="a"}')).to.equal(0.75)
      expect(value(text, 'shoal_cluster_tolerated_imbalance')).to.equal(Number.POSITIVE_INFINITY)
      expect(value(text, 'shoal_shares{state="pending"}')).to.equal(0)
      expect(value(text, 'shoal_job_units_done{job_id="j1"}')).to.equal(30)
      expect(value(text, 'shoal_balancer_setting{key="balancer.migrationThreshold"}')).to.equal(3)
      // A job that finished disappears from the per-job gauges at the next scrape.
      st = state({ jobProgress: [] })
      // The state gauges are recomputed at most every 50 ms (once per scrape): wait that out.
      await new Promise((r) => setTimeout(r, 60))
      expect(value(await m.registry.metrics(), 'shoal_job_units_done{job_id="j1"}')).to.equal(undefined)
    })

    it('counts migrations by reason and result, with stun in seconds, from zero for every reason', async () => {
      const m = new BalancerMetrics(() => state())
      expect(value(await m.registry.metrics(), 'shoal_migrations_total{reason="drain",result="ok"}')).to.equal(0)
      m.migrations.inc({ reason: 'imbalance', result: 'ok' })
      m.stun.observe({ reason: 'imbalance' }, 0.012)
      const text = await m.registry.metrics()
      expect(value(text, 'shoal_migrations_total{reason="imbalance",result="ok"}')).to.equal(1)
      expect(value(text, 'shoal_migration_stun_seconds_bucket{le="0.025",reason="imbalance"}')).to.equal(1)
      expect(value(text, 'shoal_migration_stun_seconds_bucket{le="0.01",reason="imbalance"}')).to.equal(0)
    })
  })

  describe('host registry', () => {
    it('labels every series with the host and reads utilisation and CPU at scrape time', async () => {
      const m = new HostMetrics('h7', () => ({ slots: 4, sharesRunning: 3, cpuMachine: 0.9, cpuShoal: 0.6 }))
      m.unitsProcessed.inc(42)
      const text = await m.registry.metrics()
      expect(value(text, 'shoal_host_worker_utilisation_ratio{host="h7"}')).to.equal(0.75)
      expect(value(text, 'shoal_host_units_processed_total{host="h7"}')).to.equal(42)
      expect(value(text, 'shoal_host_cpu_machine_ratio{host="h7"}')).to.equal(0.9)
    })
  })

  describe('HTTP endpoint', () => {
    it('serves /metrics in the Prometheus text format, 404 elsewhere, and names a taken port', async () => {
      const m = new HostMetrics('h1', () => ({ slots: 1, sharesRunning: 0, cpuMachine: 0, cpuShoal: 0 }))
      const srv = await startMetricsServer(m.registry, 0, '127.0.0.1')
      try {
        const res = await fetch(srv.url)
        expect(res.status).to.equal(200)
        expect(res.headers.get('content-type')).to.match(/^text\/plain/)
        expect(await res.text()).to.include('shoal_host_shares_running{host="h1"} 0')
        expect((await fetch(srv.url.replace('/metrics', '/nope'))).status).to.equal(404)
        const err = await startMetricsServer(m.registry, srv.port, '127.0.0.1').catch((e: { code: string; message: string }) => e)
        expect(err).to.have.property('code', 'E_METRICS_PORT')
        expect((err as { message: string }).message).to.include('in use').and.include(String(srv.port))
      } finally {
        await srv.close()
      }
    })
  })

  describe('a real cluster, scraped over HTTP', function () {
    this.timeout(60_000)
    const nats = useNatsServer()
    let c: TestCluster
    after(async () => c?.stop())

    it('exports every metric of the contract, with the figures a finished job implies', async () => {
      const [bPort, hPort] = [await freePort(), await freePort()]
      c = await startCluster(nats.url, {
        hosts: [{ id: 'm1', args: ['--metrics-port', String(hPort)] }, { id: 'm2' }],
        balancerArgs: ['--metrics-port', String(bPort)],
        env: { SHOAL_SHARES_CHECKPOINT_MS: '100' },
      })
      const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 3e8], shares: 4 })
      expect(await job.result()).to.equal(16_252_325)
      const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      const b = await scrape(bPort)
      const h = await scrape(hPort)
      expect(value(b, 'shoal_jobs{state="completed"}')).to.equal(1)
      expect(value(b, 'shoal_hosts{state="alive"}')).to.equal(2)
      expect(value(b, 'shoal_checkpoints_total')).to.be.greaterThan(0)
      expect(value(b, 'shoal_job_duration_seconds_count{state="completed"}')).to.equal(1)
      expect(value(b, 'shoal_decide_duration_seconds_count{pass="kick"}')).to.be.greaterThan(0)
      expect(value(h, 'shoal_host_units_processed_total{host="m1"}')).to.be.greaterThan(0)
      expect(value(h, 'shoal_host_checkpoint_latency_seconds_count{host="m1"}')).to.be.greaterThan(0)
      const exported = new Set([...`${b}\n${h}`.matchAll(/^# TYPE (shoal_[a-z0-9_]+) /gm)].map((m) => m[1]!))
      const missing = contractNames().filter((n) => !exported.has(n))
      expect(missing, 'metrics of grafana/METRICS.md that nothing exports').to.deep.equal([])
      const promtool = spawnSync('promtool', ['--version'])
      if (promtool.error) return // not installed: `apt-get install prometheus` brings promtool
      for (const [who, text] of [['balancer', b], ['host', h]] as const) {
        const out = await new Promise<{ code: number; err: string }>((resolve) => {
          const p = execFile('promtool', ['check', 'metrics'], (e, _o, err) => resolve({ code: e ? 1 : 0, err }))
          p.stdin!.end(text)
        })
        expect(out.code, `promtool check metrics (${who}): ${out.err}`).to.equal(0)
      }
    })
  })
})
