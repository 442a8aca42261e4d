/** A job completes only from shares that tile its range exactly (completion.ts `rangeGap`). */

import { expect } from 'chai'
import { rangeGap } from '../../lib/balancer/completion.ts'

describe('a job\'s shares tile its range', () => {
  const job = { from: 0, to: 100 }
  it('finds none for shares that tile it, a share cut to nothing included', () => {
    expect(rangeGap(job, [{ from: 0, to: 40 }, { from: 40, to: 40 }, { from: 40, to: 100 }])).to.equal(undefined)
  })
  it('names a hole, an overlap, a short end and an overrun', () => {
    expect(rangeGap(job, [{ from: 0, to: 40 }, { from: 50, to: 100 }])).to.equal('[40, 50) has no share')
    expect(rangeGap(job, [{ from: 0, to: 60 }, { from: 50, to: 100 }])).to.equal('[50, 60) is in two shares')
    expect(rangeGap(job, [{ from: 0, to: 90 }])).to.equal('[90, 100) has no share')
    expect(rangeGap(job, [{ from: 0, to: 110 }])).to.equal('[100, 110) is past the range')
    expect(rangeGap(job, [{ from: 10, to: 100 }])).to.equal('[0, 10) has no share')
  })
})
