/**
 * What each panel of a dashboard shows, computed from Prometheus's answers the way Grafana would
 * show them: series named by their legendFormat, coloured by palette or override, stacked where
 * the panel stacks, on a scale with ticks in the panel's unit; stat and bar-gauge values reduced
 * to their last value; the dashboard's annotations as marks on every time-series panel.
 *
 * The page (page.ts) only lays these views out and the browser only draws them, so everything a
 * picture says is decided here, in plain data a test can read. Pure: no I/O.
 */

import type { PromResult, PromSeries } from '../../spec/support/prometheus.ts'
import { allPanels, type Annotation, type Dashboard, type Panel, type Target } from '../../spec/grafana/dashboards.ts'
import type { DashboardRun, QueryRun } from '../../spec/grafana/panel-queries.ts'
import { CLASSIC_PALETTE, cssColor, formatValue, niceTicks, tickLabels, withAlpha } from './format.ts'

/** The parts of a panel's JSON that drawing needs and dashboards.ts does not type. */
/** Grafana's value mappings: an exact value, or a range, shown as a text (and colour) of its own. */
interface ValueMapping {
  type?: string
  options?: Record<string, { text?: string, color?: string }> & { from?: number | null, to?: number | null, result?: { text?: string, color?: string } }
}
interface FieldDefaults {
  unit?: string, decimals?: number, min?: number, max?: number, mappings?: ValueMapping[]
  color?: { mode?: string, fixedColor?: string }
  thresholds?: { steps?: Array<{ color: string, value: number | null }> }
  custom?: Record<string, unknown>
}
interface Override { matcher?: { id?: string, options?: string }, properties?: Array<{ id: string, value: unknown }> }
interface DrawnPanel extends Panel {
  description?: string
  fieldConfig?: { defaults?: FieldDefaults, overrides?: Override[] }
  options?: {
    legend?: { displayMode?: string, placement?: string, showLegend?: boolean, calcs?: string[] }
    textMode?: string, colorMode?: string, displayMode?: string
  }
}
interface DrawnTarget extends Target { legendFormat?: string }
interface DrawnAnnotation extends Annotation { iconColor?: string, titleFormat?: string, enable?: boolean }

export interface GridPos { x: number, y: number, w: number, h: number }

/** One line, bar or point series of a time-series panel. */
export interface SeriesView {
  name: string
  color: string
  /** Raw values, one per `x` (null: no sample). */
  values: Array<number | null>
  /** What is drawn: the values stacked on the series below where the panel stacks. */
  drawn: Array<number | null>
  drawStyle: 'line' | 'bars' | 'points'
  lineWidth: number
  dash?: number[]
  /** Fill under the line or of the bars, as a CSS colour; undefined: none. */
  fill?: string
  /** Name of the series this one is filled down to (Grafana's fillBelowTo). */
  fillBelowTo?: string
  pointSize: number
  axis: 'left' | 'right'
  inLegend: boolean
  /** The legend's calcs (sum, mean...) of the raw values, written in the panel's unit. */
  legendValues: string[]
}

export interface AxisView { min: number, max: number, ticks: number[], labels: string[] }
/** An annotation at time `t` (Unix seconds). */
export interface Mark { t: number, color: string, title: string }

export interface TimeSeriesView {
  kind: 'timeseries'
  /** Timestamps in Unix seconds. */
  x: number[]
  fromS: number
  toS: number
  series: SeriesView[]
  /** Series are stacked (Grafana's stacking "normal"): `drawn` holds the running sums. */
  stacked: boolean
  left: AxisView
  right?: AxisView
  /** Dashed threshold lines (thresholdsStyle "dashed"), on the left axis. */
  thresholds: Array<{ value: number, color: string }>
  marks: Mark[]
  legend: { show: boolean, placement: 'bottom' | 'right', table: boolean, calcs: string[] }
}
export interface StatView { kind: 'stat', values: Array<{ name: string, text: string, color: string }>, showNames: boolean }
export interface BarGaugeView { kind: 'bargauge', bars: Array<{ name: string, ratio: number, text: string }> }
export interface RowView { kind: 'row' }

export type PanelView = {
  id: number
  title: string
  description: string
  type: string
  gridPos: GridPos
  /** No number in any of its queries: Grafana shows "No data". */
  empty: boolean
  /** Queries that could not be run, with Prometheus's error. */
  errors: string[]
} & (TimeSeriesView | StatView | BarGaugeView | RowView)

/** The dashboard's annotations of the range: marks, and each kind's count for the page's key. */
export interface AnnotationsView { marks: Mark[], key: Array<{ title: string, color: string, count: number }> }

