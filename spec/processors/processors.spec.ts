/**
 * The built-in processors called directly (no worker threads): exact answers, and the property the
 * runtime relies on — a share's result does not depend on how its range was cut into steps or
 * split into shares.
 *
 * Must never depend on timing.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import countPrimes, { countPrimesInRange } from '../../lib/processors/count-primes.ts'
import cpuBurn, { burnUnit } from '../../lib/processors/cpu-burn.ts'
import type { AnyProcessor } from '../../lib/processors/define.ts'

/** Runs a processor over `[from, to)` in steps cut at `cuts`, as the runtime would. */
function runSteps(p: AnyProcessor, input: unknown, from: number, to: number, cuts: number[] = []): unknown {
  let state = p.init(input, [from, to])
  let pos = from
  for (const c of [...cuts.filter((c) => c > from && c < to).sort((x, y) => x - y), to]) {
    state = p.step(state, pos, c, input)
    pos = c
  }
  return p.result(state, input)
}

function isPrimeByTrialDivision(n: number): boolean {
  if (n < 2) return false
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false
  return true
}

describe('count-primes', () => {
  it('knows π(10) = 4, π(100) = 25, π(2·10⁶) = 148,933 and π(10⁷) = 664,579', () => {
    expect(countPrimesInRange(0, 10)).to.equal(4)
    expect(countPrimesInRange(0, 100)).to.equal(25)
    expect(runSteps(countPrimes, {}, 0, 2_000_000)).to.equal(148_933)
    expect(runSteps(countPrimes, {}, 0, 10_000_000)).to.equal(664_579)
  })

  it('knows π(10⁸) = 5,761,455', function () {
    this.slow(1000)
    expect(countPrimesInRange(0, 1e8)).to.equal(5_761_455)
  })

  it('agrees with trial division on any small range', () => {
    fc.assert(
      fc.property(fc.nat(20_000), fc.nat(3000), (from, len) => {
        let expected = 0
        for (let i = from; i < from + len; i++) if (isPrimeByTrialDivision(i)) expected++
        expect(countPrimesInRange(from, from + len)).to.equal(expected)
      }),
      { numRuns: 200 },
    )
  })

  it('counts the same however the range is cut into steps and shares', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 299_999 }), { maxLength: 12 }), (cuts) => {
        expect(runSteps(countPrimes, {}, 0, 300_000, cuts)).to.equal(25_997)
        const mid = cuts[0] ?? 150_000
        const merged = countPrimes.merge(runSteps(countPrimes, {}, 0, mid) as number, runSteps(countPrimes, {}, mid, 300_000) as number, {})
        expect(merged).to.equal(25_997)
      }),
      { numRuns: 50 },
    )
  })

  it('handles ranges far above the base primes it has seen so far', () => {
    // 10¹¹ needs base primes up to 316,228: the cache must grow, not answer from a short list.
    let expected = 0
    for (let i = 1e11; i < 1e11 + 2000; i++) if (isPrimeByTrialDivision(i)) expected++
    expect(expected).to.be.greaterThan(50)
    expect(countPrimesInRange(1e11, 1e11 + 2000)).to.equal(expected)
  })

  it('starts with a sensible step size and ignores its input', () => {
    expect(countPrimes.initialStepUnits).to.equal(65536)
    expect(runSteps(countPrimes, { anything: true }, 0, 100)).to.equal(25)
  })
})

describe('cpu-burn', () => {
  it('is pinned: the checksum of units 0..9 at 100 rounds never changes', () => {
    expect(runSteps(cpuBurn, { workPerUnit: 100 }, 0, 10)).to.equal(3_313_280_175)
  })

  it('gives the checksum of a direct loop, however the range is cut and merged', () => {
    const work = 500
    let direct = 0
    for (let i = 0; i < 2000; i++) direct = (direct + burnUnit(i, work)) >>> 0
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1999 }), { maxLength: 8 }), fc.integer({ min: 1, max: 1999 }), (cuts, mid) => {
        const input = { workPerUnit: work }
        expect(runSteps(cpuBurn, input, 0, 2000, cuts)).to.equal(direct)
        const merged = cpuBurn.merge(runSteps(cpuBurn, input, 0, mid) as number, runSteps(cpuBurn, input, mid, 2000) as number, input)
        expect(merged).to.equal(direct)
      }),
      { numRuns: 20 },
    )
  })

  it('uses 20,000 rounds per unit by default and keeps a uint32 checksum', () => {
    let direct = 0
    for (let i = 0; i < 5; i++) direct = (direct + burnUnit(i, 20_000)) >>> 0
    expect(runSteps(cpuBurn, {}, 0, 5)).to.equal(direct)
    expect(cpuBurn.merge(0xffff_ffff, 2, {})).to.equal(1)
  })

  it('hashes units above 2³² differently from their low 32 bits', () => {
    expect(burnUnit(2 ** 32 + 7, 10)).to.not.equal(burnUnit(7, 10))
  })

  it('accepts an empty or valid input and rejects a bad workPerUnit with a message naming it', () => {
    const validate: (x: unknown) => void = cpuBurn.validateInput!.bind(cpuBurn)
    for (const ok of [undefined, {}, { workPerUnit: 1 }, { workPerUnit: 20_000 }]) expect(() => validate(ok)).to.not.throw()
    for (const bad of [{ workPerUnit: 0 }, { workPerUnit: 1.5 }, { workPerUnit: '9' }, { workPerUnit: 1e12 }]) {
      expect(() => validate(bad)).to.throw(/workPerUnit/)
    }
    expect(() => validate(42)).to.throw(/object/)
  })
})
