/**
 * Keeps grafana/ usable without manual steps: dashboards are checked by structure, against the
 * provisioned data source uid and against the metric contract in grafana/METRICS.md; the
 * provisioning files and the Prometheus example are parsed, and promtool checks the example and
 * every query when Prometheus is installed.
 *
 * Must never start Grafana or Prometheus, nor write into grafana/: promtool only reads files (its
 * rule file of queries goes to a temporary folder).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { expect } from 'chai'
import YAML from 'yaml'
import { allPanels, dashboard, dashboards, files, queries, read, root, variableQuery, type DataSourceRef } from './dashboards.ts'

const grafana = path.join(root, 'grafana')

/** The uid every dashboard must name: provisioning creates the data source under it. */
const DS_UID = 'shoal-prometheus'
/** Where the provider reads dashboards and where docs/OPERATIONS.md mounts grafana/dashboards. */
const DASHBOARDS_PATH = '/var/lib/grafana/dashboards'
const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => fs.existsSync(p))
const NO_PROMTOOL = 'promtool not found: run `apt-get install prometheus` (it ships promtool) to check this'

/** The contract: `| \`name\` | type | labels | meaning |` rows of grafana/METRICS.md. */
const contract = new Map(
  read('grafana/METRICS.md').split('\n')
    .map((l) => /^\| `(shoal_[a-z0-9_]+)` \| (counter|gauge|histogram) \|/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1] ?? '', m[2] ?? '']),
)

/** The contract metric a series name belongs to, or undefined: histograms also have _bucket, _sum, _count. */
function contractMetric(series: string): string | undefined {
  if (contract.has(series)) return series
  const base = series.replace(/_(bucket|sum|count)$/, '')
  return contract.get(base) === 'histogram' ? base : undefined
}
const metricNames = (expr: string): string[] => expr.match(/shoal_[a-z0-9_]+/g) ?? []

