/**
 * Behaviour of lib/balancer/core/split-range.ts: a job's range [from, to) is cut into contiguous,
 * disjoint, near-equal share ranges that cover it exactly, capped by minUnits, with a property
 * test over arbitrary ranges (positions up to 2^53-1), share counts and minimum sizes.
 *
 * Must never use timers, the clock or randomness outside fast-check.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { splitRange } from '../../lib/balancer/core/split-range.ts'

const MAX = Number.MAX_SAFE_INTEGER

/** Fails unless `ranges` tile [from, to) exactly, in order, with no empty range. */
function expectTiles(ranges: Array<[number, number]>, from: number, to: number): void {
  expect(ranges.length).to.be.greaterThan(0)
  expect(ranges[0]![0]).to.equal(from)
  expect(ranges[ranges.length - 1]![1]).to.equal(to)
  ranges.forEach(([a, b], i) => {
    expect(b, `range ${i} is non-empty`).to.be.greaterThan(a)
    if (i > 0) expect(a, `range ${i} starts where range ${i - 1} ends`).to.equal(ranges[i - 1]![1])
  })
}

const sizes = (ranges: Array<[number, number]>): number[] => ranges.map(([a, b]) => b - a)

describe('balancer splitRange', () => {
  it('cuts [0, 2e6) into 12 contiguous shares of sizes differing by at most 1', () => {
    const r = splitRange(0, 2_000_000, 12)
    expect(r).to.have.length(12)
    expectTiles(r, 0, 2_000_000)
    const s = sizes(r)
    expect(Math.max(...s) - Math.min(...s)).to.be.at.most(1)
    expect(s.reduce((x, y) => x + y, 0)).to.equal(2_000_000)
  })

  it('gives the extra units to the first ranges when the count does not divide', () => {
    expect(splitRange(0, 10, 3)).to.deep.equal([
      [0, 4],
      [4, 7],
      [7, 10],
    ])
    expect(splitRange(100, 105, 2)).to.deep.equal([
      [100, 103],
      [103, 105],
    ])
  })

  it('caps the number of ranges at units / minUnits', () => {
    expect(splitRange(0, 10, 100, 3)).to.deep.equal([
      [0, 4],
      [4, 7],
      [7, 10],
    ])
  })

  it('caps the number of ranges at the number of units', () => {
    const r = splitRange(0, 5, 10)
    expect(r).to.have.length(5)
    expect(sizes(r)).to.deep.equal([1, 1, 1, 1, 1])
  })

  it('returns one range when minUnits is larger than the whole range', () => {
    expect(splitRange(3, 7, 4, 100)).to.deep.equal([[3, 7]])
  })

  it('returns one range when asked for fewer than one', () => {
    expect(splitRange(0, 10, 0)).to.deep.equal([[0, 10]])
    expect(splitRange(0, 10, -3)).to.deep.equal([[0, 10]])
  })

  it('rounds a fractional share count down', () => {
    expect(splitRange(0, 10, 2.9)).to.have.length(2)
  })

  it('treats a minUnits below 1 as 1', () => {
    expect(splitRange(0, 4, 8, 0)).to.have.length(4)
  })

  it('returns no ranges for an empty or inverted range', () => {
    expect(splitRange(5, 5, 4)).to.deep.equal([])
    expect(splitRange(10, 5, 4)).to.deep.equal([])
    expect(splitRange(0, -1, 1)).to.deep.equal([])
  })

  it('splits ranges ending at 2^53-1 exactly', () => {
    const r = splitRange(MAX - 1_000_003, MAX, 7)
    expectTiles(r, MAX - 1_000_003, MAX)
    expect(splitRange(0, MAX, 3)).to.deep.equal([
      [0, 3002399751580331],
      [3002399751580331, 6004799503160661],
      [6004799503160661, MAX],
    ])
  })

  it('for any range, count and minimum size: tiles the range, near-equal, within the caps', () => {
    const arb = fc
      .record({
        from: fc.integer({ min: 0, max: MAX }),
        len: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: MAX })),
        n: fc.integer({ min: -2, max: 300 }),
        minUnits: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: MAX })),
      })
      .map(({ from, len, n, minUnits }) => ({ from, to: from + Math.min(len, MAX - from), n, minUnits }))
    fc.assert(
      fc.property(arb, ({ from, to, n, minUnits }) => {
        const r = splitRange(from, to, n, minUnits)
        const units = to - from
        if (units === 0) {
          expect(r).to.deep.equal([])
          return
        }
        expectTiles(r, from, to) // contiguous, disjoint, union == range, count >= 1
        const s = sizes(r)
        expect(s.reduce((x, y) => x + y, 0)).to.equal(units)
        expect(Math.max(...s) - Math.min(...s)).to.be.at.most(1)
        expect(r.length).to.be.at.most(Math.max(1, n))
        if (units >= minUnits) for (const size of s) expect(size).to.be.at.least(minUnits)
        // The cap is the only reason to make fewer ranges than asked for.
        expect(r.length).to.equal(Math.max(1, Math.min(n, Math.floor(units / Math.max(1, minUnits)))))
      }),
      { numRuns: 1_000 },
    )
  })

  it('cuts exactly as it always has: recovery rebuilds shares from it, so this output is part of the store format', () => {
    // The extra units go to the first ranges; a change here would make rebuilt shares overlap
    // or miss the recorded ones after an upgrade (lib/balancer/core/split-range.ts).
    expect(splitRange(0, 10, 3)).to.deep.equal([[0, 4], [4, 7], [7, 10]])
    expect(splitRange(5, 12, 4)).to.deep.equal([[5, 7], [7, 9], [9, 11], [11, 12]])
    expect(splitRange(0, 1_000_000_007, 6).map(([a, b]) => b - a)).to.deep.equal([166_666_668, 166_666_668, 166_666_668, 166_666_668, 166_666_668, 166_666_667])
  })
})
