/**
 * What a balancing pass applies and remembers (lib/balancer/core/pass-rules.ts), the rules the
 * balancer and the simulator share. Plain data.
 */

import { expect } from 'chai'
import type { Action } from '../../lib/balancer/core/cluster-view.ts'
import { actionsFor, recordsCoreSpeeds } from '../../lib/balancer/core/pass-rules.ts'

const move = (shareId: string, reason: 'imbalance' | 'drain' | 'constraint'): Action => ({ kind: 'migrate', shareId, fromHost: 'a', toHost: 'b', reason, goodness: 0.1, cost: 0.01 }) as Action
const actions: Action[] = [
  { kind: 'place', shareId: 'p', hostId: 'a' } as Action,
  move('m1', 'imbalance'),
  move('m2', 'drain'),
  move('m3', 'constraint'),
  { kind: 'split', shareId: 's', toHost: 'b', fraction: 0.5 } as Action,
]

describe('pass rules', () => {
  it('an interval pass applies the whole plan', () => {
    expect(actionsFor('interval', actions).map((a) => a.shareId)).to.deep.equal(['p', 'm1', 'm2', 'm3', 's'])
  })

  it('a kick pass places, splits and makes the moves that must happen, but leaves balancing moves to the interval', () => {
    expect(actionsFor('kick', actions).map((a) => a.shareId)).to.deep.equal(['p', 'm2', 'm3', 's'])
  })

  it('remembers measured core speeds from interval passes only', () => {
    expect(recordsCoreSpeeds('interval')).to.equal(true)
    expect(recordsCoreSpeeds('kick')).to.equal(false)
  })
})
