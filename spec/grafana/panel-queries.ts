/**
 * Runs a dashboard's queries against a real Prometheus the way Grafana would: template variables
 * first (label_values(metric, label)), then every panel target (Grafana's `$__interval`,
 * `$__rate_interval` and `$__range` filled in; range targets as range queries stepped by
 * `$__interval`, instant targets at the end of the range) and every annotation (a range query
 * stepped by its own step). `runDashboard` hands back each result, for the pictures of
 * docs/DASHBOARDS.md; `check` reduces them to the queries that came back empty, for
 * prometheus-live.spec.ts.
 *
 * Must never start or stop anything, nor decide what counts as a failure: callers do.
 */

import type { PromResult, RunningPrometheus } from '../support/prometheus.ts'
import { allPanels, variableQuery, type Annotation, type Dashboard, type Panel, type Target } from './dashboards.ts'

/** Prometheus's scrape interval, which Grafana's data source must know as well (its `timeInterval`). */
export const SCRAPE_MS = 1000
/** Grafana's default maxDataPoints is the panel's width in pixels; any value keeps short ranges at the minimum interval. */
export const MAX_DATA_POINTS = 1000

/** "15s", "1m", "500ms" → milliseconds (Grafana's ">15s" means the same as a minimum). */
export function durationMs(d: string): number {
  const m = /^>?(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(d.trim())
  if (!m) throw new Error(`not a Grafana duration: "${d}"`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd']
  return Number(m[1]) * unit
}
const promDuration = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`)

/** The dashboard time range and the template variables chosen for it. */
export interface Frame { fromMs: number, toMs: number, vars: Record<string, string> }

/**
 * Fills in Grafana's variables as Grafana does for a Prometheus data source whose scrape interval
 * (`timeInterval`) is SCRAPE_MS: `$__interval` = max(panel min interval or the scrape interval,
 * range ÷ max data points); `$__rate_interval` = max(`$__interval` + scrape interval, 4 × scrape
 * interval); `$__range` = the range in whole seconds; template variables from `frame.vars`.
 * Returns the names it does not know in `unknown`.
 */
export function interpolate(expr: string, frame: Frame, minIntervalMs: number): { expr: string, intervalMs: number, unknown: string[] } {
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
export function hasData(r: PromResult): boolean {
  if (r.resultType === 'scalar' || r.resultType === 'string') return (r.result as [number, string])[1] !== 'NaN'
  return (r.result as Array<{ value?: [number, string], values?: Array<[number, string]> }>)
    .some((s) => (s.values ?? (s.value ? [s.value] : [])).some(([, v]) => v !== 'NaN'))
}

/** One query as Grafana would send it, and what Prometheus answered. */
export interface QueryRun {
  /** "Dashboard (file) / panel (refId) / expression as sent", for messages. */
  label: string
  kind: 'instant' | 'range'
  /** The expression as sent, variables filled in. */
  expr: string
  /** The range queried (aligned to the step) and the step, in seconds; for an instant query start = end. */
  startS: number
  endS: number
  stepS: number
  /** Prometheus's answer; undefined when the query could not be run (see `error`). */
  result?: PromResult
  error?: string
  panel?: Panel
  target?: Target
  annotation?: Annotation
}

/** What `runDashboard` found: the variables it chose, every query run, and what could not be run. */
export interface DashboardRun { vars: Record<string, string>, runs: QueryRun[], problems: string[] }

/**
 * Runs every panel query and annotation of `d` against `prom` over `range`, as Grafana would:
 * template variables first (label_values(metric, label) from Prometheus's label values over the
 * range; `prefer` names the value to pick, else the first in order), then each query — instant
 * targets at the end of the range; range targets over the range with step `$__interval`;
 * annotations over the range with their own step. The range is aligned to the step as Grafana
 * does, except that its end is rounded up rather than down, so that the last step holds the last
 * scrapes (Grafana shows those at its next refresh).
 *
 * A query that cannot be run (an unknown variable, a query Prometheus refused) is a `problems`
 * line and a run with `error`.
 */
export async function runDashboard(prom: RunningPrometheus, file: string, d: Dashboard, range: Omit<Frame, 'vars'>, prefer: Record<string, string> = {}): Promise<DashboardRun> {
  const name = `${d.title} (${file})`
  const problems: string[] = []
  const runs: QueryRun[] = []
  const fromS = range.fromMs / 1000
  const toS = range.toMs / 1000
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
  const run = async (where: string, expr: string, minIntervalMs: number, kind: 'instant' | 'range', about: Pick<QueryRun, 'panel' | 'target' | 'annotation'>, stepMs?: number): Promise<void> => {
    const f = interpolate(expr, { ...range, vars }, minIntervalMs)
    const stepS = (stepMs ?? f.intervalMs) / 1000
    const q: QueryRun = {
      label: `${name} / ${where} / ${f.expr}`,
      kind,
      expr: f.expr,
      startS: kind === 'instant' ? toS : Math.floor(fromS / stepS) * stepS,
      endS: kind === 'instant' ? toS : Math.ceil(toS / stepS) * stepS,
      stepS,
      ...about,
    }
    runs.push(q)
    if (f.unknown.length) {
      q.error = `unknown variable ${f.unknown.map((u) => `$${u}`).join(', ')}`
    } else {
      try {
        q.result = kind === 'instant' ? await prom.query(q.expr, toS) : await prom.queryRange(q.expr, q.startS, q.endS, String(stepS))
      } catch (e) {
        q.error = (e as Error).message
      }
    }
    if (q.error !== undefined) problems.push(`${q.label}: ${q.error}`)
  }
  for (const p of allPanels(d)) {
    const minMs = p.interval ? durationMs(p.interval) : SCRAPE_MS
    for (const t of p.targets ?? []) {
      const where = `${p.title}${(p.targets?.length ?? 0) > 1 ? ` (${t.refId})` : ''}`
      // A target may ask for both (Grafana then shows both): each must have data.
      if (t.range ?? !t.instant) await run(where, t.expr ?? '', minMs, 'range', { panel: p, target: t })
      if (t.instant) await run(where, t.expr ?? '', minMs, 'instant', { panel: p, target: t })
    }
  }
  for (const a of d.annotations?.list ?? []) {
    if (a.expr === undefined) continue
    // Grafana's Prometheus annotations are range queries stepped by the annotation's step (default 60s).
    await run(`annotation "${a.name}"`, a.expr, SCRAPE_MS, 'range', { annotation: a }, durationMs(a.step ?? '60s'))
  }
  return { vars, runs, problems }
}

/**
 * Runs every dashboard of `boards` (see `runDashboard`) and returns one line per empty query
 * ("dashboard / panel / query as sent"), one per query that could not be run at all, and how
 * many queries were run.
 */
export async function check(prom: RunningPrometheus, boards: Array<[string, Dashboard]>, frame: Omit<Frame, 'vars'>, prefer: Record<string, string>): Promise<{ empty: string[], problems: string[], evaluated: number }> {
  const empty: string[] = []
  const problems: string[] = []
  let evaluated = 0
  for (const [file, d] of boards) {
    const r = await runDashboard(prom, file, d, frame, prefer)
    problems.push(...r.problems)
    for (const q of r.runs) {
      if (q.error !== undefined && q.result === undefined && /^unknown variable/.test(q.error)) continue
      evaluated++
      if (q.result !== undefined && !hasData(q.result)) empty.push(q.label)
    }
  }
  return { empty, problems, evaluated }
}
