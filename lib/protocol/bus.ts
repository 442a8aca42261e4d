/**
 * The thin NATS shell every Shoal process talks through: typed publish, subscribe, serve
 * (request/reply) and request, all going through the codec, so that validation, size limits and
 * reject counting happen in one place. Transport errors become ShoalErrors with codes
 * (E_TIMEOUT, E_UNAVAILABLE) so callers never inspect NATS error classes.
 *
 * Who sent a message is the subject's business (lib/protocol/subjects.ts), and two rules here keep
 * that true against JetStream, which publishes on behalf of anyone with a JetStream permission
 * to a reply subject the caller picks, unchecked by the caller's permissions:
 * - a message carrying NATS headers is dropped (counted as `identity`): Shoal never sends any,
 *   and JetStream's deliveries (direct gets, consumers) always carry them;
 * - a request whose reply subject is not the inbox of the identity its subject names is neither
 *   answered nor acted on (`identity`): otherwise a requester could aim the answer — published
 *   with the responder's permissions — at a KV bucket's subject or another identity's.
 * Requests go out with replies under this process's own inbox (`inbox`), so that the other side's
 * check holds even on a connection opened without that prefix.
 *
 * Must never contain business logic.
 */

import { nuid, type NatsConnection, type Msg, type Subscription } from '@nats-io/transport-node'
import type { z } from 'zod'
import { ShoalError, toWire, fromWire } from '../errors.ts'
import { Codec, RejectCounter } from './codec.ts'
import type { WorkQueue } from './work-queue.ts'
import { PROTOCOL_VERSION, errReplySchema } from './messages.ts'

export interface ServeOptions {
  queue?: string
  /**
   * The inbox prefix a request on `subject` must have its reply under (the sender's identity's,
   * from Subjects.inbox), or undefined when the subject names nobody valid. Absent: any reply.
   */
  replyInbox?: (subject: string) => string | undefined
  /** With a work queue: these requests go before the other messages waiting (a client's, say). */
  urgent?: boolean
  /**
   * With a work queue: a request that waited longer than this there is dropped unread and counted
   * as `expired` (its sender has given up, or is about to; see work-queue.ts). Absent: never.
   */
  expireAfterMs?: number
}

export interface BusOptions {
  rejects?: RejectCounter
  /** This process's inbox prefix (Subjects.inbox of its identity): replies to its requests come under it. */
  inbox?: string
  /**
   * Handle received messages through this queue, in slices that leave the event loop's timers
   * room (work-queue.ts); a message the full queue refuses is counted as `overload`. Absent: at once.
   */
  work?: WorkQueue
}

/**
 * A serve handler returns this to send no answer at all: a balancer that does not lead (yet, or
 * any more) stays silent, so that the leader's answer is the one the requester gets.
 */
export const NO_REPLY: unique symbol = Symbol('no reply')

export class Bus {
  readonly rejects: RejectCounter

  private readonly inbox: string | undefined
  private readonly work: WorkQueue | undefined
  /** Requests use the connection's shared reply subscription when its prefix is our inbox. */
  private readonly muxed: boolean

