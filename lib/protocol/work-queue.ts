/**
 * Runs message handlers in slices of at most `sliceMs`, yielding to the event loop between slices,
 * so that timers — the lease's renewals, the membership tick — run on time however many messages
 * one socket read brings. libuv reads up to 32 × 64 KiB from a socket per turn of the event loop:
 * at 2,000 hosts that was a couple of thousand messages handled in one go, turns of 300–750 ms,
 * and the lease lapsed behind them (issue 12). First in, first out: the order of messages is kept.
 *
 * Bounded: past `maxQueued` waiting handlers, new ones are refused (`push` returns false) and the
 * caller counts the message dropped, as nats-server would have dropped a slow consumer's; the
 * queue never grows without bound in a process that cannot keep up.
 *
 * Expiring: a handler pushed with an expiry that has waited longer than it is not run; its
 * `expired` callback is, instead. For requests whose sender gives up after a known time: a process
 * that fell behind otherwise answers, first in first out, every request after its sender gave up
 * (at 10,000 hosts, 530,410 of 533,344 checkpoints), and spends what it has on answers nobody
 * reads. Skipping those, it answers the ones still awaited.
 *
 * Must never decide what a message means: it only runs what it is given.
 */

export interface WorkQueueOptions {
  /** Longest run of handlers between two yields (ms). */
  sliceMs?: number
  /** Handlers that may wait; more are refused. */
  maxQueued?: number
  /** Monotonic clock (injected by the spec). */
  now?: () => number
  /** Called with what a handler threw (handlers catch what they expect; this is a bug's last stop). */
  onError?: (err: unknown) => void
  /**
   * Called once per slice with how long its first handler waited (ms): the oldest one, so every
   * message's wait is bounded by one of these. For a histogram, which any number of readers can
   * scrape (a "longest since the last read" gauge read 0 whenever someone else read it first).
   */
  onWait?: (ms: number) => void
}

/** A handler that is not worth running after `afterMs` in the queue: `expired` runs instead. */
export interface Expiry {
  afterMs: number
  expired: () => void
}

export class WorkQueue {
  /** Handlers that go before the others (a client's request: `status` must not wait behind hosts). */
  private urgent: Array<() => void> = []
  private items: Array<(() => void) | undefined> = []
  private head = 0
  private scheduled = false
  private readonly sliceMs: number
  private readonly maxQueued: number
  private readonly now: () => number
  private readonly enqueuedAt: number[] = []
  /** Expiry of each waiting handler (undefined: never expires), parallel to `items`. */
  private readonly expiries: Array<Expiry | undefined> = []

  constructor(private readonly opts: WorkQueueOptions = {}) {
    this.sliceMs = opts.sliceMs ?? 10
    this.maxQueued = opts.maxQueued ?? 200_000
    this.now = opts.now ?? (() => performance.now())
  }

  /** Handlers waiting. */
  get length(): number {
    return this.items.length - this.head + this.urgent.length
  }

  /**
   * Queues `fn`; false (and `fn` dropped) when the queue is full. An `urgent` one runs before every
   * other waiting (in its own order among the urgent), and never expires: it waits for no backlog.
   */
  push(fn: () => void, urgent = false, expiry?: Expiry): boolean {
    if (this.length >= this.maxQueued) return false
    if (urgent) this.urgent.push(fn)
    else {
      this.items.push(fn)
      this.enqueuedAt.push(this.now())
      this.expiries.push(expiry)
    }
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.drain)
    }
    return true
  }

  /** How long the oldest handler still waiting has waited (ms); 0 when none waits. */
  backlogMs(): number {
    return this.head < this.items.length ? this.now() - this.enqueuedAt[this.head]! : 0
  }

  private readonly drain = (): void => {
    const start = this.now()
    for (let i = 0; i < this.urgent.length; i++) {
      try {
        this.urgent[i]!()
      } catch (e) {
        this.opts.onError?.(e)
      }
    }
    this.urgent = []
    if (this.head < this.items.length) this.opts.onWait?.(start - this.enqueuedAt[this.head]!)
    while (this.head < this.items.length) {
      const fn = this.items[this.head]!
      const expiry = this.expiries[this.head]
      const waited = expiry ? this.now() - this.enqueuedAt[this.head]! : 0
      this.items[this.head] = undefined
      this.expiries[this.head] = undefined
      this.head++
      try {
        if (expiry && waited > expiry.afterMs) expiry.expired()
        else fn()
      } catch (e) {
        this.opts.onError?.(e)
      }
      if (this.now() - start >= this.sliceMs) break
    }
    // Compact once the consumed prefix is large, so the arrays do not grow for ever.
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.enqueuedAt.splice(0, this.head)
      this.expiries.splice(0, this.head)
      this.head = 0
    }
    if (this.head < this.items.length || this.urgent.length) setImmediate(this.drain)
    else {
      this.items = []
      this.enqueuedAt.length = 0
      this.expiries.length = 0
      this.head = 0
      this.scheduled = false
    }
  }
}
