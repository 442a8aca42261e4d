/**
 * The last value of every key of a KV bucket, read in one pass of an ephemeral push consumer
 * (deliver last per subject, no acks, flow control) whose messages are handled in the
 * subscription's callback as they arrive: recovery's bulk read (issue 12).
 *
 * Why not `kv.watch()`, which does the same on the server: at 100,000 records the client's layers
 * around each message (a JsMsg whose delivery info is split out of the reply subject, a KvEntry
 * whose headers are decoded for its operation, a queued async iterator, and a stall timer re-armed
 * per message) cost more than the protocol parse, and the entries they return all lived to the end
 * of the read, so the collector copied them twice. Here a message costs its subject, its reply
 * subject's three numbers and a subarray, handed straight to `each`.
 *
 * Exactly once, in order: the consumer's delivery sequence must go up by one per message; a gap
 * (a message the server dropped for a slow client) fails the read rather than lose a record, as
 * does a stall (no message for `stallMs`: on nats-server 2.9.10 the consumer may sit on a node that
 * is down). The caller then reads key by key.
 *
 * Must never decide what a record means: deletes and purges (no payload) are left out, the rest
 * goes to `each` as it came.
 */

import { createInbox, Empty, type Msg, type NatsConnection } from '@nats-io/transport-node'
import { AckPolicy, DeliverPolicy, type JetStreamManager } from '@nats-io/jetstream'
import { ShoalError } from '../errors.ts'

/** Idle heartbeats while the consumer has nothing to send (the server expects them with flow control). */
const HEARTBEAT_NS = 5_000 * 1_000_000

export interface BulkReadOptions {
  nc: NatsConnection
  jsm: JetStreamManager
  /** The bucket's stream (`KV_<bucket>`) and its subject prefix (`$KV.<bucket>.`). */
  stream: string
  prefix: string
  /** No message for this long fails the read. */
  stallMs: number
}

/**
 * Calls `each(key, revision, value)` for every key holding a value when the read starts, in stream
 * order, and resolves with how many there were. `value` is a view of the connection's buffer: use
 * it before returning. Rejects with E_STORE on a stall, a gap, a consumer that could not be created
 * or that the server ended, and with whatever `each` throws.
 */
