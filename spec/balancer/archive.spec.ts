/** The index of finished jobs out of memory (archive.ts): plain data, no store, no clock. */

import { expect } from 'chai'
import { Archive, recordRetention, shareIdsOf } from '../../lib/balancer/archive.ts'

describe('archive of finished jobs out of memory', () => {
  it('takes out the jobs whose records are past the retention, oldest first, and keeps the rest', () => {
    const a = new Archive()
    // A batch in any order; jobs without a finish time are never archived.
    a.add([
      { jobId: 'b', finishedAt: 2_000, nextShare: 2 },
      { jobId: 'a', finishedAt: 1_000, nextShare: 1 },
      { jobId: 'untimed', finishedAt: undefined, nextShare: 1 },
    ])
    a.add([{ jobId: 'c', finishedAt: 3_000, nextShare: 4 }])
    expect(a.size).to.equal(3)
    expect(a.has('untimed')).to.equal(false)
    expect(a.takeExpired(5_999, 4_000)).to.deep.equal([
      { jobId: 'a', finishedAt: 1_000, nextShare: 1 },
    ])
    expect(a.takeExpired(7_000, 4_000).map((x) => x.jobId)).to.deep.equal(['b', 'c'])
    expect(a.size).to.equal(0)
    expect(a.takeExpired(1e9, 0)).to.deep.equal([])
  })

  it('forgets a job whose id is taken again', () => {
    const a = new Archive()
    a.add([{ jobId: 'x', finishedAt: 1, nextShare: 3 }])
    expect(a.get('x')).to.deep.equal({ finishedAt: 1, nextShare: 3 })
    a.delete('x')
    expect(a.has('x')).to.equal(false)
    expect(a.takeExpired(1e9, 0)).to.deep.equal([])
  })

  it('keeps records a day unless told otherwise, and never less than memory keeps the job', () => {
    expect(recordRetention({ retainMs: 300_000 })).to.equal(86_400_000)
    expect(recordRetention({ retainMs: 2 * 86_400_000 })).to.equal(2 * 86_400_000)
    expect(recordRetention({ retainMs: 1_000, recordRetainMs: 5_000 })).to.equal(5_000)
  })

  it('names every share record a job may have, splits included', () => {
    expect(shareIdsOf('j', 3)).to.deep.equal(['j-s0', 'j-s1', 'j-s2'])
    expect(shareIdsOf('j', 0)).to.deep.equal([])
  })
})
