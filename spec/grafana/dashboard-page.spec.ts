/**
 * The page builder of `npm run render-dashboards` (scripts/dashboards/) on plain data, without
 * Prometheus or Chromium: units written as Grafana writes them, series named by legendFormat,
 * stacks summed, overrides applied, stat and bar-gauge values reduced, annotations turned into
 * marks, and the HTML page laying each panel out by its gridPos with its title, legend and
 * "No data" where a panel has nothing.
 *
 * Must never start a process or read a file but the page's own scripts.
 */

import { expect } from 'chai'
import type { Annotation, Dashboard, Panel, Target } from './dashboards.ts'
import type { DashboardRun, QueryRun } from './panel-queries.ts'
import type { PromResult } from '../support/prometheus.ts'
import { formatValue, niceTicks } from '../../scripts/dashboards/format.ts'
import { dashboardView, seriesName, type PanelView } from '../../scripts/dashboards/panel-view.ts'
import { box, dashboardPage, GRID } from '../../scripts/dashboards/page.ts'

const ASSETS = { uplotJs: '/* uPlot */', uplotCss: '/* css */', drawJs: '/* draw */' }
const T = 1_800_000_000
/** A target with the legendFormat that dashboards.ts does not type (the page builder reads it). */
const target = (t: Target & { legendFormat?: string }): Target => t

const matrix = (series: Array<[Record<string, string>, Array<number | null>]>, stepS = 1): PromResult => ({
  resultType: 'matrix',
  result: series.map(([metric, vs]) => ({ metric, values: vs.flatMap((v, i): Array<[number, string]> => (v === null ? [] : [[T + i * stepS, String(v)]])) })),
})
const vector = (series: Array<[Record<string, string>, number]>): PromResult => ({
  resultType: 'vector', result: series.map(([metric, v]) => ({ metric, value: [T + 10, String(v)] as [number, string] })),
})

