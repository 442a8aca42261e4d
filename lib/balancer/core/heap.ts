/**
 * A binary heap ordered by a `before(a, b)` function (true when `a` comes out first). The policy
 * uses it to keep "best host" and "longest share" queues at O(log n) per step instead of scanning.
 *
 * Must never import NATS, timers or the clock.
 */
export class Heap<T> {
  readonly #items: T[]
  readonly #before: (a: T, b: T) => boolean

  /** Builds the heap from `items` in O(n) (the array is taken over, not copied). */
  constructor(before: (a: T, b: T) => boolean, items: T[] = []) {
    this.#before = before
    this.#items = items
    for (let i = (items.length >> 1) - 1; i >= 0; i--) this.#down(i)
  }

  get size(): number {
    return this.#items.length
  }

  peek(): T | undefined {
    return this.#items[0]
  }

  push(item: T): void {
    const a = this.#items
    a.push(item)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#before(a[i]!, a[p]!)) break
      ;[a[i], a[p]] = [a[p]!, a[i]!]
      i = p
    }
  }

  pop(): T | undefined {
    const a = this.#items
    if (a.length === 0) return undefined
    const top = a[0]
    const last = a.pop()!
    if (a.length > 0) {
      a[0] = last
      this.#down(0)
    }
    return top
  }

  #down(i: number): void {
    const a = this.#items
    const n = a.length
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < n && this.#before(a[l]!, a[m]!)) m = l
      if (r < n && this.#before(a[r]!, a[m]!)) m = r
      if (m === i) return
      ;[a[i], a[m]] = [a[m]!, a[i]!]
      i = m
    }
  }
}

/**
 * A min-heap of host indexes ordered by (a, b, c) ascending, kept in one typed array so placing tens
 * of thousands of shares allocates nothing per step. Keys are snapshots: callers re-key a host
 * whose key changed (lazy update).
 *
 * Each entry is four numbers side by side (a, b, c, id), so a step down the heap touches one cache
 * line rather than four arrays; a re-keyed or popped entry goes down by Floyd's method (the hole
 * sinks to a leaf along the lesser children, then the entry climbs back), since an entry whose key
 * grew mostly belongs near the bottom. At 10,000 hosts placing 150,000 shares re-keys ~1.7 million
 * entries, and the four-array heap with a compare per child at every level was 40 % of `decide`
 * (issue 12). Which host comes out never depends on the heap's shape: keys are unique (c is a rank).
 */
export class HostHeap {
  #k: Float64Array
  #n = 0

  constructor(capacity = 16) {
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

  push(id: number, a: number, b: number, c: number): void {
    if (4 * this.#n === this.#k.length) this.#grow()
    this.#climb(this.#n++, id, a, b, c)
  }

  pop(): void {
    const n = --this.#n
    if (n <= 0) return
    const k = this.#k
    const x = 4 * n
    this.#sink(k[x + 3]!, k[x]!, k[x + 1]!, k[x + 2]!)
  }

  /**
   * Replaces the top with `id` at a key no smaller than the top's (one sift instead of a pop and a
   * push): how a lazy heap re-keys a host whose key only grows.
   */
  replaceTop(id: number, a: number, b: number, c: number): void {
    this.#sink(id, a, b, c)
  }

  /** Puts (id, a, b, c) in the root's place: the hole goes down to a leaf, the entry climbs back. */
  #sink(id: number, a: number, b: number, c: number): void {
    const k = this.#k
    const n = this.#n
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      let m = l
      if (r < n) {
        const L = 4 * l
        const R = 4 * r
        // r before l?
        if (k[R]! !== k[L]! ? k[R]! < k[L]! : k[R + 1]! !== k[L + 1]! ? k[R + 1]! < k[L + 1]! : k[R + 2]! < k[L + 2]!) m = r
      }
      const M = 4 * m
      const I = 4 * i
      k[I] = k[M]!
      k[I + 1] = k[M + 1]!
      k[I + 2] = k[M + 2]!
      k[I + 3] = k[M + 3]!
      i = m
    }
    this.#climb(i, id, a, b, c)
  }

  /** Puts (id, a, b, c) at the hole `i` and moves it up past every parent that should come after it. */
  #climb(i: number, id: number, a: number, b: number, c: number): void {
    const k = this.#k
    while (i > 0) {
      const p = (i - 1) >> 1
      const P = 4 * p
      if (!(a !== k[P]! ? a < k[P]! : b !== k[P + 1]! ? b < k[P + 1]! : c < k[P + 2]!)) break
      const I = 4 * i
      k[I] = k[P]!
      k[I + 1] = k[P + 1]!
      k[I + 2] = k[P + 2]!
      k[I + 3] = k[P + 3]!
      i = p
    }
    const I = 4 * i
    k[I] = a
    k[I + 1] = b
    k[I + 2] = c
    k[I + 3] = id
  }

  #grow(): void {
    const k = new Float64Array(this.#k.length * 2)
    k.set(this.#k)
    this.#k = k
  }
}
