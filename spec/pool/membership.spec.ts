/**
 * Behaviour of lib/pool/membership.ts, the pure pool state machine: alive on the first beat,
 * suspect and then dead after silence (at the exact boundaries), back to alive with a new
 * incarnation, leave, out-of-order and restarted-process beats, forgetting, and alive(). A property
 * test drives random beat/tick/leave sequences and checks that death follows silence, and only it.
 *
 * Must never use timers or the clock: time is a plain number passed to every call.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { Membership, type MembershipConfig, type MembershipEvent } from '../../lib/pool/membership.ts'
import type { Heartbeat } from '../../lib/protocol/messages.ts'

const CFG: MembershipConfig = { suspectAfterMs: 3_000, hostDeadMs: 10_000, forgetAfterMs: 60_000 }

function hb(hostId: string, seq: number, startedAt = 1_000): Heartbeat {
  return {
    v: 1,
    t: 'hb',
    hostId,
    seq,
    startedAt,
    capacity: { slots: 4, cores: 4, memoryBytes: 2 ** 33 },
    tags: {},
    processors: ['count-primes'],
    load: { cpuMachine: 0.1, cpuShoal: 0.05, memFreeBytes: 2 ** 32, busySlots: 0, utilisation: 0 },
    shares: [],
  }
}

function transitions(events: MembershipEvent[]): string[] {
  return events.map((e) => `${e.hostId}:${e.from ?? 'new'}->${e.to}@${e.at}`)
}

describe('pool membership', () => {
  let m: Membership
  beforeEach(() => {
    m = new Membership(CFG)
  })

  it('reports a host alive on its first heartbeat', () => {
    expect(m.observe(hb('a', 1), 100)).to.deep.equal([{ hostId: 'a', from: null, to: 'alive', at: 100 }])
    const h = m.get('a')
    expect(h?.state).to.equal('alive')
    expect(h?.lastSeen).to.equal(100)
    expect(h?.incarnation).to.equal(0)
  })

  it('does not count time the observer could not hear as a host\'s silence (excuse)', () => {
    m.observe(hb('a', 1), 0)
    m.observe(hb('b', 1), 2_000)
    // The observer was blind from 5 s to 60 s (its NATS link was down): a had been silent 5 s and
    // b 3 s when it went blind, and each keeps what it had left, counted from 60 s.
    m.excuse(5_000, 60_000)
    expect(m.tick(60_000).filter((e) => e.to === 'dead')).to.deep.equal([])
    expect(transitions(m.tick(60_000 + CFG.hostDeadMs - 5_000))).to.deep.equal([`a:suspect->dead@${60_000 + CFG.hostDeadMs - 5_000}`])
    expect(m.get('b')?.state).to.equal('suspect')
    expect(transitions(m.tick(60_000 + CFG.hostDeadMs - 3_000))).to.deep.equal([`b:suspect->dead@${60_000 + CFG.hostDeadMs - 3_000}`])
  })

  it('excuses nothing for a host heard after the blind time, nor for dead or departed hosts', () => {
    m.observe(hb('a', 1), 0)
    m.tick(CFG.hostDeadMs)
    m.observe(hb('c', 1), 9_000)
    m.excuse(1_000, 8_000)
    expect(m.get('a')?.lastSeen).to.equal(0)
    expect(m.get('c')?.lastSeen).to.equal(9_000)
  })

  it('reports nothing for further beats of a host that is already alive, but remembers the latest', () => {
    m.observe(hb('a', 1), 0)
    expect(m.observe(hb('a', 2), 1_000)).to.deep.equal([])
    expect(m.get('a')?.lastSeen).to.equal(1_000)
    expect(m.get('a')?.heartbeat.seq).to.equal(2)
  })

  it('turns a host suspect once it has been silent for suspectAfterMs, and not 1 ms before', () => {
    m.observe(hb('a', 1), 0)
    expect(m.tick(CFG.suspectAfterMs - 1)).to.deep.equal([])
    expect(m.get('a')?.state).to.equal('alive')
    expect(transitions(m.tick(CFG.suspectAfterMs))).to.deep.equal([`a:alive->suspect@${CFG.suspectAfterMs}`])
    expect(m.get('a')?.state).to.equal('suspect')
  })

  it('turns a suspect host dead at exactly hostDeadMs of silence, and not 1 ms before', () => {
    m.observe(hb('a', 1), 0)
    m.tick(CFG.suspectAfterMs)
    expect(m.tick(CFG.hostDeadMs - 1)).to.deep.equal([])
    expect(m.get('a')?.state).to.equal('suspect')
    expect(transitions(m.tick(CFG.hostDeadMs))).to.deep.equal([`a:suspect->dead@${CFG.hostDeadMs}`])
    expect(m.get('a')?.state).to.equal('dead')
  })

  it('turns an alive host straight to dead when the first tick comes after hostDeadMs', () => {
    m.observe(hb('a', 1), 0)
    expect(transitions(m.tick(CFG.hostDeadMs + 5_000))).to.deep.equal([`a:alive->dead@${CFG.hostDeadMs + 5_000}`])
  })

  it('reports each transition once, however many ticks follow', () => {
    m.observe(hb('a', 1), 0)
    const all = [...m.tick(4_000), ...m.tick(5_000), ...m.tick(10_000), ...m.tick(11_000), ...m.tick(20_000)]
    expect(transitions(all)).to.deep.equal(['a:alive->suspect@4000', 'a:suspect->dead@10000'])
  })

  it('brings a suspect host back to alive on a beat without a new incarnation', () => {
    m.observe(hb('a', 1), 0)
    m.tick(5_000)
    expect(transitions(m.observe(hb('a', 2), 6_000))).to.deep.equal(['a:suspect->alive@6000'])
    expect(m.get('a')?.incarnation).to.equal(0)
  })

  it('brings a dead host that beats again back to alive with its incarnation incremented', () => {
    m.observe(hb('a', 1), 0)
    m.tick(10_000)
    expect(transitions(m.observe(hb('a', 2), 12_000))).to.deep.equal(['a:dead->alive@12000'])
    expect(m.get('a')?.incarnation).to.equal(1)
    m.tick(30_000)
    m.observe(hb('a', 3), 31_000)
    expect(m.get('a')?.incarnation).to.equal(2)
  })

  it('restarts the silence clock on a beat, so a host that keeps beating never turns suspect', () => {
    for (let t = 0; t <= 60_000; t += 2_000) {
      m.observe(hb('a', t + 1), t)
      expect(m.tick(t + 1_999)).to.deep.equal([])
    }
    expect(m.get('a')?.state).to.equal('alive')
  })

  it('marks a host left on leave, and a later tick never turns it dead', () => {
    m.observe(hb('a', 1), 0)
    expect(m.leave('a', 500)).to.deep.equal([{ hostId: 'a', from: 'alive', to: 'left', at: 500 }])
    expect(m.tick(CFG.hostDeadMs * 2)).to.deep.equal([])
    expect(m.get('a')?.state).to.equal('left')
  })

  it('brings a host that left and started again back to alive with its incarnation incremented', () => {
    m.observe(hb('a', 40, 1_000), 1_000)
    m.leave('a', 2_000)
    expect(transitions(m.observe(hb('a', 0, 3_000), 3_500))).to.deep.equal(['a:left->alive@3500'])
    expect(m.get('a')?.incarnation).to.equal(1)
  })

  it('reports nothing for a second leave or the leave of an unknown host', () => {
    m.observe(hb('a', 1), 0)
    m.leave('a', 1)
    expect(m.leave('a', 2)).to.deep.equal([])
    expect(m.leave('ghost', 3)).to.deep.equal([])
    expect(m.get('ghost')).to.equal(undefined)
  })

  it('lets a suspect or dead host leave', () => {
    m.observe(hb('a', 1), 0)
    m.observe(hb('b', 1), 0)
    m.observe(hb('a', 2), 5_000)
    m.tick(10_000)
    expect(m.get('a')?.state).to.equal('suspect')
    expect(m.get('b')?.state).to.equal('dead')
    expect(transitions([...m.leave('a', 11_000), ...m.leave('b', 11_000)])).to.deep.equal([
      'a:suspect->left@11000',
      'b:dead->left@11000',
    ])
  })

  it('ignores an out-of-order beat (same process, lower or equal seq)', () => {
    m.observe(hb('a', 5), 1_000)
    expect(m.observe(hb('a', 4), 2_000)).to.deep.equal([])
    expect(m.observe(hb('a', 5), 2_000)).to.deep.equal([])
    expect(m.get('a')?.heartbeat.seq).to.equal(5)
    expect(m.get('a')?.lastSeen).to.equal(1_000)
    // Had the stale beats refreshed lastSeen, the host would not be suspect yet.
    expect(transitions(m.tick(1_000 + CFG.suspectAfterMs))).to.deep.equal([`a:alive->suspect@${1_000 + CFG.suspectAfterMs}`])
  })

  it('does not revive a dead host with an out-of-order beat', () => {
    m.observe(hb('a', 5), 0)
    m.tick(10_000)
    expect(m.observe(hb('a', 3), 11_000)).to.deep.equal([])
    expect(m.get('a')?.state).to.equal('dead')
  })

  it('accepts a beat from a restarted process (new startedAt) even with a lower seq', () => {
    m.observe(hb('a', 900, 1_000), 1_000)
    m.tick(20_000)
    expect(transitions(m.observe(hb('a', 1, 19_000), 20_000))).to.deep.equal(['a:dead->alive@20000'])
    expect(m.get('a')?.heartbeat.startedAt).to.equal(19_000)
    expect(m.get('a')?.heartbeat.seq).to.equal(1)
    expect(m.observe(hb('a', 2, 19_000), 21_000)).to.deep.equal([])
    expect(m.get('a')?.lastSeen).to.equal(21_000)
  })

  it('accepts a restarted process while the host still looks alive, without an event', () => {
    m.observe(hb('a', 900, 1_000), 1_000)
    expect(m.observe(hb('a', 0, 2_000), 2_500)).to.deep.equal([])
    expect(m.get('a')?.heartbeat.seq).to.equal(0)
    expect(m.get('a')?.lastSeen).to.equal(2_500)
  })

  it('forgets a dead host forgetAfterMs after it died, and not 1 ms before', () => {
    m.observe(hb('a', 1), 0)
    m.tick(10_000)
    m.tick(10_000 + CFG.forgetAfterMs! - 1)
    expect(m.get('a')?.state).to.equal('dead')
    expect(m.tick(10_000 + CFG.forgetAfterMs!)).to.deep.equal([])
    expect(m.get('a')).to.equal(undefined)
    expect(m.all()).to.deep.equal([])
  })

  it('forgets a host that left forgetAfterMs after it left', () => {
    m.observe(hb('a', 1), 0)
    m.leave('a', 100)
    m.tick(100 + CFG.forgetAfterMs! - 1)
    expect(m.get('a')?.state).to.equal('left')
    m.tick(100 + CFG.forgetAfterMs!)
    expect(m.get('a')).to.equal(undefined)
  })

  it('forgets after ten minutes when forgetAfterMs is not set', () => {
    const d = new Membership({ suspectAfterMs: 1, hostDeadMs: 2 })
    d.observe(hb('a', 1), 0)
    d.tick(2)
    d.tick(2 + 600_000 - 1)
    expect(d.get('a')?.state).to.equal('dead')
    d.tick(2 + 600_000)
    expect(d.get('a')).to.equal(undefined)
  })

  it('treats a forgotten host that beats again as new', () => {
    m.observe(hb('a', 7), 0)
    m.tick(10_000)
    m.tick(10_000 + CFG.forgetAfterMs!)
    expect(m.observe(hb('a', 1), 80_000)).to.deep.equal([{ hostId: 'a', from: null, to: 'alive', at: 80_000 }])
  })

  it('lists only alive hosts in alive(), and every known host in all()', () => {
    m.observe(hb('alive', 1), 9_000)
    m.observe(hb('suspect', 1), 5_000)
    m.observe(hb('dead', 1), 0)
    m.observe(hb('left', 1), 9_000)
    m.leave('left', 9_500)
    m.tick(10_000)
    expect(Object.fromEntries(m.all().map((h) => [h.hostId, h.state]))).to.deep.equal({
      alive: 'alive',
      suspect: 'suspect',
      dead: 'dead',
      left: 'left',
    })
    expect(m.alive().map((h) => h.hostId)).to.deep.equal(['alive'])
  })

  it('applies a new configuration from the next tick on', () => {
    m.observe(hb('a', 1), 0)
    expect(m.tick(2_000)).to.deep.equal([])
    m.reconfigure({ suspectAfterMs: 500, hostDeadMs: 1_000 })
    expect(transitions(m.tick(2_000))).to.deep.equal(['a:alive->dead@2000'])
  })

  describe('property: death follows silence, and only silence', () => {
    type Step =
      | { kind: 'beat'; host: number; dt: number; restart: boolean; stale: boolean }
      | { kind: 'tick'; dt: number }
      | { kind: 'leave'; host: number; dt: number }

    const HOSTS = 4
    const host = fc.integer({ min: 0, max: HOSTS - 1 })
    const dt = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 0, max: 15_000 }))
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('beat' as const), host, dt, restart: fc.boolean(), stale: fc.boolean() }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('tick' as const), dt }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('leave' as const), host, dt }) },
    )
    const config = fc
      .tuple(fc.integer({ min: 1, max: 8_000 }), fc.integer({ min: 0, max: 8_000 }))
      .map(([suspectAfterMs, extra]) => ({ suspectAfterMs, hostDeadMs: suspectAfterMs + extra, forgetAfterMs: Number.MAX_SAFE_INTEGER }))

    it('never reports a host dead within hostDeadMs of its last beat, and always after', () => {
      fc.assert(
        fc.property(config, fc.array(step, { maxLength: 80 }), (cfg, steps) => {
          const pool = new Membership(cfg)
          // The model: the last accepted beat of each host, and its process identity.
          const lastBeat = new Map<string, number>()
          const proc = new Map<string, { startedAt: number; seq: number }>()
          let now = 0
          for (const st of steps) {
            now += st.dt
            if (st.kind === 'beat') {
              const id = `h${st.host}`
              const prev = proc.get(id)
              let beat: Heartbeat
              if (!prev || st.restart) {
                beat = hb(id, 0, (prev?.startedAt ?? 0) + 1)
              } else if (st.stale) {
                beat = hb(id, prev.seq, prev.startedAt) // a duplicate: must be ignored
              } else {
                beat = hb(id, prev.seq + 1, prev.startedAt)
              }
              const accepted = !prev || beat.startedAt !== prev.startedAt || beat.seq > prev.seq
              pool.observe(beat, now)
              if (accepted) {
                lastBeat.set(id, now)
                proc.set(id, { startedAt: beat.startedAt, seq: beat.seq })
              }
              expect(pool.get(id)?.lastSeen).to.equal(lastBeat.get(id))
            } else if (st.kind === 'leave') {
              pool.leave(`h${st.host}`, now)
            } else {
              const events = pool.tick(now)
              for (const [id, last] of lastBeat) {
                const silent = now - last
                const state = pool.get(id)?.state
                if (silent < cfg.hostDeadMs) {
                  expect(events.some((e) => e.hostId === id && e.to === 'dead'), `${id} silent ${silent}ms`).to.equal(false)
                  expect(state, `${id} silent ${silent}ms`).to.not.equal('dead')
                } else {
                  expect(state, `${id} silent ${silent}ms`).to.be.oneOf(['dead', 'left'])
                }
                if (silent < cfg.suspectAfterMs) expect(state, `${id} silent ${silent}ms`).to.be.oneOf(['alive', 'left'])
              }
            }
          }
        }),
        { numRuns: 500 },
      )
    })
  })
})