export async function readLastValues(o: BulkReadOptions, each: (key: string, revision: number, value: Uint8Array) => void): Promise<number> {
  const si = await o.jsm.streams.info(o.stream)
  // A bucket of history 1 holds one message per key, the last: the whole stream, read from its
  // start, is every key's last value. Asking for "last per subject" instead costs nats-server
  // 2.9.10 a pass over every subject before the first message (0.35-0.8 s for 110,000 keys here,
  // against 0.05-0.15 s) and slower delivery after. A bucket made elsewhere with more history
  // (JetStream keeps an existing bucket's settings) is read the slower way.
  const oneValuePerKey = si.config.max_msgs_per_subject === 1
  // An empty stream: the consumer would only wait for updates.
  if (si.state.messages === 0) return 0
  const inbox = createInbox((o.nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix)
  const prefixLength = o.prefix.length
  let delivered = 0
  let handed = 0
  let settle!: (err?: unknown) => void
  const done = new Promise<void>((resolve, reject) => (settle = (err) => (err === undefined ? resolve() : reject(err))))
  // It may fail (a stall) while the consumer is still being created, before anyone awaits it.
  done.catch(() => undefined)
  let finished = false
  const finish = (err?: unknown) => {
    if (finished) return
    finished = true
    settle(err)
  }
  // Subscribed before the consumer exists: it starts pushing as soon as it is created.
  const sub = o.nc.subscribe(inbox, {
    callback: (err, m) => {
      if (finished) return
      if (err) return finish(new ShoalError('E_STORE', `reading ${o.stream}: ${err.message}`, { cause: err }))
      try {
        if (m.subject === inbox) return control(m)
        const info = ackInfo(m.reply ?? '')
        if (info === undefined) return finish(new ShoalError('E_STORE', `reading ${o.stream}: not a JetStream delivery (reply '${m.reply}')`))
        if (info.deliverySeq !== delivered + 1) return finish(new ShoalError('E_STORE', `reading ${o.stream}: message ${delivered + 1} of the consumer was not delivered (got ${info.deliverySeq} after ${delivered})`))
        delivered = info.deliverySeq
        const value = m.data
        if (value.length > 0) {
          each(m.subject.slice(prefixLength), info.streamSeq, value)
          handed++
        }
        // The last of the values there were when it started (later writes would be updates).
        if (info.pending === 0) finish()
      } catch (e) {
        finish(e)
      }
    },
  })
  // A status message on the inbox: flow control wants an answer; an idle heartbeat may name a
  // stalled flow control to answer (nats.js does the same: nats-io/nats.js#374).
  const control = (m: Msg) => {
    const h = m.headers
    if (h?.code !== 100) {
      finish(new ShoalError('E_STORE', `reading ${o.stream}: the server ended the consumer (${h?.code ?? '?'} ${h?.description ?? ''})`))
      return
    }
    if (m.reply) m.respond(Empty)
    const stalled = h.get('Nats-Consumer-Stalled')
    if (stalled) o.nc.publish(stalled, Empty)
  }
  let consumer: string | undefined
  // A stall check that costs nothing per message: a count compared every quarter of `stallMs`.
  let seen = -1
  let still = 0
  const timer = setInterval(() => {
    still = delivered === seen ? still + 1 : 0
    seen = delivered
    if (still >= 4) finish(new ShoalError('E_STORE', `reading ${o.stream} with a consumer stalled for ${o.stallMs} ms after ${handed} records`))
  }, Math.max(1, Math.floor(o.stallMs / 4)))
  // Not awaited on its own: a stall while the server is still creating the consumer (a node down)
  // ends the read at once, and messages may come before the answer does.
  let ended = false
  // An ephemeral consumer goes once nobody listens; deleting it only saves the server the wait.
  const drop = (name: string) => void o.jsm.consumers.delete(o.stream, name).catch(() => undefined)
  o.jsm.consumers
    .add(o.stream, {
      deliver_subject: inbox,
      deliver_policy: oneValuePerKey ? DeliverPolicy.All : DeliverPolicy.LastPerSubject,
      ack_policy: AckPolicy.None,
      filter_subject: `${o.prefix}>`,
      flow_control: true,
      idle_heartbeat: HEARTBEAT_NS,
      mem_storage: true,
    })
    .then(
      (ci) => (ended ? drop(ci.name) : (consumer = ci.name)),
      (e: unknown) => finish(new ShoalError('E_STORE', `reading ${o.stream}: cannot create a consumer: ${(e as Error).message}`, { cause: e })),
    )
  try {
    await done
    return handed
  } finally {
    ended = true
    clearInterval(timer)
    sub.unsubscribe()
    if (consumer) drop(consumer)
  }
}

/**
 * The numbers of a JetStream delivery's reply subject, read in place (no split, no substrings:
 * this runs once per record): `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`,
 * or since nats-server 2.10 with `<domain>.<account hash>` after ACK and a random token last.
 */
export function ackInfo(reply: string): { streamSeq: number; deliverySeq: number; pending: number } | undefined {
  if (!reply.startsWith('$JS.ACK.')) return undefined
  let n = 0
  for (let i = 8; i < reply.length && n < DOTS.length; i++) if (reply.charCodeAt(i) === 46) DOTS[n++] = i
  // Tokens after `$JS.ACK.`: 7 (6 dots), or 10 or more with the domain, the account hash and the random one.
  const base = n === 6 ? 0 : n >= 9 ? 2 : -1
  if (base < 0) return undefined
  // Token j runs from after dot j-1 to dot j (the first from `$JS.ACK.`, the last to the end).
  const streamSeq = digits(reply, DOTS[base + 2]! + 1, DOTS[base + 3]!)
  const deliverySeq = digits(reply, DOTS[base + 3]! + 1, DOTS[base + 4]!)
  const pending = digits(reply, DOTS[base + 5]! + 1, base + 6 < n ? DOTS[base + 6]! : reply.length)
  if (streamSeq < 0 || deliverySeq < 0 || pending < 0) return undefined
  return { streamSeq, deliverySeq, pending }
}

/** Positions of a reply subject's dots after `$JS.ACK.` (scratch: one reply at a time). */
const DOTS = new Int32Array(12)

/** The decimal number in `s` from `from` to `to`, or -1 when that is not one. */
function digits(s: string, from: number, to: number): number {
  if (to <= from) return -1
  let v = 0
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}