export interface DashboardView {
  uid: string
  title: string
  vars: Record<string, string>
  fromMs: number
  toMs: number
  panels: PanelView[]
  annotations: AnnotationsView
}

/** Grafana's legendFormat: `{{label}}` replaced by the series' label; without one, `name{labels}`. */
export function seriesName(metric: Record<string, string>, legendFormat: string | undefined, expr: string): string {
  if (legendFormat !== undefined && legendFormat !== '' && legendFormat !== '__auto') {
    return legendFormat.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, k: string) => metric[k] ?? '').replace(/\s+/g, ' ').trim()
  }
  const { __name__: name, ...labels } = metric
  const l = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(', ')
  if (name === undefined && l === '') return expr
  return `${name ?? ''}{${l}}`
}

const num = (v: string): number | null => {
  const n = Number(v)
  return Number.isFinite(n) ? n : null
}

/** The series of a result (a scalar is one series without labels). */
function seriesOf(r: PromResult | undefined): PromSeries[] {
  if (r === undefined) return []
  if (r.resultType === 'scalar' || r.resultType === 'string') return [{ metric: {}, value: r.result as [number, string] }]
  return r.result as PromSeries[]
}

/** The last number of a series (Grafana's lastNotNull). */
function lastNumber(s: PromSeries): number | null {
  const pts = s.values ?? (s.value ? [s.value] : [])
  for (let i = pts.length - 1; i >= 0; i--) {
    const v = num(pts[i]![1])
    if (v !== null) return v
  }
  return null
}

const CALCS: Record<string, (v: number[]) => number | null> = {
  sum: (v) => v.reduce((a, b) => a + b, 0),
  mean: (v) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : null),
  max: (v) => (v.length ? Math.max(...v) : null),
  min: (v) => (v.length ? Math.min(...v) : null),
  lastNotNull: (v) => v.at(-1) ?? null,
  last: (v) => v.at(-1) ?? null,
}

/** A field's settings after the panel's overrides for series `name` of target `refId`. */
function fieldFor(p: DrawnPanel, name: string, refId: string | undefined): FieldDefaults & { custom: Record<string, unknown> } {
  const d = p.fieldConfig?.defaults ?? {}
  const f: FieldDefaults & { custom: Record<string, unknown> } = { ...d, custom: { ...d.custom } }
  for (const o of p.fieldConfig?.overrides ?? []) {
    const m = o.matcher
    const hit = (m?.id === 'byName' && m.options === name) || (m?.id === 'byFrameRefID' && m.options === refId)
    if (!hit) continue
    for (const prop of o.properties ?? []) {
      if (prop.id.startsWith('custom.')) f.custom[prop.id.slice('custom.'.length)] = prop.value
      else if (['unit', 'decimals', 'min', 'max', 'color'].includes(prop.id)) Object.assign(f, { [prop.id]: prop.value })
    }
  }
  return f
}

/** The colour a threshold-coloured value gets: the last step at or below it. */
function thresholdColor(steps: Array<{ color: string, value: number | null }> | undefined, v: number | null): string {
  let c = 'text'
  for (const s of steps ?? []) if (s.value === null || (v !== null && v >= s.value)) c = s.color
  return cssColor(c)
}

/** The text and colour a value mapping gives `v`, if one matches (the first that does, as in Grafana). */
export function mapped(v: number, mappings: ValueMapping[] | undefined): { text?: string, color?: string } | undefined {
  for (const m of mappings ?? []) {
    const o = m.options ?? {}
    if (m.type === 'value') {
      const hit = Object.entries(o).find(([k]) => Number(k) === v)?.[1] as { text?: string, color?: string } | undefined
      if (hit) return hit
    } else if (m.type === 'range') {
      if ((o.from === undefined || o.from === null || v >= o.from) && (o.to === undefined || o.to === null || v <= o.to)) return o.result ?? {}
    }
  }
  return undefined
}

/** Annotation marks: each run of consecutive steps with a value is one event at its first step. */
export function annotationsView(runs: QueryRun[]): AnnotationsView {
  const marks: Mark[] = []
  const counts = new Map<string, { title: string, color: string, count: number }>()
  for (const q of runs) {
    const a = q.annotation as DrawnAnnotation | undefined
    if (a === undefined || a.enable === false) continue
    const color = cssColor(a.iconColor ?? 'red')
    for (const s of seriesOf(q.result)) {
      const title = seriesName(s.metric, a.titleFormat ?? a.name, a.expr ?? '')
      let prev = -Infinity
      for (const [t, v] of s.values ?? []) {
        if (num(v) === null) continue
        if (t - prev > q.stepS * 1.5) {
          marks.push({ t, color, title })
          const k = counts.get(title) ?? { title, color, count: 0 }
          k.count++
          counts.set(title, k)
        }
        prev = t
      }
    }
  }
  return { marks: marks.sort((a, b) => a.t - b.t), key: [...counts.values()] }
}

