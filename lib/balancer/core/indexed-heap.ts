/**
 * A min-heap of host indexes ordered by (a, b, c) ascending, like `HostHeap` (`heap.ts`), that also
 * knows where each host sits, so a host's key can be changed or the host removed wherever it is,
 * and it can list its hosts in key order without taking them out (`firstZero`). Placement keeps one
 * per group of hosts that qualify for the same classes (`steps/place-homes.ts`), with exact keys.
 *
 * Keys must never be NaN (the order would not be total); c is a rank, so keys are unique and which
 * host comes first never depends on the heap's shape.
 *
 * Must never import NATS, timers or the clock.
 */

/** What `firstZero` returns when it looked at `budget` hosts without finding one. */
export const OVER_BUDGET = -2

export class IndexedHostHeap {
  /** Four numbers per entry, side by side: a, b, c, host. */
  readonly #k: Float64Array
  /** Position of each host, shared by heaps that never hold the same host; −1 when absent. */
  readonly #pos: Int32Array
  #n = 0

  /** An empty heap for at most `capacity` hosts; `pos` (one slot per host, all −1) may be shared. */
  constructor(pos: Int32Array, capacity: number) {
    this.#pos = pos
    this.#k = new Float64Array(4 * Math.max(1, capacity))
  }

  get size(): number {
    return this.#n
  }

  /** Host index at the top; only valid when size > 0. */
  get topId(): number {
    return this.#k[3]!
  }

  get topA(): number {
    return this.#k[0]!
  }

  get topB(): number {
    return this.#k[1]!
  }

  get topC(): number {
    return this.#k[2]!
  }

  /** Calls `f` with every host in the heap, in no particular order. */
  forEach(f: (id: number) => void): void {
    for (let i = 0; i < this.#n; i++) f(this.#k[4 * i + 3]!)
  }

  has(id: number): boolean {
    return this.#pos[id]! >= 0
  }

  push(id: number, a: number, b: number, c: number): void {
    this.#put(this.#up(this.#n++, a, b, c), id, a, b, c)
  }

  /** Gives host `id` (in the heap) the key (a, b, c). */
  update(id: number, a: number, b: number, c: number): void {
    this.#place(this.#pos[id]!, id, a, b, c)
  }

  /** Takes host `id` (in the heap) out. */
  remove(id: number): void {
    const i = this.#pos[id]!
    this.#pos[id] = -1
    const n = --this.#n
    if (i === n) return
    const k = this.#k
    const x = 4 * n
    this.#place(i, k[x + 3]!, k[x]!, k[x + 1]!, k[x + 2]!)
  }

  /**
   * The first host in key order whose `counts` entry is 0, without changing the heap: −1 when there
   * is none, OVER_BUDGET after looking at `budget` hosts that have a count. A best-first walk: the
   * frontier (`aux`, room for at least budget + 2 positions) holds the children of the hosts passed
   * over, so it costs O(hosts passed × log).
   */
  firstZero(counts: Int32Array, budget: number, aux: Int32Array): number {
    const n = this.#n
    if (n === 0) return -1
    const k = this.#k
    aux[0] = 0
    let m = 1
    let passed = 0
    while (m > 0) {
      const p: number = aux[0]!
      const id = k[4 * p + 3]!
      if (counts[id] === 0) return id
      if (++passed > budget) return OVER_BUDGET
      // Pop p from the frontier, then push its children.
      m--
      if (m > 0) this.#auxDown(aux, m, aux[m]!)
      const l = 2 * p + 1
      if (l < n) m = this.#auxUp(aux, m, l)
      if (l + 1 < n) m = this.#auxUp(aux, m, l + 1)
    }
    return -1
  }

  /** Does the entry at position p come before the one at q? */
  #before(p: number, q: number): boolean {
    const k = this.#k
    const P = 4 * p
    const Q = 4 * q
    return k[P]! !== k[Q]! ? k[P]! < k[Q]! : k[P + 1]! !== k[Q + 1]! ? k[P + 1]! < k[Q + 1]! : k[P + 2]! < k[Q + 2]!
  }

  #auxUp(aux: Int32Array, m: number, p: number): number {
    let i = m
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.#before(p, aux[parent]!)) break
      aux[i] = aux[parent]!
      i = parent
    }
    aux[i] = p
    return m + 1
  }

  /** Puts position p at the frontier's root (of m entries) and sifts it down. */
  #auxDown(aux: Int32Array, m: number, p: number): void {
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= m) break
      const r = l + 1
      const c = r < m && this.#before(aux[r]!, aux[l]!) ? r : l
      if (!this.#before(aux[c]!, p)) break
      aux[i] = aux[c]!
      i = c
    }
    aux[i] = p
  }

  /** Puts (id, a, b, c) at the hole `i`, up past the parents after it or else down past the children before it. */
  #place(i: number, id: number, a: number, b: number, c: number): void {
    const j = this.#up(i, a, b, c)
    this.#put(j === i ? this.#down(i, a, b, c) : j, id, a, b, c)
  }

  /** Moves the hole `i` up past every parent that should come after (a, b, c); returns where it ends. */
  #up(i: number, a: number, b: number, c: number): number {
    const k = this.#k
    while (i > 0) {
      const p = (i - 1) >> 1
      const P = 4 * p
      if (!(a !== k[P]! ? a < k[P]! : b !== k[P + 1]! ? b < k[P + 1]! : c < k[P + 2]!)) break
      this.#move(p, i)
      i = p
    }
    return i
  }

  /** Moves the hole `i` down past every child that should come before (a, b, c); returns where it ends. */
  #down(i: number, a: number, b: number, c: number): number {
    const k = this.#k
    const n = this.#n
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) return i
      const r = l + 1
      const L = 4 * l
      const R = 4 * r
      const m = r < n && (k[R]! !== k[L]! ? k[R]! < k[L]! : k[R + 1]! !== k[L + 1]! ? k[R + 1]! < k[L + 1]! : k[R + 2]! < k[L + 2]!) ? r : l
      const M = 4 * m
      if (!(k[M]! !== a ? k[M]! < a : k[M + 1]! !== b ? k[M + 1]! < b : k[M + 2]! < c)) return i
      this.#move(m, i)
      i = m
    }
  }

  /** Copies the entry at `from` to `to`. */
  #move(from: number, to: number): void {
    const k = this.#k
    const F = 4 * from
    const T = 4 * to
    k[T] = k[F]!
    k[T + 1] = k[F + 1]!
    k[T + 2] = k[F + 2]!
    k[T + 3] = k[F + 3]!
    this.#pos[k[F + 3]!] = to
  }

  #put(i: number, id: number, a: number, b: number, c: number): void {
    const k = this.#k
    const I = 4 * i
    k[I] = a
    k[I + 1] = b
    k[I + 2] = c
    k[I + 3] = id
    this.#pos[id] = i
  }
}
