/*
 * Runs inside the page that page.ts builds (a classic script, inlined after uPlot): draws each
 * time-series panel with uPlot from the JSON in <script id="panels">, which panel-view.ts has
 * already computed — values (stacked where the panel stacks), colours, axis ticks and their
 * labels, threshold lines and annotation marks. uPlot is what Grafana's own time-series panel is
 * built on, so lines, bars and bands come out as Grafana draws them.
 *
 * Must never decide what is shown (no units, no names, no sums here: those are tested in
 * TypeScript), and must never load anything from the network.
 */
/* global uPlot */
(function () {
  'use strict'
  var TEXT = '#ccccdc'
  var GRID = 'rgba(204, 204, 220, 0.12)'
  var FONT = '11px "Liberation Sans", "DejaVu Sans", sans-serif'
  var hms = uPlot.fmtDate('{HH}:{mm}:{ss}')
  var panels = JSON.parse(document.getElementById('panels').textContent)

  function axisSize(labels) {
    var longest = 0
    for (var i = 0; i < labels.length; i++) longest = Math.max(longest, labels[i].length)
    return 14 + longest * 6.5
  }

  function yAxis(a, scale, side) {
    return {
      scale: scale,
      side: side,
      stroke: TEXT,
      font: FONT,
      size: axisSize(a.labels),
      grid: { show: side === 3, stroke: GRID, width: 1 },
      ticks: { show: false },
      splits: function () { return a.ticks },
      values: function () { return a.labels },
    }
  }

  // Vertical lines for annotations, dashed horizontal lines for thresholds: what Grafana draws over a panel.
  function overlay(p) {
    return function (u) {
      var ctx = u.ctx
      var top = u.bbox.top
      var bottom = u.bbox.top + u.bbox.height
      var left = u.bbox.left
      var right = u.bbox.left + u.bbox.width
      ctx.save()
      ctx.lineWidth = 1 * devicePixelRatio
      ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio])
      p.thresholds.forEach(function (t) {
        if (t.value < p.left.min || t.value > p.left.max) return
        var y = Math.round(u.valToPos(t.value, 'y', true)) + 0.5
        ctx.strokeStyle = t.color
        ctx.beginPath()
        ctx.moveTo(left, y)
        ctx.lineTo(right, y)
        ctx.stroke()
      })
      p.marks.forEach(function (m) {
        if (m.t < p.fromS || m.t > p.toS) return
        var x = Math.round(u.valToPos(m.t, 'x', true)) + 0.5
        ctx.strokeStyle = m.color
        ctx.beginPath()
        ctx.moveTo(x, top)
        ctx.lineTo(x, bottom)
        ctx.stroke()
        ctx.setLineDash([])
        ctx.fillStyle = m.color
        ctx.beginPath()
        ctx.moveTo(x - 4 * devicePixelRatio, bottom + 6 * devicePixelRatio)
        ctx.lineTo(x + 4 * devicePixelRatio, bottom + 6 * devicePixelRatio)
        ctx.lineTo(x, bottom)
        ctx.fill()
        ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio])
      })
      ctx.restore()
    }
  }

  // A value between two gaps draws no line: show it as a point, as Grafana's "auto" points do.
  function isolated(u, si, show) {
    if (show) return null
    var d = u.data[si]
    var idxs = []
    for (var i = 0; i < d.length; i++) {
      if (d[i] != null && (i === 0 || d[i - 1] == null) && (i === d.length - 1 || d[i + 1] == null)) idxs.push(i)
    }
    return idxs.length ? idxs : null
  }

  function draw(p) {
    var el = document.getElementById('chart-' + p.id)
    // A stack is painted from its top down, so each lower series covers the part of the ones above it.
    var order = p.series.map(function (s, i) { return i })
    if (p.stacked) order.reverse()
    var index = {}
    order.forEach(function (i, k) { index[p.series[i].name] = k + 1 })
    var bars = uPlot.paths.bars({ size: [0.6, 60] })
    var series = [{}]
    var data = [p.x]
    var bands = []
    order.forEach(function (i) {
      var s = p.series[i]
      var below = s.fillBelowTo !== undefined && index[s.fillBelowTo] !== undefined
      series.push({
        label: s.name,
        scale: s.axis === 'right' ? 'y2' : 'y',
        stroke: s.lineWidth > 0 || s.drawStyle !== 'line' ? s.color : 'transparent',
        width: s.drawStyle === 'bars' ? 1 : s.lineWidth,
        dash: s.dash,
        // A band is filled by the band, not down to zero by the series.
        fill: below ? undefined : s.fill,
        paths: s.drawStyle === 'bars' ? bars : s.drawStyle === 'points' ? function () { return null } : undefined,
        points: s.drawStyle === 'points'
          ? { show: true, size: s.pointSize, fill: s.color, stroke: s.color }
          : { show: s.drawStyle === 'line' && s.lineWidth > 0 && p.x.length < 40, size: 4, fill: s.color, stroke: s.color, filter: s.drawStyle === 'line' && s.lineWidth > 0 ? isolated : null },
        spanGaps: false,
      })
      data.push(s.drawn)
      if (below) bands.push({ series: [index[s.name], index[s.fillBelowTo]], fill: s.fill })
    })
    var scales = { x: { time: true, range: [p.fromS, p.toS] }, y: { range: [p.left.min, p.left.max] } }
    var axes = [
      {
        stroke: TEXT,
        font: FONT,
        grid: { stroke: GRID, width: 1 },
        ticks: { show: false },
        space: 70,
        size: 28,
        // One line of 24-hour UTC clock time (the page's header says UTC), not uPlot's two-line default.
        values: function (u, splits) { return splits.map(function (s) { return hms(new Date(s * 1000)) }) },
      },
      yAxis(p.left, 'y', 3),
    ]
    if (p.right) {
      scales.y2 = { range: [p.right.min, p.right.max] }
      axes.push(yAxis(p.right, 'y2', 1))
    }
    new uPlot({
      width: el.clientWidth,
      height: el.clientHeight,
      legend: { show: false },
      cursor: { show: false },
      scales: scales,
      axes: axes,
      series: series,
      bands: bands,
      // Room on the right for the last time label, which uPlot centres on its tick.
      padding: [8, 24, 0, 0],
      hooks: { draw: [overlay(p)] },
    }, data, el)
  }

  panels.forEach(draw)
  document.body.setAttribute('data-drawn', String(panels.length))
})()
