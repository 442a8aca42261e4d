/**
 * The smoothed loads the policy acts on (issue 9): `LoadSignal` (median level and successive-
 * difference noise), `externalDemand` (what other work wants, inferred on saturated CPUs) and
 * `LoadHistory` (one signal per host and per running share, fed by heartbeats).
 *
 * Must never use timers or the clock: samples carry their own times.
 */
import { expect } from 'chai'
import { externalDemand, MAX_EXTERNAL_DEMAND } from '../../lib/balancer/core/external-demand.ts'
import { LoadHistory } from '../../lib/balancer/core/load-history.ts'
import { LoadSignal, median, NOISE_PRIOR } from '../../lib/balancer/core/load-signal.ts'
import { seededRng } from '../../bench/sim/rng.ts'

const HB = 250

/** Feeds `xs` one heartbeat apart from `t0`; returns the time of the last. */
function feed(sig: LoadSignal, xs: readonly number[], t0 = 0): number {
  xs.forEach((x, i) => sig.add(t0 + i * HB, x))
  return t0 + (xs.length - 1) * HB
}

describe('smoothed loads', () => {
  describe('LoadSignal', () => {
    it('makes its reading when a sample arrives: reads between samples cost nothing and agree', () => {
      const sig = new LoadSignal(1000)
      expect(sig.read()).to.deep.equal({ level: 0, noise: NOISE_PRIOR, samples: 0 })
      feed(sig, [0.3, 0.1, 0.2])
      const first = sig.read()
      // A balancing pass reads every running share's signal: the same reading, not a new median.
      expect(sig.read()).to.equal(first)
      expect(first).to.deep.include({ level: 0.2, samples: 3 })
      sig.add(10_000, 0.9)
      expect(sig.read()).to.not.equal(first)
      expect(sig.read().level).to.equal(0.9)
    })

    it('ignores a burst shorter than half its window', () => {
      const sig = new LoadSignal(1000)
      feed(sig, [0.1, 0.1, 0.1, 0.1, 0.9])
      expect(sig.read().level).to.be.closeTo(0.1, 1e-12)
    })

    it('follows a lasting step once it fills most of the window (3 of 4 heartbeats)', () => {
      const sig = new LoadSignal(1000)
      const t = feed(sig, [0, 0, 0, 0, 0, 1, 1])
      expect(sig.read().level).to.be.closeTo(0.5, 1e-12)
      sig.add(t + HB, 1)
      expect(sig.read().level).to.equal(1)
    })

    it('reads a step as a level change, not as lasting noise', () => {
      const sig = new LoadSignal(1000)
      const t = feed(sig, Array.from({ length: 40 }, () => 0))
      const quiet = sig.read().noise
      feed(sig, [1, 1, 1, 1], t + HB)
      // One jump of 1 in successive differences, averaged over five windows (20 heartbeats).
      expect(sig.read().noise - quiet).to.be.within(0.02, 0.06)
    })

    it('estimates the standard deviation of jittery samples', () => {
      const rng = seededRng(5)
      const sig = new LoadSignal(1000)
      // Uniform on [0.2 − 0.1√3, 0.2 + 0.1√3]: standard deviation 0.1.
      const xs = Array.from({ length: 2000 }, () => 0.2 + (rng() * 2 - 1) * 0.1 * Math.sqrt(3))
      feed(sig, xs)
      const r = sig.read()
      expect(r.noise).to.be.within(0.08, 0.12)
      expect(r.level).to.be.within(0.1, 0.3)
    })

    it('starts from a prior noise and forgets it on a quiet host', () => {
      const sig = new LoadSignal(1000)
      sig.add(0, 0)
      expect(sig.read().noise).to.be.closeTo(NOISE_PRIOR, 1e-12)
      feed(sig, Array.from({ length: 200 }, () => 0), HB)
      expect(sig.read().noise).to.be.below(NOISE_PRIOR / 100)
    })

    it('with a window of 0, reads the last sample alone', () => {
      const sig = new LoadSignal(0)
      feed(sig, [0.5, 0.1, 0.7])
      expect(sig.read()).to.include({ level: 0.7, samples: 1 })
    })

    it('ignores non-finite samples and time going back', () => {
      const sig = new LoadSignal(1000)
      sig.add(1000, 0.2)
      sig.add(1250, Number.NaN)
      sig.add(500, 0.9)
      sig.add(Number.NaN, 0.9)
      expect(sig.read()).to.include({ level: 0.2, samples: 1 })
    })

    it('takes a new window at the next sample', () => {
      const sig = new LoadSignal(2000)
      const t = feed(sig, [0, 0, 0, 0, 1, 1, 1])
      expect(sig.read().level).to.equal(0)
      sig.setWindow(500)
      sig.add(t + HB, 1)
      expect(sig.read()).to.include({ level: 1, samples: 2 })
    })

    it('median: middle value, mean of the middle two, 0 for none', () => {
      expect(median([3, 1, 2])).to.equal(2)
      expect(median([4, 1, 3, 2])).to.equal(2.5)
      expect(median([])).to.equal(0)
    })
  })

  describe('externalDemand', () => {
    it('on CPUs with room to spare, is what other work got', () => {
      expect(externalDemand({ cpuMachine: 0.6, cpuShoal: 0.5 }, 2, 1)).to.be.closeTo(0.1, 1e-12)
    })

    it('on a saturated core shared with one share, infers a whole core for a busy loop that got half', () => {
      expect(externalDemand({ cpuMachine: 1, cpuShoal: 0.5 }, 1, 1)).to.be.closeTo(1, 1e-12)
    })

    it('reads no external demand on a core that two shares share', () => {
      expect(externalDemand({ cpuMachine: 1, cpuShoal: 1 }, 1, 2)).to.equal(0)
    })

    it('never reads less than what other work got, nor more than the ceiling', () => {
      // 2 cores, a share using one and a hog the other: nothing contended, 1 core of 2 external.
      expect(externalDemand({ cpuMachine: 1, cpuShoal: 0.5 }, 2, 1)).to.be.closeTo(0.5, 1e-12)
      expect(externalDemand({ cpuMachine: 1, cpuShoal: 0 }, 1, 1)).to.equal(MAX_EXTERNAL_DEMAND)
      expect(externalDemand({ cpuMachine: 1, cpuShoal: 0.01 }, 1, 1)).to.equal(MAX_EXTERNAL_DEMAND)
    })

    it('treats figures out of range as their nearest valid value', () => {
      expect(externalDemand({ cpuMachine: Number.NaN, cpuShoal: 0.2 }, 1, 1)).to.equal(0)
      expect(externalDemand({ cpuMachine: 1.3, cpuShoal: -1 }, 1, 0)).to.equal(1)
    })
  })

  describe('LoadHistory', () => {
    const cpu = (cpuMachine: number, cpuShoal: number) => ({ cpuMachine, cpuShoal })

    it('smooths a host\'s external demand over its heartbeats', () => {
      const h = new LoadHistory(1000)
      ;[0.1, 0.1, 0.9, 0.1].forEach((x, i) => h.observe(i * HB, 'a', 1, cpu(x, 0), []))
      expect(h.external('a')?.level).to.be.closeTo(0.1, 1e-12)
      expect(h.external('b')).to.equal(undefined)
    })

    it('infers a hog from the shares\' demand, counting unmeasured shares as one core and finished ones as none', () => {
      const h = new LoadHistory(1000)
      h.observe(0, 'a', 1, cpu(1, 0.5), [{ shareId: 's', epoch: 1 }, { shareId: 'f', epoch: 1, busy: 1, finished: true }])
      expect(h.external('a')?.level).to.be.closeTo(1, 1e-12)
      expect(h.shareDemand('a', 's', 1)).to.equal(undefined)
    })

    it('keeps a share\'s demand per epoch and drops shares no longer reported', () => {
      const h = new LoadHistory(1000)
      h.observe(0, 'a', 2, cpu(0.5, 0.5), [{ shareId: 's', epoch: 1, busy: 0.4 }])
      expect(h.shareDemand('a', 's', 1)?.level).to.be.closeTo(0.4, 1e-12)
      expect(h.shareDemand('a', 's', 2)).to.equal(undefined)
      h.observe(HB, 'a', 2, cpu(0.5, 0.5), [{ shareId: 's', epoch: 2, busy: 0.9 }])
      expect(h.shareDemand('a', 's', 2)).to.include({ level: 0.9, samples: 1 })
      h.observe(2 * HB, 'a', 2, cpu(0, 0), [])
      expect(h.shareDemand('a', 's', 2)).to.equal(undefined)
    })

    it('forgets a host', () => {
      const h = new LoadHistory(1000)
      h.observe(0, 'a', 1, cpu(0.2, 0), [])
      h.forgetHost('a')
      expect(h.external('a')).to.equal(undefined)
    })
  })
})
