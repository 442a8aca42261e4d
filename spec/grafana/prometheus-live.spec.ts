/**
 * The dashboards against real data: a real Prometheus scrapes a real cluster while the cluster
 * finishes jobs, drains, fails a migration, fails over a lost host, rejects malformed messages,
 * takes a live setting change and splits a running share (the scenario of live-run.ts, which also
 * makes the pictures of docs/DASHBOARDS.md). Then every panel query and every annotation of
 * grafana/dashboards/*.json runs against Prometheus's HTTP API the way Grafana would run it
 * (panel-queries.ts: its variables filled in, range panels and annotations as range queries, stat
 * panels as instant queries), and the test fails naming each "dashboard / panel / query" that came
 * back empty.
 *
 * Skipped, saying what to install, where Prometheus is missing. scripts/install.sh installs it, so
 * `.ci/run` runs this test. Must never use a Prometheus or nats-server it did not start, and must
 * leave none running.
 */

import { expect } from 'chai'
import { useNatsServer } from '../support/nats.ts'
import { findPrometheus, PROMETHEUS_INSTALL } from '../support/prometheus.ts'
import { dashboards, type Dashboard } from './dashboards.ts'
import { startLiveRun, type LiveRun } from './live-run.ts'
import { check } from './panel-queries.ts'

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
  let live: LiveRun | undefined

  before(async function () {
    this.timeout(60_000)
    live = await startLiveRun(nats.url)
  })

  after(async () => {
    await live?.stop()
  })

  it('answers every panel and annotation query with data after jobs, drains, a failed migration, a failover, rejects, a setting change and a split', async () => {
    const { host } = await live!.play()
    const { empty, problems, evaluated } = await check(live!.prom, [...dashboards.entries()], { fromMs: live!.startedMs, toMs: Date.now() }, { host })
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
    const { empty, problems } = await check(live!.prom, [['made-up.json', board]], { fromMs: live!.startedMs, toMs: Date.now() }, {})
    expect(problems).to.deep.equal([])
    expect(empty).to.deep.equal([
      'Made up (made-up.json) / Nothing / shoal_no_such_metric{host="a"}',
      'Made up (made-up.json) / annotation "Never" / up > 1',
    ])
  })
})
