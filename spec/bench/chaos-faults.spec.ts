/**
 * The chaos benchmark's pure parts: the seeded fault schedule (bench/support/chaos-faults.ts) must
 * repeat for a seed, honour its minimum counts and never plan faults that could take down a NATS
 * majority, all hosts or the only standby; and the audit (bench/support/chaos-audit.ts) must excuse
 * a "host dead" verdict only by a fault the benchmark caused.
 *
 * Must never start a process: these are the benchmark's decisions, tested without a cluster.
 */

import { expect } from 'chai'
import { chaosSchedule, countByKind, holdRange, LANE_OF, SETTLE_MS, type Fault, type ScheduleOptions } from '../../bench/support/chaos-faults.ts'
import { falseVerdicts, parseDeadVerdict, type HostFaultWindow } from '../../bench/support/chaos-audit.ts'

const FULL: ScheduleOptions = {
  windowMs: 80_000,
  hosts: ['h1', 'h2', 'h3', 'h4'],
  natsNodes: 3,
  hostDeadMs: 1000,
  leaseMs: 1000,
  min: { 'host-kill': 2, 'host-stop': 2, 'leader-kill': 2, 'leader-stop': 2, 'nats-kill': 2, 'nats-term': 2 },
  gapMs: [1000, 4000],
}

describe('chaos fault schedule', () => {
  it('is the same list for the same seed and a different one for another seed', () => {
    expect(chaosSchedule(7, FULL)).to.deep.equal(chaosSchedule(7, FULL))
    expect(chaosSchedule(7, FULL)).to.not.deep.equal(chaosSchedule(8, FULL))
  })

  it('schedules at least the minimum of every kind, sorted by start time, for many seeds', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const s = chaosSchedule(seed, FULL)
      const counts = countByKind(s)
      for (const [k, n] of Object.entries(FULL.min!)) expect(counts[k as keyof typeof counts], `seed ${seed} ${k}`).to.be.at.least(n)
      expect(s.map((f) => f.atMs)).to.deep.equal([...s.map((f) => f.atMs)].sort((a, b) => a - b))
    }
  })

  it('never overlaps two faults of one lane: the next starts after the hold and the recovery allowance', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const s = chaosSchedule(seed, FULL)
      for (const lane of ['host', 'balancer', 'nats'] as const) {
        const faults = s.filter((f) => f.lane === lane)
        for (let i = 1; i < faults.length; i++) {
          const prev = faults[i - 1]!
          expect(faults[i]!.atMs, `seed ${seed} ${lane} #${i}`).to.be.at.least(prev.atMs + prev.holdMs + SETTLE_MS[prev.kind] + FULL.gapMs[0])
        }
        for (const f of faults) expect(LANE_OF[f.kind]).to.equal(lane)
      }
    }
  })

  it('holds a stopped host past hostDeadMs and a stopped leader past its lease, within the hold ranges', () => {
    for (let seed = 1; seed <= 50; seed++) {
      for (const f of chaosSchedule(seed, FULL)) {
        const [lo, hi] = holdRange(f.kind, FULL)
        expect(f.holdMs, `${f.kind} hold`).to.be.within(lo, hi)
        if (f.kind === 'host-stop') expect(f.holdMs).to.be.greaterThan(FULL.hostDeadMs)
        if (f.kind === 'leader-stop') expect(f.holdMs).to.be.greaterThan(FULL.leaseMs)
      }
    }
  })

  it('only faults hosts that are alive then, and names each replacement once', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const live = new Set(FULL.hosts)
      const named = new Set(FULL.hosts)
      for (const f of chaosSchedule(seed, FULL)) {
        if (f.kind !== 'host-kill' && f.kind !== 'host-stop') continue
        expect(live.has(f.host), `seed ${seed}: ${f.kind} ${f.host} is alive`).to.equal(true)
        if (f.kind === 'host-kill') {
          expect(named.has(f.replacement), `seed ${seed}: ${f.replacement} is new`).to.equal(false)
          live.delete(f.host)
          live.add(f.replacement)
          named.add(f.replacement)
        }
      }
      expect(live.size).to.equal(FULL.hosts.length)
    }
  })

  it('targets NATS node indexes that exist, or the shares-stream leader', () => {
    const nodes = chaosSchedule(3, FULL).flatMap((f) => (f.kind === 'nats-kill' || f.kind === 'nats-term' ? [f.node] : []))
    expect(nodes.length).to.be.at.least(4)
    for (const n of nodes) if (n !== 'shares-leader') expect(n).to.be.oneOf([0, 1, 2])
  })

  it('schedules exactly the mandatory faults when the window is shorter than any second fault (the smoke run)', () => {
    const smoke: ScheduleOptions = { ...FULL, windowMs: 3000, gapMs: [300, 1000], min: { 'host-kill': 1, 'host-stop': 1, 'leader-kill': 1, 'nats-kill': 1 } }
    for (let seed = 1; seed <= 20; seed++) {
      const counts = countByKind(chaosSchedule(seed, smoke))
      expect(counts).to.deep.equal({ 'host-kill': 1, 'host-stop': 1, 'leader-kill': 1, 'leader-stop': 0, 'nats-kill': 1, 'nats-term': 0 })
    }
  })

  it('plans no NATS fault without NATS nodes to fault, and refuses a NATS minimum then', () => {
    const single = { ...FULL, natsNodes: 0, min: { 'host-kill': 1, 'leader-kill': 1 } }
    expect(chaosSchedule(1, single).filter((f: Fault) => f.lane === 'nats')).to.deep.equal([])
    expect(() => chaosSchedule(1, { ...single, min: { 'nats-kill': 1 } })).to.throw(/min.nats-kill must be 0 when there are no NATS nodes/)
  })

  it('refuses options that cannot give a safe schedule, naming the option', () => {
    expect(() => chaosSchedule(1, { ...FULL, hosts: ['h1'] })).to.throw(/hosts must be at least 2 host ids/)
    expect(() => chaosSchedule(1, { ...FULL, natsNodes: 2 })).to.throw(/natsNodes must be 0 .* or at least 3/)
    expect(() => chaosSchedule(1, { ...FULL, windowMs: 0 })).to.throw(/windowMs must be a positive number/)
    expect(() => chaosSchedule(1, { ...FULL, gapMs: [5, 1] })).to.throw(/gapMs must be/)
  })
})