/** Estimated pixel height of a panel's chart area, for the number of ticks (the page lays out the rest). */
const chartHeightPx = (g: GridPos, legendBottom: boolean): number => g.h * 38 - 8 - 32 - (legendBottom ? 28 : 0)

function axis(values: Array<number | null>, fixedMin: number | undefined, fixedMax: number | undefined, unit: string | undefined, heightPx: number): AxisView {
  const nums = values.filter((v): v is number => v !== null)
  const lo = fixedMin ?? Math.min(0, ...nums)
  let hi = fixedMax ?? (nums.length ? Math.max(...nums) : lo + 1)
  if (!(hi > lo)) hi = lo + 1
  const t = niceTicks(lo, hi, Math.max(2, Math.floor(heightPx / 45)))
  // A fixed end stays where the panel puts it; a free one ends on a tick.
  const min = fixedMin ?? t.min
  const max = fixedMax ?? t.max
  const ticks = t.ticks.filter((x) => x >= min - 1e-12 && x <= max + 1e-12)
  return { min, max, ticks, labels: tickLabels(ticks, unit) }
}

function timeSeries(p: DrawnPanel, runs: QueryRun[], fromS: number, toS: number, marks: Mark[]): TimeSeriesView {
  const d = p.fieldConfig?.defaults ?? {}
  const ranged = runs.filter((q) => q.kind === 'range')
  const x = [...new Set(ranged.flatMap((q) => seriesOf(q.result).flatMap((s) => (s.values ?? []).map(([t]) => t))))].sort((a, b) => a - b)
  const at = new Map(x.map((t, i) => [t, i]))
  const legend = p.options?.legend ?? {}
  const calcs = legend.calcs ?? []
  const series: SeriesView[] = []
  for (const q of ranged) {
    const t = q.target as DrawnTarget | undefined
    const named = seriesOf(q.result).map((s) => ({ s, name: seriesName(s.metric, t?.legendFormat, q.expr) })).sort((a, b) => a.name.localeCompare(b.name))
    for (const { s, name } of named) {
      const values: Array<number | null> = x.map(() => null)
      for (const [ts, v] of s.values ?? []) values[at.get(ts)!] = num(v)
      const f = fieldFor(p, name, t?.refId)
      const c = f.custom
      const color = f.color?.mode === 'fixed' ? cssColor(f.color.fixedColor) : CLASSIC_PALETTE[series.length % CLASSIC_PALETTE.length]!
      const drawStyle = c.drawStyle === 'bars' || c.drawStyle === 'points' ? c.drawStyle : 'line'
      const fillOpacity = typeof c.fillOpacity === 'number' ? c.fillOpacity : 0
      const lineStyle = c.lineStyle as { fill?: string, dash?: number[] } | undefined
      const hideFrom = c.hideFrom as { legend?: boolean } | undefined
      const present = values.filter((v): v is number => v !== null)
      series.push({
        name,
        color,
        values,
        drawn: values,
        drawStyle,
        lineWidth: typeof c.lineWidth === 'number' ? c.lineWidth : 1,
        ...(lineStyle?.fill === 'dash' ? { dash: lineStyle.dash ?? [10, 10] } : {}),
        ...(fillOpacity > 0 ? { fill: withAlpha(color, fillOpacity / 100) } : {}),
        ...(typeof c.fillBelowTo === 'string' ? { fillBelowTo: c.fillBelowTo } : {}),
        pointSize: typeof c.pointSize === 'number' ? c.pointSize : 4,
        axis: c.axisPlacement === 'right' ? 'right' : 'left',
        inLegend: hideFrom?.legend !== true,
        legendValues: calcs.map((k) => formatValue(CALCS[k]?.(present) ?? null, f.unit ?? d.unit, f.decimals ?? d.decimals)),
      })
    }
  }
  // Stacking "normal": each series drawn on top of the ones before it on its axis (nulls count as 0).
  const stacking = (d.custom?.stacking as { mode?: string } | undefined)?.mode
  if (stacking === 'normal') {
    for (const side of ['left', 'right'] as const) {
      const sum = x.map(() => 0)
      for (const s of series.filter((v) => v.axis === side)) {
        s.drawn = s.values.map((v, i) => (v === null ? null : (sum[i]! += v)))
      }
    }
  }
  const side = (a: 'left' | 'right'): Array<number | null> => series.filter((s) => s.axis === a).flatMap((s) => s.drawn)
  const hasRight = series.some((s) => s.axis === 'right')
  const bottom = legend.placement !== 'right'
  const h = chartHeightPx(p.gridPos ?? { x: 0, y: 0, w: 24, h: 8 }, bottom)
  const thresholdsStyle = (d.custom?.thresholdsStyle as { mode?: string } | undefined)?.mode
  return {
    kind: 'timeseries',
    x,
    fromS,
    toS,
    series,
    stacked: stacking === 'normal',
    left: axis(side('left'), d.min, d.max, d.unit, h),
    ...(hasRight ? { right: axis(side('right'), d.min, d.max, d.unit, h) } : {}),
    thresholds: thresholdsStyle === 'dashed' || thresholdsStyle === 'line'
      ? (d.thresholds?.steps ?? []).filter((s): s is { color: string, value: number } => s.value !== null).map((s) => ({ value: s.value, color: cssColor(s.color) }))
      : [],
    marks,
    legend: { show: legend.showLegend !== false, placement: bottom ? 'bottom' : 'right', table: legend.displayMode === 'table', calcs },
  }
}