  constructor(
    readonly nc: NatsConnection,
    readonly codec: Codec,
    opts: BusOptions = {},
  ) {
    this.rejects = opts.rejects ?? new RejectCounter()
    this.inbox = opts.inbox
    this.work = opts.work
    const connPrefix = (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix
    this.muxed = opts.inbox === undefined || connPrefix === opts.inbox
  }

  /** Runs `fn` for message `m` now, or through the work queue (dropped as `expired` past `expireAfterMs` there). */
  private dispatch(m: Msg, fn: () => void, urgent = false, expireAfterMs?: number): void {
    if (!this.work) return fn()
    const expiry = expireAfterMs === undefined ? undefined : { afterMs: expireAfterMs, expired: () => this.rejects.count(m.subject, 'expired') }
    if (!this.work.push(fn, urgent, expiry)) this.rejects.count(m.subject, 'overload')
  }

  /** Sent by JetStream on someone's behalf (see the header comment), not by a Shoal process. */
  private relayed(m: Msg): boolean {
    if (!m.headers) return false
    this.rejects.count(m.subject, 'identity')
    return true
  }

  publish(subject: string, msg: unknown): void {
    this.nc.publish(subject, this.codec.encode(msg))
  }

  /** Subscribes with validation; invalid messages are counted and dropped. */
  subscribe<S extends z.ZodType>(
    subject: string,
    schema: S,
    handler: (msg: z.infer<S>, subject: string) => void,
  ): Subscription {
    return this.nc.subscribe(subject, {
      callback: (err, m) => {
        if (err) return
        this.dispatch(m, () => {
          if (this.relayed(m)) return
          const d = this.codec.decode(schema, m.data)
          if (!d.ok) {
            this.rejects.count(m.subject, d.cause)
            return
          }
          try {
            handler(d.value, m.subject)
          } catch {
            // A handler bug must not kill the subscription; handlers catch what they expect.
            this.rejects.count(m.subject, 'invalid')
          }
        })
      },
    })
  }

  /**
   * Serves requests: decodes and validates each, calls the handler, replies with its answer. An
   * invalid request is counted and answered with E_MSG_INVALID (so a client learns why); a handler
   * that throws is answered with its error in wire form.
   */
  serve<S extends z.ZodType>(
    subject: string,
    schema: S,
    handler: (msg: z.infer<S>, raw: Msg) => Promise<unknown> | unknown,
    opts: ServeOptions = {},
  ): Subscription {
    return this.nc.subscribe(subject, {
      ...(opts.queue ? { queue: opts.queue } : {}),
      callback: (err, m) => {
        if (err) return
        this.dispatch(m, () => {
          if (this.relayed(m)) return
          const inbox = opts.replyInbox?.(m.subject)
          const replyOk = !opts.replyInbox || (inbox !== undefined && m.reply !== undefined && m.reply.startsWith(`${inbox}.`))
          const d = this.codec.decode(schema, m.data)
          if (!d.ok) {
            this.rejects.count(m.subject, d.cause)
            const code = d.cause === 'oversized' ? 'E_MSG_TOO_LARGE' : 'E_MSG_INVALID'
            if (replyOk) this.reply(m, { v: PROTOCOL_VERSION, t: 'err', error: toWire(new ShoalError(code, `rejected message on ${m.subject}: ${d.detail}`)) })
            return
          }
          if (!replyOk) {
            this.rejects.count(m.subject, 'identity')
            return
          }
          const answer = (async () => {
            try {
              return await handler(d.value, m)
            } catch (e) {
              return { v: PROTOCOL_VERSION, t: 'err', error: toWire(e) }
            }
          })()
          // The async function catches the handler's errors itself, so this never rejects.
          answer.then((a) => (a === NO_REPLY ? undefined : this.reply(m, a)), () => undefined)
        }, opts.urgent, opts.expireAfterMs)
      },
    })
  }

  private reply(m: Msg, answer: unknown): void {
    if (!m.reply) return
    try {
      m.respond(this.codec.encode(answer))
    } catch (e) {
      // The answer itself was too large or could not be encoded: say so rather than go silent.
      try {
        m.respond(this.codec.encode({ v: PROTOCOL_VERSION, t: 'err', error: toWire(e) }))
      } catch {
        /* connection closed: nothing left to tell */
      }
    }
  }

  /**
   * Sends a request and validates the reply. A reply of type `err` is thrown as its ShoalError.
   * No responder → E_UNAVAILABLE; no answer in time → E_TIMEOUT.
   */
  async request<S extends z.ZodType>(subject: string, msg: unknown, replySchema: S, timeoutMs: number): Promise<z.infer<S>> {
    const data = this.codec.encode(msg)
    let m: Msg
    try {
      m = await this.nc.request(subject, data, this.muxed ? { timeout: timeoutMs } : { timeout: timeoutMs, noMux: true, reply: `${this.inbox}.${nuid.next()}` })
    } catch (e) {
      throw transportError(e, subject, timeoutMs)
    }
    const d = this.codec.decode(replySchema, m.data)
    if (!d.ok) {
      // Every `serve` answers a handler's error with an `err` reply, whatever the reply schema
      // names: that is the peer's error, not a malformed reply.
      const e = this.codec.decode(errReplySchema, m.data)
      if (e.ok) throw fromWire(e.value.error)
      this.rejects.count(`${subject} (reply)`, d.cause)
      throw new ShoalError('E_MSG_INVALID', `invalid reply on ${subject}: ${d.detail}`)
    }
    const value = d.value as { t?: unknown; error?: unknown }
    if (value.t === 'err') throw fromWire(value.error)
    return d.value
  }
}

function transportError(e: unknown, subject: string, timeoutMs: number): ShoalError {
  const err = e as Error & { isNoResponders?: () => boolean; cause?: unknown }
  const name = (x: unknown) => (x instanceof Error ? x.name : '')
  if (isPermissionViolation(e)) {
    // NATS refused this identity the subject (a secured cluster's permissions): no retry helps.
    return new ShoalError('E_FORBIDDEN', `NATS refused this identity ${subject}: ${err.message} (see docs/SECURITY.md for what each identity may do)`, { cause: e })
  }
  if (typeof err.isNoResponders === 'function' && err.isNoResponders()) {
    return new ShoalError('E_UNAVAILABLE', `nobody answers on ${subject} (is the balancer/host running?)`, { cause: e })
  }
  if (name(err) === 'TimeoutError' || name(err.cause) === 'TimeoutError') {
    return new ShoalError('E_TIMEOUT', `no answer on ${subject} within ${timeoutMs} ms`, { cause: e })
  }
  return new ShoalError('E_UNAVAILABLE', `request on ${subject} failed: ${err.message}`, { cause: e })
}

/** The server refused a publish or subscription for lack of permission. */
export function isPermissionViolation(e: unknown): boolean {
  for (let x: unknown = e, i = 0; x instanceof Error && i < 5; x = x.cause, i++) {
    if (x.name === 'PermissionViolationError' || /Permissions Violation/i.test(x.message)) return true
  }
  return false
}
