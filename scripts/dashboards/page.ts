/**
 * One self-contained HTML page per dashboard, laid out like Grafana: panels placed by their
 * gridPos on a 24-column grid (30 px rows, 8 px gaps), rows as headers, stat panels as big
 * numbers, bar gauges as bars, time-series panels as uPlot charts with their legends (a list
 * below, or a table with calcs on the right). uPlot, its CSS and draw.js are inlined, so the page
 * needs no network and no server: Chromium opens it as a file.
 *
 * Pure: takes the views of panel-view.ts and the script texts, returns the page and its size;
 * never reads files or decides what a panel shows.
 */

import type { DashboardView, PanelView, StatView, BarGaugeView, TimeSeriesView } from './panel-view.ts'

/** Grafana's grid: 24 columns; a row unit is 30 px high with 8 px between panels. */
export const GRID = { columns: 24, cellPx: 30, gapPx: 8 } as const
const PAD_PX = 16
const HEADER_PX = 84
const TITLE_PX = 30

/** The scripts and styles a page inlines. */
export interface PageAssets { uplotJs: string, uplotCss: string, drawJs: string }

export interface Page { html: string, width: number, height: number }

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&#39;' })[c]!)
/** JSON safe inside a <script> element: no `</script>` can close it early. */
const scriptJson = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c')

/** Pixel box of a gridPos on a page `width` px wide. */
export function box(g: { x: number, y: number, w: number, h: number }, width: number): { left: number, top: number, width: number, height: number } {
  const col = (width - 2 * PAD_PX - (GRID.columns - 1) * GRID.gapPx) / GRID.columns
  const unit = GRID.cellPx + GRID.gapPx
  return {
    left: Math.round(PAD_PX + g.x * (col + GRID.gapPx)),
    top: HEADER_PX + g.y * unit,
    width: Math.round(g.w * col + (g.w - 1) * GRID.gapPx),
    height: g.h * GRID.cellPx + (g.h - 1) * GRID.gapPx,
  }
}

const utc = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')

function statBody(v: StatView, w: number, h: number): string {
  const n = v.values.length
  // The column count that gives the largest text: Grafana's stat panel fits its values the same way.
  let best = { cols: 1, font: 0 }
  const longest = Math.max(...v.values.map((x) => x.text.length), 1)
  const longestName = Math.max(...v.values.map((x) => x.name.length), 1)
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols)
    const cellW = w / cols - 8
    const cellH = h / rows
    const byHeight = cellH * (v.showNames ? 0.5 : 0.7)
    const byWidth = Math.min(cellW / (longest * 0.6), v.showNames ? (cellW / (longestName * 0.55)) * 2.2 : Infinity)
    const font = Math.min(byHeight, byWidth, 56)
    if (font > best.font) best = { cols, font }
  }
  const nameFont = Math.max(10, Math.min(14, best.font * 0.42))
  const cells = v.values.map((x) => `<div class="stat-cell">${v.showNames ? `<div class="stat-name" style="font-size:${nameFont.toFixed(0)}px">${esc(x.name)}</div>` : ''}<div class="stat-value" style="font-size:${best.font.toFixed(0)}px;color:${x.color}">${esc(x.text)}</div></div>`)
  return `<div class="stat" style="grid-template-columns:repeat(${best.cols}, 1fr)">${cells.join('')}</div>`
}

function barGaugeBody(v: BarGaugeView): string {
  const rows = v.bars.map((b) => `<div class="bar-row"><div class="bar-name">${esc(b.name)}</div><div class="bar-track"><div class="bar-fill" style="width:${(b.ratio * 100).toFixed(2)}%"></div></div><div class="bar-value">${esc(b.text)}</div></div>`)
  return `<div class="bargauge">${rows.join('')}</div>`
}

/** A legend on the right takes at most this share of the panel's width; the chart keeps the rest. */
const RIGHT_LEGEND_SHARE = 0.45
/** Room a calc column (a number such as "12.3 K") and the cell paddings take in a legend table. */
const CALC_COLUMN_PX = 44

