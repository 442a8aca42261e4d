/**
 * Typed arrays one `decide` call borrows and the next one reuses. At 10,000 hosts × 1,000,000
 * shares a cycle needs about 90 MB of per-share arrays; allocated afresh each cycle they count as
 * external memory, and V8 answers every 64 MB or so of it with a full mark of the whole heap — the
 * view's million share objects — which took ~290 ms of a ~1.3 s call (issue 12, `--trace-gc`).
 * Reused, they cost nothing after the first cycle.
 *
 * The arrays hold whatever the last borrower left: every caller fills what it reads. A scratch is
 * for one call at a time (decide is synchronous, so one per module is enough); its arrays only grow,
 * so it keeps the memory of the largest view it has seen.
 *
 * Must never import NATS, timers or the clock.
 */

export class Scratch {
  readonly #i32 = new Map<string, Int32Array>()
  readonly #f64 = new Map<string, Float64Array>()
  readonly #u8 = new Map<string, Uint8Array>()

  /** An Int32Array of length `n` under `name`; contents left over from the last use. */
  int32(name: string, n: number): Int32Array {
    let a = this.#i32.get(name)
    if (!a || a.length < n) this.#i32.set(name, (a = new Int32Array(n)))
    return a.subarray(0, n)
  }

  float64(name: string, n: number): Float64Array {
    let a = this.#f64.get(name)
    if (!a || a.length < n) this.#f64.set(name, (a = new Float64Array(n)))
    return a.subarray(0, n)
  }

  uint8(name: string, n: number): Uint8Array {
    let a = this.#u8.get(name)
    if (!a || a.length < n) this.#u8.set(name, (a = new Uint8Array(n)))
    return a.subarray(0, n)
  }
}
