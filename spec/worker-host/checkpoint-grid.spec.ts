/**
 * The host's checkpoint grid (lib/worker-host/checkpoint-grid.ts), on plain numbers: the first due
 * time is the one grid point within a period after the start, whatever side of the start the
 * anchor lies, and a fleet's anchors spread over the period.
 */

import { expect } from 'chai'
import { hostCheckpointAnchor, nextCheckpointDue } from '../../lib/worker-host/checkpoint-grid.ts'

describe('checkpoint grid', () => {
  it('gives the one grid point in (after, after + period], for anchors before, after and at the start', () => {
    const period = 1000
    for (const anchor of [0, 250.5, 1_733_000_000_123.25, 5_000, -7_300, 1_733_000_000_000]) {
      for (const after of [0, 1, 999.75, 1000, 4_321.5, 1_733_000_000_500.5, 1_733_000_000_123.25]) {
        const due = nextCheckpointDue(after, anchor, period)
        expect(due, `anchor ${anchor}, after ${after}`).to.be.greaterThan(after)
        expect(due - after, `anchor ${anchor}, after ${after}`).to.be.at.most(period)
        const k = (due - anchor) / period
        expect(Math.abs(k - Math.round(k)), `anchor ${anchor}, after ${after}: on the grid`).to.be.below(1e-6)
      }
    }
  })

  it('gives a start on a grid point the next one, a full period later', () => {
    expect(nextCheckpointDue(3000, 1000, 1000)).to.equal(4000)
    expect(nextCheckpointDue(3000.001, 1000, 1000)).to.be.closeTo(4000, 1e-9)
  })

  it('lets shares that start at different times of one host be due together', () => {
    const anchor = 1_733_000_000_040
    const dues = [1_733_000_000_100, 1_733_000_000_530, 1_733_000_000_900].map((t) => nextCheckpointDue(t, anchor, 1000))
    expect(new Set(dues)).to.deep.equal(new Set([1_733_000_001_040]))
  })

  it('anchors a host at a phase within one period of now, as its random draw says', () => {
    expect(hostCheckpointAnchor(10_000, 1000, () => 0)).to.equal(10_000)
    expect(hostCheckpointAnchor(10_000, 1000, () => 0.25)).to.equal(10_250)
    const phases = Array.from({ length: 2000 }, () => (hostCheckpointAnchor(0, 1000) % 1000) / 1000)
    // Spread over the period: every tenth of it holds some of 2,000 hosts' phases.
    const tenths = new Set(phases.map((p) => Math.floor(p * 10)))
    expect(tenths.size).to.equal(10)
  })
})
