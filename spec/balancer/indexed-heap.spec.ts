/**
 * lib/balancer/core/indexed-heap.ts against a plain list: after any mix of pushes, re-keys and
 * removals the top is the least key, and `firstZero` finds the first host in key order with a zero
 * count (or says it looked too far).
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { IndexedHostHeap, OVER_BUDGET } from '../../lib/balancer/core/indexed-heap.ts'

type Key = [number, number, number]
const less = (x: Key, y: Key) => (x[0] !== y[0] ? x[0] < y[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2])

describe('IndexedHostHeap', () => {
  const N = 40
  const arbOp = fc.record({
    kind: fc.constantFrom('push', 'update', 'remove'),
    id: fc.nat(N - 1),
    a: fc.integer({ min: -3, max: 3 }),
    b: fc.integer({ min: -3, max: 3 }),
  })

  it('keeps the least key on top and finds the first host with no count, as a sorted list would', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { maxLength: 200 }), fc.array(fc.nat(2), { minLength: N, maxLength: N }), fc.nat(12), (ops, counts, budget) => {
        const heap = new IndexedHostHeap(new Int32Array(N).fill(-1), N)
        const keys = new Map<number, Key>()
        for (const op of ops) {
          // c is the id, as placement's rank: keys are unique.
          const key: Key = [op.a, op.b, op.id]
          if (op.kind === 'push' && !keys.has(op.id)) {
            heap.push(op.id, ...key)
            keys.set(op.id, key)
          } else if (op.kind === 'update' && keys.has(op.id)) {
            heap.update(op.id, ...key)
            keys.set(op.id, key)
          } else if (op.kind === 'remove' && keys.has(op.id)) {
            heap.remove(op.id)
            keys.delete(op.id)
          }
          expect(heap.size).to.equal(keys.size)
          const sorted = [...keys].sort((x, y) => (less(x[1], y[1]) ? -1 : 1))
          if (sorted.length > 0) expect(heap.topId).to.equal(sorted[0]![0])
          for (let id = 0; id < N; id++) expect(heap.has(id)).to.equal(keys.has(id))
          const cs = Int32Array.from(counts)
          const passed = sorted.findIndex(([id]) => cs[id] === 0)
          const want = passed < 0 ? (sorted.length > budget ? OVER_BUDGET : -1) : passed > budget ? OVER_BUDGET : sorted[passed]![0]
          expect(heap.firstZero(cs, budget, new Int32Array(budget + 2))).to.equal(want)
        }
      }),
      { numRuns: 200 },
    )
  })
})
