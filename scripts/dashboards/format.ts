/**
 * Numbers as Grafana writes them for the units the dashboards use (percentunit, short, s, bytes,
 * cps), the axis ticks of a chart, and the colours Grafana's dark theme gives named and palette
 * colours. The pictures of docs/DASHBOARDS.md must read like the panels in Grafana, so the units
 * follow Grafana's own formatters (packages/grafana-data/src/valueFormats), in a small subset.
 *
 * Pure functions only: no I/O, nothing about pages or Prometheus.
 */

/** Grafana's auto decimals, simplified: about three significant digits, never more than 3 places. */
function autoDecimals(v: number): number {
  const a = Math.abs(v)
  if (a === 0 || a >= 100) return 0
  if (a >= 10) return 1
  if (a >= 1) return 2
  return 3
}

/** `v` with `decimals` places, or auto with trailing zeros cut (as Grafana does for auto). */
function fixed(v: number, decimals: number | undefined): string {
  if (decimals !== undefined) return v.toFixed(decimals)
  const s = v.toFixed(autoDecimals(v))
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s
}

/** `v` divided by the largest step of `steps` it reaches, with that step's suffix. */
function scaled(v: number, decimals: number | undefined, base: number, suffixes: string[]): string {
  let i = 0
  let x = v
  while (Math.abs(x) >= base && i < suffixes.length - 1) {
    x /= base
    i++
  }
  return `${fixed(x, decimals)}${suffixes[i]}`
}

/** Seconds as Grafana's `s` unit: µs and ms below a second, min/hour/day above a minute. */
function seconds(v: number, decimals: number | undefined): string {
  const a = Math.abs(v)
  if (a === 0) return `${fixed(0, decimals)} s`
  if (a < 0.001) return `${fixed(v * 1e6, decimals)} µs`
  if (a < 1) return `${fixed(v * 1000, decimals)} ms`
  if (a < 60) return `${fixed(v, decimals)} s`
  if (a < 3600) return `${fixed(v / 60, decimals)} min`
  if (a < 86_400) return `${fixed(v / 3600, decimals)} hour`
  return `${fixed(v / 86_400, decimals)} day`
}

/**
 * `v` in Grafana's `unit` with `decimals` places (auto when undefined). Units not listed here are
 * written as plain numbers, so an unknown unit shows its value rather than nothing.
 */
export function formatValue(v: number | null | undefined, unit: string | undefined, decimals?: number): string {
  if (v === null || v === undefined || Number.isNaN(v)) return 'No data'
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf'
  switch (unit) {
    case 'percentunit': return `${fixed(v * 100, decimals)}%`
    case 'percent': return `${fixed(v, decimals)}%`
    case 's': return seconds(v, decimals)
    case 'ms': return seconds(v / 1000, decimals)
    case 'bytes': return scaled(v, decimals, 1024, [' B', ' KiB', ' MiB', ' GiB', ' TiB'])
    case 'cps': return `${scaled(v, decimals, 1000, ['', ' K', ' Mil', ' Bil', ' Tri'])} c/s`
    case 'short': return scaled(v, decimals, 1000, ['', ' K', ' Mil', ' Bil', ' Tri'])
    default: return fixed(v, decimals)
  }
}

/**
 * About `count` evenly spaced ticks covering [min, max] at a 1-2-5 step, and the range they span
 * (the chart's scale). An empty range becomes [min, min + 1].
 */
export function niceTicks(min: number, max: number, count: number): { ticks: number[], min: number, max: number } {
  if (!(max > min)) max = min + 1
  const raw = (max - min) / Math.max(1, count)
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag)
  const lo = Math.floor(min / step + 1e-9) * step
  const hi = Math.ceil(max / step - 1e-9) * step
  const ticks: number[] = []
  // Rounded to the step's own precision, so that 0.1 + 0.2 is written 0.3.
  const places = Math.max(0, -Math.floor(Math.log10(step)) + 1)
  for (let t = lo; t <= hi + step / 2; t += step) ticks.push(Number(t.toFixed(places)))
  return { ticks, min: lo, max: hi }
}

/**
 * Tick labels in `unit`: auto decimals with trailing zeros cut, so an axis from 0 to 1.5 reads
 * 0, 0.5, 1, 1.5 and an axis of seconds 0, 500 ms, 1 s, 1.5 s.
 */
export function tickLabels(ticks: number[], unit: string | undefined): string[] {
  return ticks.map((t) => formatValue(t, unit))
}

/** Grafana's dark-theme values of the named colours the dashboards use. */
const NAMED: Record<string, string> = {
  'green': '#73BF69',
  'red': '#F2495C',
  'dark-red': '#C4162A',
  'purple': '#B877D9',
  'orange': '#FF9830',
  'blue': '#5794F2',
  'yellow': '#FADE2A',
  'text': '#CCCCDC',
  'transparent': 'transparent',
}

/** Grafana's `palette-classic`, in its order: the n-th series of a panel gets the n-th colour. */
export const CLASSIC_PALETTE = [
  '#7EB26D', '#EAB839', '#6ED0E0', '#EF843C', '#E24D42', '#1F78C1', '#BA43A9', '#705DA0',
  '#508642', '#CCA300', '#447EBC', '#C15C17', '#890F02', '#0A437C', '#6D1F62', '#584477',
]

/** A Grafana colour name or CSS colour as a CSS colour (unknown names pass through: CSS knows many). */
export function cssColor(name: string | undefined): string {
  if (name === undefined) return NAMED.text!
  return NAMED[name] ?? name
}

/** `#RRGGBB` with an alpha from 0 to 1, as `rgba(...)`; other colours as they are. */
export function withAlpha(color: string, alpha: number): string {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color)
  if (!m) return color
  const [r, g, b] = [m[1], m[2], m[3]].map((h) => parseInt(h!, 16))
  return `rgba(${r}, ${g}, ${b}, ${alpha})`
}