/** Last values of each series of the panel's instant queries (range ones if it has none). */
function lastValues(p: DrawnPanel, runs: QueryRun[]): Array<{ name: string, v: number | null }> {
  const instant = runs.filter((q) => q.kind === 'instant')
  const use = instant.length ? instant : runs
  const out: Array<{ name: string, v: number | null }> = []
  for (const q of use) {
    const t = q.target as DrawnTarget | undefined
    const named = seriesOf(q.result).map((s) => ({ name: seriesName(s.metric, t?.legendFormat, q.expr), v: lastNumber(s) }))
    out.push(...named.sort((a, b) => a.name.localeCompare(b.name)))
  }
  return out
}

function stat(p: DrawnPanel, runs: QueryRun[]): StatView {
  const values = lastValues(p, runs).filter((v) => v.v !== null).map(({ name, v }) => {
    const f = fieldFor(p, name, undefined)
    const byValue = p.options?.colorMode === 'value' || p.options?.colorMode === 'background'
    const m = v === null ? undefined : mapped(v, f.mappings)
    const color = byValue && m?.color !== undefined ? cssColor(m.color) : byValue ? thresholdColor(f.thresholds?.steps, v) : cssColor('text')
    return { name, text: m?.text ?? formatValue(v, f.unit, f.decimals), color }
  })
  const mode = p.options?.textMode ?? 'auto'
  return { kind: 'stat', values, showNames: mode === 'value_and_name' || mode === 'name' || (mode === 'auto' && values.length > 1) }
}

function barGauge(p: DrawnPanel, runs: QueryRun[]): BarGaugeView {
  const d = p.fieldConfig?.defaults ?? {}
  const min = d.min ?? 0
  const max = d.max ?? 1
  const bars = lastValues(p, runs).filter((v) => v.v !== null).map(({ name, v }) => ({
    name,
    ratio: Math.min(1, Math.max(0, ((v ?? min) - min) / (max - min || 1))),
    text: (v === null ? undefined : mapped(v, d.mappings)?.text) ?? formatValue(v, d.unit, d.decimals),
  }))
  return { kind: 'bargauge', bars }
}

/** Grafana's "No data": no query of the panel holds a number. */
function isEmpty(v: TimeSeriesView | StatView | BarGaugeView | RowView): boolean {
  switch (v.kind) {
    case 'timeseries': return !v.series.some((s) => s.values.some((x) => x !== null))
    case 'stat': return v.values.length === 0
    case 'bargauge': return v.bars.length === 0
    case 'row': return false
  }
}

/** The views of every panel of `d`, from the runs of `runDashboard` over [fromMs, toMs]. */
export function dashboardView(d: Dashboard, run: DashboardRun, fromMs: number, toMs: number): DashboardView {
  const annotations = annotationsView(run.runs)
  const panels = allPanels(d).map((raw): PanelView => {
    const p = raw as DrawnPanel
    const runs = run.runs.filter((q) => q.panel === raw)
    const view = p.type === 'row' ? { kind: 'row' as const }
      : p.type === 'stat' ? stat(p, runs)
        : p.type === 'bargauge' ? barGauge(p, runs)
          : timeSeries(p, runs, fromMs / 1000, toMs / 1000, annotations.marks)
    return {
      id: p.id ?? 0,
      title: p.title ?? '',
      description: p.description ?? '',
      type: p.type ?? '',
      gridPos: p.gridPos ?? { x: 0, y: 0, w: 24, h: 8 },
      empty: isEmpty(view),
      errors: runs.filter((q) => q.error !== undefined).map((q) => `${q.expr}: ${q.error}`),
      ...view,
    }
  })
  return { uid: d.uid ?? '', title: d.title ?? '', vars: run.vars, fromMs, toMs, panels, annotations }
}
