/**
 * `npm run render-dashboards` (node --import tsx scripts/dashboards/render.ts): the pictures of
 * docs/DASHBOARDS.md, from a real run. Starts its own nats-server, a real Shoal cluster and its
 * own Prometheus (spec/grafana/live-run.ts, the scenario prometheus-live.spec.ts checks), plays
 * the scenario, holds the cluster a little longer so the pictures show the state after the last
 * event, runs every panel's queries the way Grafana would (spec/grafana/panel-queries.ts), lays
 * out one page per dashboard (page.ts) and screenshots it with the system Chromium into
 * `<out>/<dashboard uid>.png`.
 *
 * The composition root and nothing else: what a panel shows is panel-view.ts's, how it is laid
 * out page.ts's. Must never leave anything it started running (children are SIGKILLed when this
 * process exits, also on Ctrl-C), never use a server it did not start, and never write outside
 * `--out` (and `--html` when given) but its temporary folder. A panel that comes out empty is
 * reported and fails the run: it is a real problem, not something to draw around.
 */

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { constants, tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { findNatsServer, startNatsServer, type RunningNatsServer } from '../../lib/nats-server/launcher.ts'
import { dashboards, root } from '../../spec/grafana/dashboards.ts'
import { HOSTS, startLiveRun, type LiveRun } from '../../spec/grafana/live-run.ts'
import { runDashboard, SCRAPE_MS } from '../../spec/grafana/panel-queries.ts'
import { findPrometheus, PROMETHEUS_INSTALL } from '../../spec/support/prometheus.ts'
import { CHROMIUM_INSTALL, findChromium, screenshot } from './chromium.ts'
import { dashboardView } from './panel-view.ts'
import { dashboardPage } from './page.ts'

const DEFAULTS = { out: 'docs/dashboards', widthPx: 1280, paceS: 4, holdS: 15 } as const

const USAGE = `Usage: node --import tsx scripts/dashboards/render.ts [options]
       npm run render-dashboards -- [options]

Renders every dashboard of grafana/dashboards/ from a real run (own nats-server, a Shoal cluster
of a balancer and three hosts, own Prometheus) into <out>/<dashboard uid>.png with headless
Chromium. Takes about 70 s on two cores.

Options:
  --out <dir>      where the PNGs go (default ${DEFAULTS.out})
  --html <dir>     also keep the HTML pages there (self-contained; open them in a browser)
  --width <px>     page width (default ${DEFAULTS.widthPx})
  --pace <s>       seconds between the scenario's steps, so its events stand apart (default ${DEFAULTS.paceS})
  --hold <s>       seconds the cluster keeps running after the scenario (default ${DEFAULTS.holdS})
  -h, --help       this text

Needs nats-server, prometheus and chromium (apt-get install nats-server prometheus chromium).
Exits 1 when a panel comes out empty or a query fails: the pictures are written all the same.`

const t0 = Date.now()
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const say = (msg: string): void => {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`)
}

function options(): { out: string, html?: string, widthPx: number, paceS: number, holdS: number } | undefined {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' }, html: { type: 'string' }, width: { type: 'string' }, pace: { type: 'string' }, hold: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) return undefined
  const int = (name: string, v: string | undefined, d: number, min: number): number => {
    if (v === undefined) return d
    const n = Number(v)
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer of at least ${min} (got ${v})`)
    return n
  }
  return {
    out: resolve(values.out ?? join(root, DEFAULTS.out)),
    ...(values.html !== undefined ? { html: resolve(values.html) } : {}),
    widthPx: int('width', values.width, DEFAULTS.widthPx, 800),
    paceS: int('pace', values.pace, DEFAULTS.paceS, 0),
    holdS: int('hold', values.hold, DEFAULTS.holdS, 0),
  }
}

/** The binaries a run needs, or the line that says how to install the missing ones. */
function preflight(): { chromium: string } | string {
  const missing: string[] = []
  const chromium = findChromium()
  if (chromium === undefined) missing.push(`chromium not found (set CHROMIUM_BIN or run \`${CHROMIUM_INSTALL}\`)`)
  if (findPrometheus() === undefined) missing.push(`prometheus not found (run \`${PROMETHEUS_INSTALL}\`)`)
  try {
    findNatsServer()
  } catch (e) {
    missing.push((e as Error).message)
  }
  return chromium !== undefined && missing.length === 0 ? { chromium } : missing.join('\n')
}

