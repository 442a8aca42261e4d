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
 * A min-heap of host indexes ordered by (a, b, c) ascending, kept in typed arrays so placing tens
 * of thousands of shares allocates nothing per step. Keys are snapshots: callers re-push a host
 * whose key changed (lazy update).
 */
export class HostHeap {
  #id: Int32Array
  #a: Float64Array
  #b: Float64Array
  #c: Float64Array
  #n = 0

  constructor(capacity = 16) {
    const cap = Math.max(1, capacity)
    this.#id = new Int32Array(cap)
    this.#a = new Float64Array(cap)
    this.#b = new Float64Array(cap)
    this.#c = new Float64Array(cap)
  }

  get size(): number {
    return this.#n
  }

  /** Host index at the top; only valid when size > 0. */
  get topId(): number {
    return this.#id[0]!
  }

  get topA(): number {
    return this.#a[0]!
  }

  get topB(): number {
    return this.#b[0]!
  }

  push(id: number, a: number, b: number, c: number): void {
    if (this.#n === this.#id.length) this.#grow()
    let i = this.#n++
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#less(a, b, c, p)) break
      this.#move(p, i)
      i = p
    }
    this.#set(i, id, a, b, c)
  }

  pop(): void {
    const n = --this.#n
    if (n <= 0) return
    this.#sink(this.#id[n]!, this.#a[n]!, this.#b[n]!, this.#c[n]!)
  }

  /**
   * Replaces the top with `id` at a key no smaller than the top's (one sift instead of a pop and a
   * push): how a lazy heap re-keys a host whose key only grows.
   */
  replaceTop(id: number, a: number, b: number, c: number): void {
    this.#sink(id, a, b, c)
  }

  /** Puts (id, a, b, c) at the root's place and sifts it down. */
  #sink(id: number, a: number, b: number, c: number): void {
    const n = this.#n
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const m = r < n && this.#lessAt(r, l) ? r : l
      if (!this.#lessAt(m, -1, a, b, c)) break
      this.#move(m, i)
      i = m
    }
    this.#set(i, id, a, b, c)
  }

  #less(a: number, b: number, c: number, j: number): boolean {
    const ja = this.#a[j]!
    if (a !== ja) return a < ja
    const jb = this.#b[j]!
    if (b !== jb) return b < jb
    return c < this.#c[j]!
  }

  /** Is slot i before slot j (or before the key a, b, c when j < 0)? */
  #lessAt(i: number, j: number, a = 0, b = 0, c = 0): boolean {
    const ia = this.#a[i]!
    const ib = this.#b[i]!
    const ic = this.#c[i]!
    const ja = j < 0 ? a : this.#a[j]!
    const jb = j < 0 ? b : this.#b[j]!
    const jc = j < 0 ? c : this.#c[j]!
    if (ia !== ja) return ia < ja
    if (ib !== jb) return ib < jb
    return ic < jc
  }

  #move(from: number, to: number): void {
    this.#id[to] = this.#id[from]!
    this.#a[to] = this.#a[from]!
    this.#b[to] = this.#b[from]!
    this.#c[to] = this.#c[from]!
  }

  #set(i: number, id: number, a: number, b: number, c: number): void {
    this.#id[i] = id
    this.#a[i] = a
    this.#b[i] = b
    this.#c[i] = c
  }

  #grow(): void {
    const cap = this.#id.length * 2
    const id = new Int32Array(cap)
    const a = new Float64Array(cap)
    const b = new Float64Array(cap)
    const c = new Float64Array(cap)
    id.set(this.#id)
    a.set(this.#a)
    b.set(this.#b)
    c.set(this.#c)
    this.#id = id
    this.#a = a
    this.#b = b
    this.#c = c
  }
}
