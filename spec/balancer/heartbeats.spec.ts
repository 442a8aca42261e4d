/**
 * The leader's membership tick (heartbeats.ts) against its own backlog: a heartbeat still waiting
 * in the balancer's work queue is not the host's silence. Real Membership and Ledger; the rest of
 * the context is plain data. Times are real but short (a 60 ms death), and the backlog is given.
 */

import { expect } from 'chai'
import { Heartbeats } from '../../lib/balancer/heartbeats.ts'
import { Ledger } from '../../lib/balancer/ledger.ts'
import type { BalancerContext } from '../../lib/balancer/context.ts'
import type { LoadHistory } from '../../lib/balancer/core/load-history.ts'
import { loadConfig } from '../../lib/config/mod.ts'
import { silentLogger } from '../../lib/log.ts'
import { Membership } from '../../lib/pool/membership.ts'
import type { Heartbeat } from '../../lib/protocol/messages.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'

const config = loadConfig({ env: {}, overrides: { cluster: 'hb', pool: { heartbeatMs: 20, suspectAfterMs: 30, hostDeadMs: 60 } } })

function beat(hostId: string, seq: number): Heartbeat {
  return {
    v: 1, t: 'hb', hostId, seq, startedAt: 1,
    capacity: { slots: 2, cores: 2, memoryBytes: 2 ** 30 }, tags: {}, processors: ['p'],
    load: { cpuMachine: 0, cpuShoal: 0, memFreeBytes: 2 ** 29, busySlots: 0, utilisation: 0 }, shares: [],
  }
}

function harness(backlogMs: () => number) {
  const membership = new Membership({ suspectAfterMs: 30, hostDeadMs: 60, heartbeatMs: 20 })
  const transitions: string[] = []
  const reclaimed: string[] = []
  const subjects = new Subjects('hb')
  const ctx = {
    log: silentLogger(),
    metrics: { hostTransitions: { inc: ({ to }: { to: string }) => transitions.push(to) } },
    subjects,
    bus: { rejects: { count: () => undefined } },
    ledger: new Ledger(),
    membership,
    tracking: { refusals: { forgetHost: () => undefined }, unbatched: new Map(), assignedAt: new Map(), moving: new Set(), live: new Map() },
    config: () => config,
    acting: () => true,
    kick: () => undefined,
  } as unknown as BalancerContext
  const loads = { observe: () => undefined, forgetHost: () => undefined } as unknown as LoadHistory
  const fate = { requeue: () => undefined, reclaim: (h: string) => void reclaimed.push(h) }
  const hb = new Heartbeats(ctx, loads, fate, { hearing: () => true, lastHeard: () => Date.now(), backlogMs })
  return { hb, membership, transitions, reclaimed, subjects }
}

/** Ticks every 5 ms for `ms` (the tick excuses a gap longer than its period plus a beat as a freeze). */
async function tickFor(hb: Heartbeats, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    hb.tick()
    await new Promise((r) => setTimeout(r, 5))
  }
  hb.tick()
}

describe('heartbeats: silence judged up to what the balancer has read', () => {
  it('declares no host suspect or dead while its heartbeats may still wait in the queue, and does once they cannot', async () => {
    let heardAt = 0
    const t = harness(() => (heardAt ? Date.now() - heardAt : 0))
    t.hb.tick()
    t.hb.onPool(beat('h1', 1), t.subjects.heartbeat('h1'))
    // From now on everything received waits in the queue: the backlog is as old as the beat.
    heardAt = Date.now()
    await tickFor(t.hb, 150)
    expect(t.membership.get('h1')!.state).to.equal('alive')
    expect(t.transitions).to.deep.equal(['alive'])
    // The queue is read: nothing from h1 was in it, so its silence is real.
    heardAt = 0
    await tickFor(t.hb, 20)
    expect(t.membership.get('h1')!.state).to.equal('dead')
    expect(t.transitions).to.deep.equal(['alive', 'dead'])
    expect(t.reclaimed).to.deep.equal(['h1'])
  })

  it('without a backlog, a silent host goes suspect then dead on time', async () => {
    const t = harness(() => 0)
    t.hb.tick()
    t.hb.onPool(beat('h2', 1), t.subjects.heartbeat('h2'))
    await tickFor(t.hb, 100)
    expect(t.transitions).to.deep.equal(['alive', 'suspect', 'dead'])
  })
})
