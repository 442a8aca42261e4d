/**
 * JetStream publishes with a compare-and-set, answered on one wildcard inbox subscription: the hot
 * path of the leader's record writes (bucket create/update, buckets.ts).
 *
 * Why not the client's `kv.create`/`kv.update`: each goes through `nc.request`, which builds a
 * request object, a timer and an Error per call — and, in nats.js 3.4.0, one more Error after every
 * successful answer (`RequestOne.cancel` always makes a "cancelled" RequestError). In a profile of
 * tiny shares (bench tiny, two writes per share) those Errors were 13.5 % of the balancer's CPU,
 * plus the garbage they leave. Here a write costs a publish with a reply subject, a map entry and a
 * JSON parse of the answer; timeouts are swept by one timer.
 *
 * What it does not do, on purpose: interpret JetStream's refusals. An answer that is not a plain
 * acknowledgement (a CAS mismatch, no responders, any API error) rejects with `JsRefused`, and the
 * caller does the write again through the client library, whose handling (a create over a deleted
 * key, the error types the writer maps) stays the one source of those rules. A missing answer
 * rejects with E_TIMEOUT: the record writer retries, and its CAS makes a write whose answer was
 * lost harmless.
 *
 * Must never be used for the lease bucket (it has a connection and timeout of its own) or hold a
 * promise past its timeout.
 */

import { createInbox, headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/transport-node'
import { ShoalError } from '../errors.ts'

/** JetStream refused the publish, or nobody answered for the stream: do it through the library. */
export class JsRefused extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'JsRefused'
  }
}

interface Waiting {
  resolve: (seq: number) => void
  reject: (e: unknown) => void
  /** performance.now() after which the answer is given up. */
  due: number
  /** performance.now() when it was published. */
  sent: number
}

/** The subject characters the client library accepts in a key (its `validKey`). */
const PLAIN_KEY = /^[-/=.\w]+$/
const SWEEP_MS = 100
const decoder = new TextDecoder()

export class AckedPublisher {
  readonly #inbox: string
  readonly #waiting = new Map<string, Waiting>()
  #next = 0
  #sweeper: NodeJS.Timeout | undefined
  #closed = false

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
    /** Told how long each answered write took (ms), for the store-write histogram. */
    private readonly onAnswered?: (ms: number) => void,
  ) {
    // The connection's own inbox prefix: on a secured cluster it is the only one this identity
    // may subscribe under (docs/SECURITY.md), exactly as for the library's requests.
    const prefix = (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix
    this.#inbox = `${createInbox(prefix)}.`
    nc.subscribe(`${this.#inbox}*`, { callback: (err, msg) => (err ? this.close(err) : this.#answer(msg)) })
    nc.closed()
      .then(() => this.close(new ShoalError('E_UNAVAILABLE', 'the NATS connection closed before JetStream answered')))
      .catch(() => undefined)
  }

  /** Whether a key can go this way (anything else goes through the library, which explains why not). */
  static plainKey(key: string): boolean {
    return PLAIN_KEY.test(key)
  }

  /** Answers still awaited (for tests). */
  get waiting(): number {
    return this.#waiting.size
  }

  /**
   * Stores `data` on `subject` only if the subject's last message is `expectLast` (0: none);
   * resolves with its stream sequence (the key's new revision).
   */
  publish(subject: string, data: Uint8Array, expectLast: number): Promise<number> {
    // Closed (the connection, or only its subscription: a permission refused, say): the library's
    // own requests may still get through, so the caller goes that way, never stuck on this one.
    if (this.#closed) return Promise.reject(new JsRefused('the acknowledged-publish path is closed'))
    const token = (++this.#next).toString(36)
    const h = natsHeaders()
    h.set('Nats-Expected-Last-Subject-Sequence', String(expectLast))
    return new Promise<number>((resolve, reject) => {
      const sent = performance.now()
      this.#waiting.set(token, { resolve, reject, due: sent + this.timeoutMs, sent })
      try {
        this.nc.publish(subject, data, { reply: this.#inbox + token, headers: h })
      } catch (e) {
        this.#waiting.delete(token)
        reject(e)
        return
      }
      this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS).unref()
    })
  }

  /** Rejects every write still waiting (the connection closed). */
  close(why: unknown): void {
    this.#closed = true
    for (const w of this.#waiting.values()) w.reject(why)
    this.#waiting.clear()
    clearInterval(this.#sweeper)
    this.#sweeper = undefined
  }

  #answer(msg: Msg): void {
    const token = msg.subject.slice(this.#inbox.length)
    const w = this.#waiting.get(token)
    if (!w) return // answered after its timeout: the writer has moved on
    this.#waiting.delete(token)
    this.onAnswered?.(performance.now() - w.sent)
    if (msg.headers?.hasError || msg.data.length === 0) {
      w.reject(new JsRefused(`JetStream answered with status ${msg.headers?.code ?? 'none'} ${msg.headers?.description ?? ''}`.trim()))
      return
    }
    let ack: { seq?: unknown; error?: { description?: string } }
    try {
      ack = JSON.parse(decoder.decode(msg.data)) as typeof ack
    } catch {
      w.reject(new JsRefused('JetStream answered with something other than JSON'))
      return
    }
    if (ack.error !== undefined || typeof ack.seq !== 'number') w.reject(new JsRefused(`JetStream refused the publish: ${ack.error?.description ?? 'no sequence in its answer'}`))
    else w.resolve(ack.seq)
  }

  #sweep(): void {
    const now = performance.now()
    // In the order sent, so in the order due (one timeout for all).
    for (const [token, w] of this.#waiting) {
      if (w.due > now) break
      this.#waiting.delete(token)
      w.reject(new ShoalError('E_TIMEOUT', `JetStream did not acknowledge a write within ${this.timeoutMs} ms`))
    }
    if (!this.#waiting.size) {
      clearInterval(this.#sweeper)
      this.#sweeper = undefined
    }
  }
}
