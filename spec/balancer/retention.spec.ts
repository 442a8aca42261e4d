/** Which finished jobs the balancer forgets (jobs.retainMs): plain records, no clock. */

import { expect } from 'chai'
import { expiredJobs } from '../../lib/balancer/retention.ts'

describe('job retention', () => {
  const now = 1_000_000
  it('forgets finished jobs once retainMs has passed since they finished, and nothing else', () => {
    const jobs = [
      { jobId: 'done-old', state: 'completed' as const, finishedAt: now - 5000 },
      { jobId: 'done-now', state: 'completed' as const, finishedAt: now - 4999 },
      { jobId: 'failed-old', state: 'failed' as const, finishedAt: now - 6000 },
      { jobId: 'cancelled-at-edge', state: 'cancelled' as const, finishedAt: now - 5000 },
      { jobId: 'running', state: 'running' as const, finishedAt: undefined },
      { jobId: 'waiting', state: 'waiting' as const, finishedAt: undefined },
      { jobId: 'no-time', state: 'completed' as const, finishedAt: undefined },
    ]
    expect(expiredJobs(jobs, now, 5000)).to.deep.equal(['done-old', 'failed-old', 'cancelled-at-edge'])
    expect(expiredJobs(jobs, now, 10_000)).to.deep.equal([])
  })
})
