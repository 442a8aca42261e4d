/**
 * `CheckpointPace` (lib/worker-host/checkpoint-pace.ts): how late each durable checkpoint was, and
 * the lead the host gives its shares — the longest taken → durable delay of the last few.
 *
 * Must never use timers: times are plain numbers.
 */
import { expect } from 'chai'
import { CheckpointPace, LEAD_WINDOW } from '../../lib/worker-host/checkpoint-pace.ts'

function pace() {
  const lateness: number[] = []
  const leads: number[] = []
  const p = new CheckpointPace({ lateness: (ms) => lateness.push(ms), lead: (ms) => leads.push(ms) })
  return { p, lateness, leads }
}

describe('checkpoint pace', () => {
  it('reports each periodic checkpoint\'s lateness against its due time (negative: early)', () => {
    const { p, lateness } = pace()
    p.durable({ dueAt: 1000, takenAt: 990 }, 1004)
    p.durable({ dueAt: 2000, takenAt: 1980 }, 1995)
    expect(lateness).to.deep.equal([4, -5])
  })

  it('leads by the longest taken → durable delay of the last checkpoints, and forgets older ones', () => {
    const { p, leads } = pace()
    p.durable({ dueAt: 1000, takenAt: 1000 }, 1040)
    expect(p.lead).to.equal(40)
    for (let i = 1; i <= LEAD_WINDOW; i++) p.durable({ dueAt: 1000 + i * 1000, takenAt: 1000 + i * 1000 }, 1000 + i * 1000 + 10)
    expect(p.lead).to.equal(10)
    expect(leads).to.deep.equal([40, 10])
  })

  it('ignores checkpoints without times (the one a share resumed from) and times that are not finite', () => {
    const { p, lateness, leads } = pace()
    p.durable({}, 5)
    p.durable({ dueAt: Number.NaN, takenAt: 1 }, 5)
    expect(lateness).to.deep.equal([])
    expect(leads).to.deep.equal([])
    expect(p.lead).to.equal(0)
  })
})