function assets(): { uplotJs: string, uplotCss: string, drawJs: string } {
  // From node_modules, not the network: the page must draw on a machine without internet.
  const require = createRequire(import.meta.url)
  const dist = join(require.resolve('uplot'), '..')
  return {
    uplotJs: readFileSync(join(dist, 'uPlot.iife.min.js'), 'utf8'),
    uplotCss: readFileSync(join(dist, 'uPlot.min.css'), 'utf8'),
    drawJs: readFileSync(fileURLToPath(new URL('./draw.js', import.meta.url)), 'utf8'),
  }
}

async function main(): Promise<number> {
  let opts: ReturnType<typeof options>
  try {
    opts = options()
  } catch (e) {
    console.error(`render-dashboards: ${(e as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (opts === undefined) {
    console.log(USAGE)
    return 0
  }
  const ready = preflight()
  if (typeof ready === 'string') {
    console.error(`render-dashboards: cannot render:\n${ready}`)
    return 1
  }
  const pages = assets()

  let nats: RunningNatsServer | undefined
  let live: LiveRun | undefined
  const work = mkdtempSync(join(tmpdir(), 'shoal-dashboards-'))
  // Ctrl-C exits without running `finally`: the pages' folder goes on `exit` as well.
  const removeWork = (): void => rmSync(work, { recursive: true, force: true })
  process.once('exit', removeWork)
  try {
    say('starting nats-server')
    nats = await startNatsServer()
    say(`starting a balancer, hosts and Prometheus on ${nats.url}`)
    live = await startLiveRun(nats.url)
    // The pictures start with the scenario, not with the processes' start-up (Prometheus scrapes
    // first ~5 s after its start): two scrape intervals before it, so the first rises have a sample below.
    const fromMs = Date.now() - 2 * SCRAPE_MS
    let steps = 0
    const played = await live.play(async (what) => {
      // Fixed pauses on purpose: they space the events out on the time axis, they wait for nothing.
      if (steps++ > 0) await sleep(opts.paceS * 1000)
      say(`scenario: ${what}`)
    })
    say(`holding the cluster ${opts.holdS} s so the pictures show what follows the last event`)
    await sleep(opts.holdS * 1000)
    const range = { fromMs, toMs: Date.now() }

    const rendered: Array<{ file: string, page: ReturnType<typeof dashboardPage>, uid: string }> = []
    const empty: string[] = []
    const problems: string[] = []
    const note = `Drawn by scripts/dashboards/render.ts from Prometheus data of a real run on ${new Date(range.toMs).toISOString().slice(0, 10)} (a balancer and hosts ${HOSTS.join(', ')}; host ${played.victim} was killed). A likeness of Grafana, not Grafana.`
    for (const [file, d] of dashboards) {
      say(`querying ${file}`)
      const run = await runDashboard(live.prom, file, d, range, { host: played.host })
      problems.push(...run.problems)
      const view = dashboardView(d, run, range.fromMs, range.toMs)
      for (const p of view.panels) if (p.empty) empty.push(`${d.title} (${file}) / ${p.title}`)
      rendered.push({ file, uid: view.uid, page: dashboardPage(view, pages, opts.widthPx, note) })
    }
    say('stopping the cluster, Prometheus and nats-server')
    await live.stop()
    await nats.stop()

    mkdirSync(opts.out, { recursive: true })
    if (opts.html !== undefined) mkdirSync(opts.html, { recursive: true })
    for (const r of rendered) {
      const html = join(opts.html ?? work, `${r.uid}.html`)
      writeFileSync(html, r.page.html)
      const png = join(opts.out, `${r.uid}.png`)
      say(`screenshot of ${r.file} (${r.page.width} × ${r.page.height}) → ${relative(process.cwd(), png)}`)
      await screenshot(ready.chromium, html, png, { width: r.page.width, height: r.page.height })
    }

    if (problems.length) console.error(`render-dashboards: ${problems.length} queries could not be run:\n  ${problems.join('\n  ')}`)
    if (empty.length) console.error(`render-dashboards: ${empty.length} panels came out empty ("No data" in the picture):\n  ${empty.join('\n  ')}`)
    say(`done: ${rendered.length} pictures in ${relative(process.cwd(), opts.out) || '.'}`)
    return problems.length || empty.length ? 1 : 0
  } finally {
    await live?.stop().catch(() => undefined)
    await nats?.stop().catch(() => undefined)
    removeWork()
  }
}

// Ctrl-C or a kill: exit through 'exit', whose handlers SIGKILL every child this run started.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    console.error(`render-dashboards: ${sig}, stopping everything it started`)
    process.exit(128 + constants.signals[sig])
  })
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(`render-dashboards: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
  process.exit(1)
})
