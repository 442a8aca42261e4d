/**
 * What one balancing pass does with its plan: the rules the balancer (passes.ts `pass`) and the
 * simulator (bench/sim/model.ts) share, so the simulator's figures describe the balancer that
 * runs (issue 12: the simulator dropped every migration on kick passes and remembered core speeds
 * only on interval passes, while the balancer did neither).
 *
 *   interval  every `balancer.intervalMs`: applies the whole plan, balancing moves included
 *   kick      a share pending, a slot freed, a host joined: fills capacity and makes the moves that
 *             must happen (drain, a broken constraint), but leaves balancing moves to the interval,
 *             as DRS does, so a burst of kicks cannot churn the pool
 *
 * Core speeds a pass measured are remembered (and handed back as `HostView.coreSpeed`) from interval
 * passes only: in a kick pass the shares' rates are still the last interval's while the loads are
 * new, so a speed computed from them mixes two moments.
 *
 * Must never import NATS, timers or the clock.
 */

import type { Action } from './cluster-view.ts'

export type PassKind = 'kick' | 'interval'

/** The actions of a plan that a pass of this kind applies. */
export function actionsFor(kind: PassKind, actions: readonly Action[]): readonly Action[] {
  return kind === 'interval' ? actions : actions.filter((a) => a.kind !== 'migrate' || a.reason !== 'imbalance')
}

/** Whether a pass of this kind remembers the core speeds it measured. */
export function recordsCoreSpeeds(kind: PassKind): boolean {
  return kind === 'interval'
}