describe('grafana/ dashboards', () => {
  it('reads a contract of balancer and host metrics from grafana/METRICS.md', () => {
    expect(contract.size).to.be.greaterThan(30)
    expect(contract.get('shoal_migrations_total')).to.equal('counter')
    expect(contract.get('shoal_migration_stun_seconds')).to.equal('histogram')
    expect(contract.get('shoal_host_worker_utilisation_ratio')).to.equal('gauge')
  })

  it('has a cluster and a host dashboard', () => {
    expect(files).to.include.members(['shoal-cluster.json', 'shoal-host.json'])
  })

  for (const f of files) {
    describe(f, () => {
      const d = dashboard(f)

      it('has a uid, a title and a schemaVersion', () => {
        expect(d.uid, 'uid').to.be.a('string').and.not.equal('')
        expect(d.title, 'title').to.be.a('string').and.not.equal('')
        expect(d.schemaVersion, 'schemaVersion').to.be.a('number').and.be.greaterThan(30)
      })

      it('gives every panel its own id and a place on the grid', () => {
        const panels = allPanels(d)
        expect(panels.length).to.be.greaterThan(0)
        const ids = panels.map((p) => p.id)
        expect(ids.filter((id) => typeof id !== 'number'), 'panels without a numeric id').to.deep.equal([])
        expect(new Set(ids).size, 'distinct panel ids').to.equal(ids.length)
        for (const p of panels) {
          const g = p.gridPos
          expect(g, `gridPos of "${p.title}"`).to.be.an('object')
          for (const k of ['x', 'y', 'w', 'h'] as const) expect(g?.[k], `gridPos.${k} of "${p.title}"`).to.be.a('number')
          expect((g?.x ?? 0) + (g?.w ?? 0), `"${p.title}" fits the 24-column grid`).to.be.at.most(24)
        }
      })

      it('gives every panel but a row at least one query with an expression', () => {
        for (const p of allPanels(d).filter((x) => x.type !== 'row')) {
          expect(p.targets?.length ?? 0, `queries of "${p.title}"`).to.be.greaterThan(0)
          for (const t of p.targets ?? []) expect(t.expr?.trim(), `expr of "${p.title}" ${t.refId}`).to.be.a('string').and.not.equal('')
        }
      })

      it('names the provisioned data source by its uid everywhere', () => {
        const refs: Array<[string, DataSourceRef | undefined]> = [
          ...allPanels(d).filter((p) => p.type !== 'row').flatMap((p): Array<[string, DataSourceRef | undefined]> => [
            [`panel "${p.title}"`, p.datasource],
            ...(p.targets ?? []).map((t): [string, DataSourceRef | undefined] => [`panel "${p.title}" ${t.refId}`, t.datasource]),
          ]),
          ...(d.annotations?.list ?? []).filter((a) => a.expr !== undefined).map((a): [string, DataSourceRef | undefined] => [`annotation "${a.name}"`, a.datasource]),
          ...(d.templating?.list ?? []).filter((v) => v.type === 'query').map((v): [string, DataSourceRef | undefined] => [`variable ${v.name}`, v.datasource]),
        ]
        for (const [where, ds] of refs) expect(ds, where).to.deep.equal({ type: 'prometheus', uid: DS_UID })
        // An import placeholder would make provisioning ask for a data source by hand.
        expect(JSON.stringify(d)).not.to.match(/\$\{DS_/)
      })

      it('queries only metrics of the contract', () => {
        const unknown = queries(d).flatMap((q) => metricNames(q.expr).filter((n) => contractMetric(n) === undefined).map((n) => `${n} in ${q.where}`))
        expect(unknown).to.deep.equal([])
      })
    })
  }

  it('gives each dashboard its own uid', () => {
    const uids = [...dashboards.values()].map((d) => d.uid)
    expect(new Set(uids).size).to.equal(uids.length)
  })

  it('uses every metric of the contract on some dashboard', () => {
    const used = new Set([...dashboards.values()].flatMap((d) => queries(d).flatMap((q) => metricNames(q.expr).map(contractMetric))))
    expect([...contract.keys()].filter((m) => !used.has(m))).to.deep.equal([])
  })

  it('lets the host dashboard pick a host from label_values(shoal_host_slots, host)', () => {
    const host = dashboard('shoal-host.json').templating?.list?.find((v) => v.name === 'host')
    expect(host, 'variable host').to.be.an('object')
    expect(variableQuery(host ?? {}).replace(/\s/g, '')).to.equal('label_values(shoal_host_slots,host)')
    const panels = allPanels(dashboard('shoal-host.json')).filter((p) => p.type !== 'row')
    expect(panels.filter((p) => !(p.targets ?? []).some((t) => t.expr?.includes('$host'))).map((p) => p.title), 'panels not filtered by $host').to.deep.equal([])
  })

  it('marks migrations and splits as annotations on the cluster dashboard', () => {
    const exprs = (dashboard('shoal-cluster.json').annotations?.list ?? []).map((a) => a.expr ?? '')
    expect(exprs.some((e) => e.includes('shoal_migrations_total')), 'a migrations annotation').to.equal(true)
    expect(exprs.some((e) => e.includes('shoal_splits_total')), 'a splits annotation').to.equal(true)
  })

  it('writes every query in PromQL that promtool parses', function () {
    if (!PROMTOOL) {
      console.log(`      skipped: ${NO_PROMTOOL}`)
      this.skip()
    }
    // Grafana fills its variables in before Prometheus sees a query; stand-ins make them parseable.
    const fill = (e: string): string => e
      .replace(/\$__(rate_interval|interval|range)/g, '1m')
      .replace(/\$\{?[A-Za-z_]\w*\}?/g, 'x')
    const all = [...dashboards.entries()].flatMap(([f, d]) => queries(d).filter((q) => q.promql).map((q) => ({ ...q, where: `${f} ${q.where}` })))
    // promtool has no "parse this query" command; recording rules are parsed in full by `check rules`.
    const rules = { groups: [{ name: 'dashboards', rules: all.map((q, i) => ({ record: `shoal:dashboard_query_${i}`, expr: fill(q.expr) })) }] }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-promql-'))
    try {
      const file = path.join(dir, 'queries.yml')
      fs.writeFileSync(file, YAML.stringify(rules))
      try {
        execFileSync(PROMTOOL ?? 'promtool', ['check', 'rules', file], { encoding: 'utf8', stdio: 'pipe' })
      } catch (err) {
        const out = String((err as { stdout?: string }).stdout ?? '') + String((err as { stderr?: string }).stderr ?? '')
        // Name the panel, not the rule number promtool reports.
        const where = [...out.matchAll(/shoal:dashboard_query_(\d+)/g)].map((m) => all[Number(m[1])]?.where)
        expect.fail(`promtool rejected ${where.join(', ') || 'a query'}:\n${out}`)
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('grafana/provisioning', () => {
  it('provisions a Prometheus data source at http://localhost:9090 under the uid the dashboards use', () => {
    const doc = YAML.parse(read('grafana/provisioning/datasources/prometheus.yaml')) as { apiVersion?: number, datasources?: Array<Record<string, unknown>> }
    expect(doc.apiVersion).to.equal(1)
    expect(doc.datasources).to.have.length(1)
    expect(doc.datasources?.[0]).to.include({ uid: DS_UID, type: 'prometheus', url: 'http://localhost:9090', access: 'proxy' })
  })

  it('loads the dashboards from the folder that docs/OPERATIONS.md mounts grafana/dashboards on', () => {
    const doc = YAML.parse(read('grafana/provisioning/dashboards/shoal.yaml')) as { apiVersion?: number, providers?: Array<{ type?: string, options?: { path?: string } }> }
    expect(doc.apiVersion).to.equal(1)
    expect(doc.providers).to.have.length(1)
    expect(doc.providers?.[0]?.type).to.equal('file')
    expect(doc.providers?.[0]?.options?.path).to.equal(DASHBOARDS_PATH)
    const ops = read('docs/OPERATIONS.md')
    expect(ops).to.include(`grafana/dashboards:${DASHBOARDS_PATH}`)
    expect(ops).to.include('grafana/provisioning:/etc/grafana/provisioning')
  })
})

describe('grafana/prometheus.yml', () => {
  it('scrapes the balancer on port 9464 and hosts on their own ports every 5 s', () => {
    const doc = YAML.parse(read('grafana/prometheus.yml')) as { global?: { scrape_interval?: string }, scrape_configs?: Array<{ job_name?: string, static_configs?: Array<{ targets?: string[] }> }> }
    expect(doc.global?.scrape_interval).to.equal('5s')
    const targets = (job: string): string[] => doc.scrape_configs?.find((c) => c.job_name === job)?.static_configs?.flatMap((s) => s.targets ?? []) ?? []
    expect(targets('shoal-balancer')).to.deep.equal(['localhost:9464'])
    expect(targets('shoal-hosts')).to.include.members(['localhost:9465', 'localhost:9466', 'localhost:9467'])
  })

  it('passes promtool check config', function () {
    if (!PROMTOOL) {
      console.log(`      skipped: ${NO_PROMTOOL}`)
      this.skip()
    }
    const out = execFileSync(PROMTOOL ?? 'promtool', ['check', 'config', path.join(grafana, 'prometheus.yml')], { encoding: 'utf8', stdio: 'pipe' })
    expect(out).to.include('SUCCESS')
  })
})