function legend(v: TimeSeriesView, panelWidthPx: number): string {
  if (!v.legend.show) return ''
  const shown = v.series.filter((s) => s.inLegend)
  const swatch = (c: string): string => `<span class="swatch" style="background:${c}"></span>`
  if (v.legend.table) {
    const head = v.legend.calcs.map((c) => `<th>${esc(c[0]!.toUpperCase() + c.slice(1))}</th>`).join('')
    // Names wrap so the table stays within its share, however long a label is.
    const nameMax = Math.max(60, Math.floor(panelWidthPx * RIGHT_LEGEND_SHARE) - 16 - v.legend.calcs.length * CALC_COLUMN_PX - 24)
    const rows = shown.map((s) => `<tr><td class="name" style="max-width:${nameMax}px"><div class="lname">${swatch(s.color)}<span>${esc(s.name)}</span></div></td>${s.legendValues.map((x) => `<td class="num">${esc(x)}</td>`).join('')}</tr>`).join('')
    return `<table class="legend legend-table"><thead><tr><th></th>${head}</tr></thead><tbody>${rows}</tbody></table>`
  }
  return `<div class="legend legend-list">${shown.map((s) => `<span class="item">${swatch(s.color)}${esc(s.name)}</span>`).join('')}</div>`
}

function panelHtml(p: PanelView, width: number): string {
  const b = box(p.gridPos, width)
  const pos = `left:${b.left}px;top:${b.top}px;width:${b.width}px;height:${b.height}px`
  if (p.kind === 'row') return `<div class="row" style="${pos}">&#9662; ${esc(p.title)}</div>`
  let body: string
  if (p.errors.length) body = `<div class="nodata error">${p.errors.map(esc).join('<br>')}</div>`
  else if (p.empty) body = '<div class="nodata">No data</div>'
  else if (p.kind === 'stat') body = statBody(p, b.width - 16, b.height - TITLE_PX - 8)
  else if (p.kind === 'bargauge') body = barGaugeBody(p)
  else body = `<div class="ts legend-${p.legend.placement}"><div class="chart" id="chart-${p.id}"></div>${legend(p, b.width)}</div>`
  return `<div class="panel panel-${p.kind}" data-panel-id="${p.id}" style="${pos}"><div class="title">${esc(p.title)}</div><div class="body">${body}</div></div>`
}

