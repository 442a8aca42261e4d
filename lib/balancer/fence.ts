/**
 * The leader's fence: what every write to the store and every command to a host asks before it
 * goes out. A balancer acts only while its lease on leadership is confirmed; the fence's `term`
 * (the balancer's own epoch, one higher at every takeover) travels with each record and command so
 * that hosts and the store can refuse a deposed leader.
 *
 *   valid      the lease was renewed less than a lease ago: act
 *   suspended  the lease could not be renewed for a lease (store or NATS away, process frozen):
 *              nobody else can have led meanwhile unless the next renewal says so; wait
 *   revoked    deposed or stopped: never act again under this term
 *
 * Must never do I/O: the lease (lease.ts) drives it.
 */

import { ShoalError } from '../errors.ts'

export type FenceState = 'valid' | 'suspended' | 'revoked'

export interface Fence {
  readonly term: number
  state(): FenceState
  /** Resolves once the fence is valid; rejects with E_NOT_LEADER once it is revoked. */
  whenValid(): Promise<void>
  /** A record or reply shows a higher term than ours: another balancer leads. Revokes the fence. */
  deposed(why: string): void
}

export function notLeader(term: number, why: string): ShoalError {
  return new ShoalError('E_NOT_LEADER', `this balancer no longer leads (term ${term}): ${why}`)
}

/**
 * A fence whose validity is a deadline on the monotonic clock: renewing moves the deadline, and a
 * process frozen past it (SIGSTOP, a long pause) finds it suspended when it runs again, before it
 * can send anything.
 */
export class LeaseFence implements Fence {
  private validUntil: number
  private revokedWhy: string | undefined
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = []
  /** Called once when the fence is revoked (deposed or stopped), with the reason. */
  onRevoked: ((why: string) => void) | undefined

  constructor(
    readonly term: number,
    validUntil: number,
    private readonly now: () => number,
  ) {
    this.validUntil = validUntil
  }

  state(): FenceState {
    if (this.revokedWhy !== undefined) return 'revoked'
    return this.now() < this.validUntil ? 'valid' : 'suspended'
  }

  /** The lease was renewed: valid until `until` (monotonic ms). Wakes writers waiting for it. */
  renewed(until: number): void {
    if (this.revokedWhy !== undefined) return
    this.validUntil = Math.max(this.validUntil, until)
    if (this.state() === 'valid') this.wake()
  }

  whenValid(): Promise<void> {
    const s = this.state()
    if (s === 'valid') return Promise.resolve()
    if (s === 'revoked') return Promise.reject(notLeader(this.term, this.revokedWhy ?? 'revoked'))
    // Only a renewal or a revocation leaves 'suspended', and both wake the waiters.
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  deposed(why: string): void {
    this.revoke(why)
  }

  revoke(why: string): void {
    if (this.revokedWhy !== undefined) return
    this.revokedWhy = why
    this.wake()
    this.onRevoked?.(why)
  }

  private wake(): void {
    const ws = this.waiters
    this.waiters = []
    const err = this.revokedWhy !== undefined ? notLeader(this.term, this.revokedWhy) : undefined
    for (const w of ws) {
      if (err) w.reject(err)
      else w.resolve()
    }
  }
}

/** A fence that is always valid (one process that owns its store alone, in tests). */
export function openFence(term = 1): Fence {
  return {
    term,
    state: () => 'valid',
    whenValid: () => Promise.resolve(),
    deposed: () => undefined,
  }
}