describe('chaos audit of "host dead" verdicts', () => {
  const line = (host: string, time: number): string => JSON.stringify({ level: 30, time, pid: 1, balancer: 'b1', host, from: 'suspect', to: 'dead', msg: 'host dead' })

  it('reads a verdict from a balancer log line and ignores other lines', () => {
    expect(parseDeadVerdict('b1', line('h2', 1000))).to.deep.equal({ balancer: 'b1', host: 'h2', from: 'suspect', at: 1000 })
    expect(parseDeadVerdict('b1', JSON.stringify({ time: 1, host: 'h2', from: 'alive', to: 'suspect', msg: 'host suspect' }))).to.equal(undefined)
    expect(parseDeadVerdict('b1', 'not json "dead"')).to.equal(undefined)
  })

  it('excuses a verdict only after a kill, or during a stop and within hostDeadMs after it', () => {
    const windows: HostFaultWindow[] = [
      { host: 'h1', kind: 'kill', from: 1000 },
      { host: 'h2', kind: 'stop', from: 2000, to: 4000 },
    ]
    const v = (host: string, at: number) => parseDeadVerdict('b2', line(host, at))!
    const all = [v('h1', 999), v('h1', 60_000), v('h2', 1999), v('h2', 3000), v('h2', 5000), v('h2', 5001), v('h3', 3000)]
    expect(falseVerdicts(all, windows, 1000).map((x) => `${x.host}@${x.at}`)).to.deep.equal(['h1@999', 'h2@1999', 'h2@5001', 'h3@3000'])
  })
})
