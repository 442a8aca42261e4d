/**
 * Reads grafana/dashboards/*.json for the tests of spec/grafana/: the dashboards, their panels
 * (rows included) and every query in them — panel targets, annotations and template variables —
 * with enough of each (instant or range, minimum interval, annotation step) to run it the way
 * Grafana would.
 *
 * Holds no tests and must never write into grafana/: it only parses.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../../', import.meta.url))
export const read = (rel: string): string => fs.readFileSync(path.join(root, rel), 'utf8')

export interface DataSourceRef { type?: string, uid?: string }
export interface Target { expr?: string, refId?: string, datasource?: DataSourceRef, instant?: boolean, range?: boolean, interval?: string }
export interface Panel {
  id?: number, type?: string, title?: string, datasource?: DataSourceRef
  gridPos?: { x: number, y: number, w: number, h: number }, targets?: Target[], panels?: Panel[]
  /** Grafana's "min interval" of the panel's queries, e.g. "15s". */
  interval?: string, maxDataPoints?: number
}
export interface Annotation { name?: string, expr?: string, datasource?: DataSourceRef, step?: string }
export interface Variable { name?: string, type?: string, query?: string | { query?: string }, datasource?: DataSourceRef, sort?: number }
export interface Dashboard {
  uid?: string, title?: string, schemaVersion?: number, panels?: Panel[]
  annotations?: { list?: Annotation[] }, templating?: { list?: Variable[] }
}

/** One query of a dashboard: where it is (for messages) and what it belongs to. */
export interface Query {
  where: string
  expr: string
  /** False for Grafana's own variable functions such as label_values(...). */
  promql: boolean
  panel?: Panel
  target?: Target
  annotation?: Annotation
  variable?: Variable
}

export const files = fs.readdirSync(path.join(root, 'grafana', 'dashboards')).filter((f) => f.endsWith('.json')).sort()
export const dashboards = new Map(files.map((f) => [f, JSON.parse(read(`grafana/dashboards/${f}`)) as Dashboard]))
export const dashboard = (f: string): Dashboard => dashboards.get(f) ?? {}

/** Panels including those inside rows (a collapsed row keeps its panels in `panels`). */
export const allPanels = (d: Dashboard): Panel[] => (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])])
export const variableQuery = (v: Variable): string => (typeof v.query === 'string' ? v.query : v.query?.query ?? '')

/** Every query of a dashboard with where it is, for messages: panel targets, annotations, variables. */
export function queries(d: Dashboard): Query[] {
  return [
    ...allPanels(d).flatMap((p) => (p.targets ?? []).map((t): Query => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr ?? '', promql: true, panel: p, target: t }))),
    ...(d.annotations?.list ?? []).filter((a) => a.expr !== undefined).map((a): Query => ({ where: `annotation "${a.name}"`, expr: a.expr ?? '', promql: true, annotation: a })),
    // label_values(...) is Grafana's, not PromQL: its metric name is checked, its syntax is not.
    ...(d.templating?.list ?? []).map((v): Query => ({ where: `variable ${v.name}`, expr: variableQuery(v), promql: false, variable: v })),
  ]
}
