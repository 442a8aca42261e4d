/**
 * The one error module of Shoal. Every error the product raises is a ShoalError with a stable
 * string `code`, a `retryable` flag and an optional `cause`, so callers branch on codes, never on
 * message text. Errors that cross a worker thread or NATS go through toWire/fromWire: `instanceof`
 * does not survive a structured clone or a msgpack round trip.
 *
 * Must never import anything from the rest of Shoal (everything imports this).
 */

/** Every error code Shoal uses, with whether a retry may succeed. */
export const ERROR_CODES = {
  /** A configuration value is missing, of the wrong type or out of range. */
  E_CONFIG: false,
  /** The nats-server binary could not be found. */
  E_NATS_SERVER_MISSING: false,
  /** nats-server was found but did not start or accept connections in time. */
  E_NATS_SERVER_START: true,
  /** A message failed validation (wrong shape, unknown type or version, not msgpack). */
  E_MSG_INVALID: false,
  /** A message is larger than `protocol.maxMessageBytes`. */
  E_MSG_TOO_LARGE: false,
  /** No host in the pool registers the requested processor. */
  E_UNKNOWN_PROCESSOR: false,
  /** A processor module could not be loaded or does not export a processor. */
  E_PROCESSOR_LOAD: false,
  /** A processor's step, init, result or merge threw. */
  E_PROCESSOR_THREW: false,
  /** A job's range is empty or malformed. */
  E_BAD_RANGE: false,
  /** A job submission is malformed (bad share count, input not serializable, ...). */
  E_BAD_JOB: false,
  /** A job with that id exists already with another processor, range, input or constraints: the error names what differs. */
  E_JOB_EXISTS: false,
  /** The job is not known to the balancer. */
  E_NO_SUCH_JOB: false,
  /** The job was cancelled. */
  E_CANCELLED: false,
  /** A job failed; `cause` carries the share's error. */
  E_JOB_FAILED: false,
  /** A request got no answer in time (balancer or host unreachable). */
  E_TIMEOUT: true,
  /** No responder: the balancer (or a host) is not running. */
  E_UNAVAILABLE: true,
  /** A message about a share carries an epoch older than the share's current one. */
  E_STALE_EPOCH: false,
  /** A checkpoint's state is larger than `shares.maxCheckpointBytes`. */
  E_CHECKPOINT_TOO_LARGE: false,
  /** The host does not run the share named in a command, or the share is not known. */
  E_NO_SUCH_SHARE: false,
  /** No host with that id is in the pool. */
  E_NO_SUCH_HOST: false,
  /** A migration was refused (target not eligible or full, share not running, already moving). */
  E_MIGRATION_REFUSED: false,
  /** The metrics endpoint could not listen (port taken, not allowed). */
  E_METRICS_PORT: false,
  /** A persistence operation against JetStream failed. */
  E_STORE: true,
  /** This balancer does not lead (deposed, standing by, or its lease is unconfirmed): ask the leader. */
  E_NOT_LEADER: true,
  /** A command came from a balancer whose term is lower than one the host has obeyed: a deposed leader. */
  E_STALE_TERM: false,
  /** NATS refused this process's credentials (none given, wrong, or not in the server's auth config). */
  E_AUTH: false,
  /** The caller may not do this: NATS refused the subject, or the balancer refused the identity (another's job, a submitter acting as operator). */
  E_FORBIDDEN: false,
  /** A share's assignment was refused by host after host (or cannot be sent at all): its job fails instead of retrying forever. */
  E_UNPLACEABLE: false,
  /** A bug: something that should not happen did. */
  E_INTERNAL: false,
} as const satisfies Record<string, boolean>

export type ErrorCode = keyof typeof ERROR_CODES

export interface ShoalErrorOptions {
  cause?: unknown
  retryable?: boolean
  /** Machine-readable details (key, value, shareId, ...); must be msgpack-serializable. */
  details?: Record<string, unknown>
}

/** The error type of Shoal. Branch on `code`. */
export class ShoalError extends Error {
  readonly code: ErrorCode
  readonly retryable: boolean
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, opts: ShoalErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'ShoalError'
    this.code = code
    this.retryable = opts.retryable ?? ERROR_CODES[code] ?? false
    this.details = opts.details
  }
}

/** The plain-object form of an error that crosses NATS or a worker thread. */
export interface WireError {
  code: ErrorCode
  message: string
  retryable: boolean
  details?: Record<string, unknown>
  cause?: WireError
}

function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.hasOwn(ERROR_CODES, x)
}

/**
 * Turns anything thrown into a WireError. Foreign errors (a processor's TypeError, say) keep their
 * message and name under `fallbackCode`, so the user sees what their code threw.
 */
export function toWire(err: unknown, fallbackCode: ErrorCode = 'E_INTERNAL', depth = 0): WireError {
  if (err instanceof ShoalError) {
    const w: WireError = { code: err.code, message: err.message, retryable: err.retryable }
    if (err.details !== undefined) w.details = err.details
    if (err.cause !== undefined && depth < 4) w.cause = toWire(err.cause, 'E_INTERNAL', depth + 1)
    return w
  }
  if (err instanceof Error) {
    const prefix = err.name && err.name !== 'Error' ? `${err.name}: ` : ''
    const w: WireError = { code: fallbackCode, message: prefix + err.message, retryable: ERROR_CODES[fallbackCode] }
    if (err.stack) w.details = { stack: err.stack.split('\n').slice(0, 8).join('\n') }
    return w
  }
  if (typeof err === 'object' && err !== null && isErrorCode((err as WireError).code)) {
    return err as WireError
  }
  return { code: fallbackCode, message: String(err), retryable: ERROR_CODES[fallbackCode] }
}

/** Rebuilds a ShoalError from its wire form (or from anything that looks like one). */
export function fromWire(w: unknown): ShoalError {
  if (typeof w !== 'object' || w === null) return new ShoalError('E_INTERNAL', String(w))
  const o = w as Partial<WireError>
  const code = isErrorCode(o.code) ? o.code : 'E_INTERNAL'
  const opts: ShoalErrorOptions = { retryable: typeof o.retryable === 'boolean' ? o.retryable : ERROR_CODES[code] }
  if (o.details) opts.details = o.details
  if (o.cause) opts.cause = fromWire(o.cause)
  return new ShoalError(code, typeof o.message === 'string' ? o.message : code, opts)
}