describe('the dashboard pictures\' page builder', () => {
  describe('units', () => {
    it('writes values in the units the dashboards use, as Grafana does', () => {
      expect(formatValue(0.5, 'percentunit')).to.equal('50%')
      expect(formatValue(0.0123, 's')).to.equal('12.3 ms')
      expect(formatValue(0.00002, 's')).to.equal('20 µs')
      expect(formatValue(90, 's')).to.equal('1.5 min')
      expect(formatValue(2048, 'bytes')).to.equal('2 KiB')
      expect(formatValue(12_345, 'short')).to.equal('12.3 K')
      expect(formatValue(3, 'cps')).to.equal('3 c/s')
      expect(formatValue(0.12345, 'short', 3)).to.equal('0.123')
      expect(formatValue(4, 'short', 1)).to.equal('4.0')
      expect(formatValue(null, 'short')).to.equal('No data')
    })

    it('puts axis ticks on a 1-2-5 step that covers the data', () => {
      expect(niceTicks(0, 0.93, 4)).to.deep.equal({ ticks: [0, 0.25, 0.5, 0.75, 1], min: 0, max: 1 })
      expect(niceTicks(0, 0, 4).max).to.be.greaterThan(0)
    })
  })

  it('names series by legendFormat, else by metric and labels, else by the expression', () => {
    expect(seriesName({ host: 'a', job: 'x' }, '{{host}} load', 'e')).to.equal('a load')
    expect(seriesName({ reason: 'drain' }, 'p99 {{reason}}', 'e')).to.equal('p99 drain')
    expect(seriesName({ }, 'p99 {{reason}}', 'e')).to.equal('p99')
    expect(seriesName({ __name__: 'up', job: 'x' }, undefined, 'e')).to.equal('up{job="x"}')
    expect(seriesName({}, '', 'sum(up)')).to.equal('sum(up)')
  })

  describe('views and page of a made-up dashboard', () => {
    const bars: Panel & Record<string, unknown> = {
      id: 2, type: 'timeseries', title: 'Moves <by reason>', gridPos: { x: 0, y: 1, w: 12, h: 8 },
      fieldConfig: {
        defaults: { unit: 'short', decimals: 1, min: 0, custom: { drawStyle: 'bars', fillOpacity: 80, stacking: { mode: 'normal' } } },
        overrides: [
          { matcher: { id: 'byName', options: 'splits' }, properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: 'purple' } }] },
          { matcher: { id: 'byName', options: 'hidden' }, properties: [{ id: 'custom.hideFrom', value: { legend: true } }] },
        ],
      },
      options: { legend: { displayMode: 'table', placement: 'right', showLegend: true, calcs: ['sum'] } },
      targets: [target({ refId: 'A', expr: 'moves', legendFormat: '{{reason}}' }), target({ refId: 'B', expr: 'splits', legendFormat: 'splits' })],
    }
    const stat: Panel & Record<string, unknown> = {
      id: 3, type: 'stat', title: 'Settings', gridPos: { x: 12, y: 1, w: 12, h: 4 },
      fieldConfig: { defaults: { unit: 'short' } }, options: { textMode: 'value_and_name' },
      targets: [target({ refId: 'A', expr: 'setting', instant: true, legendFormat: '{{key}}' })],
    }
    const draining: Panel & Record<string, unknown> = {
      id: 6, type: 'stat', title: 'Draining', gridPos: { x: 0, y: 15, w: 4, h: 4 }, options: { colorMode: 'value' },
      fieldConfig: { defaults: { mappings: [{ type: 'value', options: { 0: { text: 'no' }, 1: { text: 'draining', color: 'orange' } } }, { type: 'range', options: { from: 5, to: null, result: { text: 'many' } } }] } },
      targets: [target({ refId: 'A', expr: 'draining', instant: true })],
    }
    const gauge: Panel & Record<string, unknown> = {
      id: 4, type: 'bargauge', title: 'Progress', gridPos: { x: 12, y: 5, w: 12, h: 4 },
      fieldConfig: { defaults: { unit: 'percentunit', min: 0, max: 1, decimals: 1 } },
      targets: [target({ refId: 'A', expr: 'done / total', instant: true, legendFormat: '{{job_id}}' })],
    }
    const nothing: Panel = { id: 5, type: 'timeseries', title: 'Never', gridPos: { x: 0, y: 9, w: 24, h: 6 }, targets: [{ refId: 'A', expr: 'never' }] }
    const board: Dashboard & Record<string, unknown> = {
      uid: 'made-up', title: 'Made up',
      panels: [{ id: 1, type: 'row', title: 'Top', gridPos: { x: 0, y: 0, w: 24, h: 1 } }, bars, stat, gauge, nothing, draining],
      annotations: { list: [{ name: 'Migrations', expr: 'm > 0', step: '10s', iconColor: 'orange', titleFormat: 'Migration ({{reason}})' } as Annotation] },
    }
    const q = (p: Panel, i: number, kind: 'range' | 'instant', result: PromResult): QueryRun => ({
      label: `${p.title}`, kind, expr: p.targets![i]!.expr!, startS: T, endS: T + 10, stepS: 1, panel: p, target: p.targets![i]!, result,
    })
    const run: DashboardRun = {
      vars: { host: 'b' },
      problems: [],
      runs: [
        q(bars, 0, 'range', matrix([[{ reason: 'drain' }, [1, 0, 2]], [{ reason: 'hidden' }, [0, 0, 0]]])),
        q(bars, 1, 'range', matrix([[{}, [1, null, 1]]])),
        q(stat, 0, 'instant', vector([[{ key: 'balancer.migrationThreshold' }, 3], [{ key: 'balancer.splitMinUnits' }, 1000]])),
        q(gauge, 0, 'instant', vector([[{ job_id: 'j1' }, 0.25]])),
        q(nothing, 0, 'range', matrix([])),
        q(draining, 0, 'instant', vector([[{ host: 'a' }, 1], [{ host: 'b' }, 0], [{ host: 'c' }, 7], [{ host: 'd' }, 3]])),
        { label: 'annotation', kind: 'range', expr: 'm > 0', startS: T, endS: T + 40, stepS: 10, annotation: board.annotations!.list![0]!, result: matrix([[{ reason: 'drain' }, [1, 1, null, 1]]], 10) },
      ],
    }
    const view = dashboardView(board, run, T * 1000, (T + 10) * 1000)
    const panel = (id: number): PanelView => view.panels.find((p) => p.id === id)!

    it('stacks bars on the ones before them, colours by palette or override and sums for the legend table', () => {
      const p = panel(2)
      if (p.kind !== 'timeseries') expect.fail(`panel 2 is a ${p.kind}`)
      expect(p.series.map((s) => s.name)).to.deep.equal(['drain', 'hidden', 'splits'])
      expect(p.stacked).to.equal(true)
      expect(p.series[2]!.drawn).to.deep.equal([2, null, 3])
      expect(p.series[2]!.color).to.equal('#B877D9')
      expect(p.series[0]!.legendValues).to.deep.equal(['3.0'])
      expect(p.series.map((s) => s.inLegend)).to.deep.equal([true, false, true])
      expect(p.left.min).to.equal(0)
      expect(p.left.max).to.be.at.least(3)
      expect(p.marks.map((m) => [m.t, m.title])).to.deep.equal([[T, 'Migration (drain)'], [T + 30, 'Migration (drain)']])
    })

    it('reduces stat and bar-gauge panels to their last values in the panel\'s unit', () => {
      const s = panel(3)
      if (s.kind !== 'stat') expect.fail(`panel 3 is a ${s.kind}`)
      expect(s.values.map((v) => [v.name, v.text])).to.deep.equal([['balancer.migrationThreshold', '3'], ['balancer.splitMinUnits', '1 K']])
      expect(s.showNames).to.equal(true)
      const g = panel(4)
      if (g.kind !== 'bargauge') expect.fail(`panel 4 is a ${g.kind}`)
      expect(g.bars).to.deep.equal([{ name: 'j1', ratio: 0.25, text: '25.0%' }])
    })

    it('writes a value through the panel\'s value mappings, exact values and ranges, with their colours', () => {
      const s = panel(6)
      if (s.kind !== 'stat') expect.fail(`panel 6 is a ${s.kind}`)
      expect(s.values.map((v) => [v.text, v.color])).to.deep.equal([['draining', '#FF9830'], ['no', '#CCCCDC'], ['many', '#CCCCDC'], ['3', '#CCCCDC']])
    })

    it('marks a panel without data as empty, and only that one', () => {
      expect(view.panels.filter((p) => p.empty).map((p) => p.title)).to.deep.equal(['Never'])
    })

    it('lays out each panel by its gridPos with its title, legend and values, escaped', () => {
      const page = dashboardPage(view, ASSETS, 1280, 'made up <data>')
      expect(page.height, 'the page ends below the lowest panel').to.be.greaterThan(box(nothing.gridPos!, 1280).top + box(nothing.gridPos!, 1280).height)
      const b = box(bars.gridPos!, 1280)
      expect(page.html).to.include(`left:${b.left}px;top:${b.top}px;width:${b.width}px;height:${b.height}px`)
      expect(b.height).to.equal(8 * GRID.cellPx + 7 * GRID.gapPx)
      expect(box({ x: 12, y: 0, w: 12, h: 1 }, 1280).left).to.equal(b.left + b.width + GRID.gapPx)
      expect(page.html).to.include('Moves &lt;by reason&gt;').and.not.include('Moves <by')
      expect(page.html).to.include('made up &lt;data&gt;')
      expect(page.html).to.include('>splits<').and.include('>drain<').and.not.include('>hidden<')
      expect(page.html).to.include('balancer.splitMinUnits').and.include('>1 K<')
      expect(page.html).to.include('>25.0%<')
      expect(page.html).to.include('No data')
      expect(page.html).to.include('Migration (drain) &times; 2')
      expect(page.html).to.include('<b>host</b>b')
      // The charts' data: only drawable panels, in JSON that no "<" can break out of.
      const json = /<script id="panels" type="application\/json">(.*?)<\/script>/s.exec(page.html)?.[1] ?? ''
      expect(json).not.to.include('<')
      expect((JSON.parse(json) as Array<{ id: number }>).map((c) => c.id)).to.deep.equal([2])
    })
  })
})