const CSS = `
* { box-sizing: border-box; }
html, body { margin: 0; background: #111217; color: #ccccdc; font: 12px "Liberation Sans", "DejaVu Sans", sans-serif; }
.page { position: relative; }
.header { position: absolute; left: ${PAD_PX}px; right: ${PAD_PX}px; top: 10px; height: ${HEADER_PX - 18}px; }
.header h1 { margin: 0 0 4px; font-size: 20px; font-weight: normal; color: #e6e6f0; }
.header .meta { color: #9fa1b3; margin-bottom: 6px; }
.header .var { display: inline-block; margin-right: 14px; padding: 2px 8px; border: 1px solid #34363d; border-radius: 2px; background: #181b1f; }
.header .var b { color: #6e9fff; font-weight: normal; margin-right: 6px; }
.header .key-label { color: #9fa1b3; margin-right: 10px; }
.header .key { display: inline-block; margin-right: 14px; }
.header .key i { display: inline-block; width: 2px; height: 12px; margin-right: 6px; vertical-align: -2px; }
.panel { position: absolute; background: #181b1f; border: 1px solid #25272d; border-radius: 2px; display: flex; flex-direction: column; overflow: hidden; }
.panel .title { height: ${TITLE_PX}px; line-height: ${TITLE_PX}px; padding: 0 8px; font-size: 13px; font-weight: bold; color: #d8d9e3; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; flex: none; }
.panel .body { flex: 1 1 auto; min-height: 0; padding: 0 8px 8px; position: relative; }
.row { position: absolute; font-size: 15px; color: #d8d9e3; line-height: 30px; border-bottom: 1px solid #25272d; }
.nodata { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; color: #9fa1b3; font-size: 14px; }
.nodata.error { color: #f2495c; font-size: 11px; padding: 8px; text-align: center; }
.ts { display: flex; height: 100%; }
.ts.legend-bottom { flex-direction: column; }
.ts.legend-right { flex-direction: row; }
.ts .chart { flex: 1 1 auto; min-height: 0; min-width: 0; }
.legend-list { flex: none; padding-top: 4px; line-height: 18px; max-height: 60px; overflow: hidden; }
.legend-list .item { margin-right: 14px; white-space: nowrap; display: inline-block; }
.swatch { display: inline-block; width: 14px; height: 4px; border-radius: 2px; margin-right: 6px; vertical-align: middle; }
.legend-table { flex: none; align-self: flex-start; border-collapse: collapse; margin-left: 8px; max-width: ${RIGHT_LEGEND_SHARE * 100}%; }
.legend-table th { text-align: right; color: #6e9fff; font-weight: normal; padding: 2px 6px; border-bottom: 1px solid #25272d; }
.legend-table td { padding: 2px 6px; white-space: nowrap; }
/* Long names (subjects with the cluster name) wrap rather than end in an ellipsis: a picture has no tooltip. */
.legend-table td.name { white-space: normal; }
.legend-table .lname { display: flex; align-items: baseline; }
.legend-table .lname .swatch { flex: none; }
.legend-table .lname span:last-child { min-width: 0; overflow-wrap: anywhere; }
.legend-table td.num { text-align: right; }
.stat { display: grid; height: 100%; align-items: center; }
.stat-cell { text-align: center; overflow: hidden; }
.stat-name { color: #ccccdc; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.stat-value { font-weight: 500; white-space: nowrap; line-height: 1.1; }
.bargauge { display: flex; flex-direction: column; justify-content: center; height: 100%; gap: 8px; }
.bar-row { display: flex; align-items: center; gap: 8px; }
.bar-name { width: 30%; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.bar-track { flex: 1; height: 24px; background: rgba(204, 204, 220, 0.08); border-radius: 2px; overflow: hidden; }
.bar-fill { height: 100%; background: linear-gradient(90deg, #5794f2, #b877d9); min-width: 2px; }
.bar-value { width: 70px; text-align: right; font-size: 18px; color: #b877d9; }
.footer { position: absolute; left: ${PAD_PX}px; right: ${PAD_PX}px; color: #7b7d8f; font-size: 11px; }
`

/**
 * The page of `v`, `width` px wide; `height` is what the grid needs. `note` is written at the
 * foot of the page (how and when the data was made).
 */
export function dashboardPage(v: DashboardView, assets: PageAssets, width: number, note: string): Page {
  const bottomUnits = Math.max(0, ...v.panels.map((p) => p.gridPos.y + p.gridPos.h))
  const gridBottom = HEADER_PX + bottomUnits * (GRID.cellPx + GRID.gapPx)
  const height = gridBottom + 28
  const vars = Object.entries(v.vars).map(([k, x]) => `<span class="var"><b>${esc(k)}</b>${esc(x)}</span>`).join('')
  // Counted as Grafana marks them: consecutive steps of one annotation query are one mark.
  const key = v.annotations.key.length === 0 ? '' : `<span class="key-label">Annotations</span>${v.annotations.key.map((k) => `<span class="key"><i style="background:${k.color}"></i>${esc(k.title)} &times; ${k.count}</span>`).join('')}`
  const charts = v.panels.filter((p): p is PanelView & TimeSeriesView => p.kind === 'timeseries' && !p.empty && p.errors.length === 0)
    .map((p) => ({ id: p.id, x: p.x, fromS: p.fromS, toS: p.toS, series: p.series, stacked: p.stacked, left: p.left, right: p.right, thresholds: p.thresholds, marks: p.marks }))
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>${esc(v.title)}</title>
<style>${assets.uplotCss}</style><style>${CSS}</style></head>
<body><div class="page" style="width:${width}px;height:${height}px">
<div class="header"><h1>${esc(v.title)}</h1>
<div class="meta">${esc(utc(v.fromMs))} to ${esc(utc(v.toMs))}</div>
<div>${vars}${key}</div></div>
${v.panels.map((p) => panelHtml(p, width)).join('\n')}
<div class="footer" style="top:${gridBottom + 4}px">${esc(note)}</div>
</div>
<script id="panels" type="application/json">${scriptJson(charts)}</script>
<script>${assets.uplotJs}</script>
<script>${assets.drawJs}</script>
</body></html>
`
  return { html, width, height }
}
