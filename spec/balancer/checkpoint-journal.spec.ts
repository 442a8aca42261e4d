/**
 * The checkpoint journal as plain data: which checkpoints go in a host's record, when an entry may
 * be forgotten (only once a durable share record makes it stale), and what recovery takes back.
 */

import { expect } from 'chai'
import fc from 'fast-check'
import { CheckpointJournal, newerThan, type DurableRun, type JournalEntry, type JournalRecord } from '../../lib/balancer/checkpoint-journal.ts'
import { Codec } from '../../lib/protocol/codec.ts'

const codec = new Codec(1024 * 1024)

/** A writer that keeps the last record per host, as the store would, and logs every call. */
function memoryWriter() {
  const records = new Map<string, JournalRecord>()
  const calls: string[] = []
  return {
    records,
    calls,
    writer: {
      put: async (hostId: string, rec: JournalRecord) => {
        calls.push(`put ${hostId} ${rec.entries.map((e) => `${e.shareId}@${e.position}`).join(',')}`)
        records.set(hostId, structuredClone(rec))
      },
      remove: async (hostId: string) => {
        calls.push(`remove ${hostId}`)
        records.delete(hostId)
      },
    },
  }
}

const entry = (shareId: string, position: number, epoch = 1, state: unknown = position): JournalEntry => ({ shareId, epoch, position, unitsDone: position, state, stateBytes: 8 })
const running = (host: string, epoch: number, position: number): DurableRun => ({ status: 'running', host, epoch, position })

function journal(limits = { maxRecordBytes: 4096, maxEntryBytes: 512 }) {
  const m = memoryWriter()
  return { ...m, j: new CheckpointJournal(m.writer, (x) => codec.sizeOf(x), limits) }
}

async function record(j: CheckpointJournal, host: string, e: JournalEntry): Promise<void> {
  const fit = j.fits(host, e)
  if (!fit.ok) throw new Error(`${e.shareId} does not fit`)
  await j.record(host, e, fit.bytes)
}

describe('checkpoint journal', () => {
  it('keeps every running share of a host in one record, each at its latest checkpoint', async () => {
    const { j, records, calls } = journal()
    await record(j, 'h1', entry('a', 10))
    await record(j, 'h1', entry('b', 5))
    await record(j, 'h1', entry('a', 20))
    expect(records.get('h1')!.entries.map((e) => [e.shareId, e.position])).to.deep.equal([['a', 20], ['b', 5]])
    expect(calls).to.have.length(3)
    expect(j.entry('a')!.position).to.equal(20)
  })

  it('forgets an entry only once a durable share record makes it stale, and deletes an empty host record', async () => {
    const { j, records, calls } = journal()
    await record(j, 'h1', entry('a', 10, 2))
    await record(j, 'h1', entry('b', 10, 2))
    // A share record still behind the entry (the assignment, at position 0): the entry stays.
    expect(j.covered('a', running('h1', 2, 0))).to.equal(undefined)
    expect(j.entry('a')).to.not.equal(undefined)
    // A record as far along: stale.
    await j.covered('a', running('h1', 2, 10))
    expect(j.entry('a')).to.equal(undefined)
    // A record that says the share moved on (pending again, another epoch, done): stale.
    await j.covered('b', { status: 'pending', host: null, epoch: 2, position: 10 })
    expect(j.size).to.equal(0)
    expect(records.has('h1')).to.equal(false)
    expect(calls.at(-1)).to.equal('remove h1')
  })

  it('sends a checkpoint too large for an entry, or for what the host\'s record has left, to the share record', async () => {
    const { j } = journal({ maxRecordBytes: 1200, maxEntryBytes: 512 })
    expect(j.fits('h1', entry('a', 1, 1, 'x'.repeat(600))).ok, 'over the entry limit').to.equal(false)
    await record(j, 'h1', entry('a', 1, 1, 'x'.repeat(400)))
    await record(j, 'h1', entry('b', 1, 1, 'x'.repeat(400)))
    expect(j.fits('h1', entry('c', 1, 1, 'x'.repeat(400))).ok, 'the record is full').to.equal(false)
    // Replacing a share's own entry counts its old size out.
    expect(j.fits('h1', entry('a', 2, 1, 'x'.repeat(400))).ok).to.equal(true)
  })

  it('moves a share\'s entry to its new host and deletes the old host\'s record once empty', async () => {
    const { j, records } = journal()
    await record(j, 'h1', entry('a', 10, 1))
    await record(j, 'h2', entry('a', 15, 2))
    await new Promise((r) => setImmediate(r))
    expect(records.has('h1')).to.equal(false)
    expect(records.get('h2')!.entries).to.have.length(1)
  })

  it('at recovery, takes back only entries further along than a share record that says the share runs there under that epoch', () => {
    const { j } = journal()
    const runs: Record<string, DurableRun> = {
      a: running('h1', 3, 10), // entry 50 at epoch 3: taken
      b: running('h1', 4, 10), // entry at epoch 3: the share moved on
      c: running('h2', 3, 10), // entry on h1: another host's run
      d: running('h1', 3, 60), // the record is further along
      e: { status: 'done', host: 'h1', epoch: 3, position: 100 },
    }
    const recs: JournalRecord[] = [{ hostId: 'h1', entries: ['a', 'b', 'c', 'd', 'e', 'unknown'].map((id) => entry(id, 50, 3)) }]
    const taken = j.recover(recs, (id) => runs[id])
    expect(taken.map((e) => e.shareId)).to.deep.equal(['a'])
    // Held again: it stays in h1's record until a share record covers it.
    expect(j.entry('a')!.position).to.equal(50)
    expect(j.size).to.equal(1)
  })

  it('property: after any sequence of checkpoints and share record writes, recovery from the records gives every share its latest acknowledged checkpoint', async () => {
    // 'late': a share record write that took the share as it was before its latest checkpoints
    // (started before them, durable after them), as an assignment's write can be.
    type Op = { k: 'cp'; share: number; advance: number } | { k: 'persist'; share: number } | { k: 'late'; share: number; back: number } | { k: 'move'; share: number; host: number }
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant('cp' as const), share: fc.integer({ min: 0, max: 4 }), advance: fc.integer({ min: 1, max: 9 }) }),
      fc.record({ k: fc.constant('persist' as const), share: fc.integer({ min: 0, max: 4 }) }),
      fc.record({ k: fc.constant('late' as const), share: fc.integer({ min: 0, max: 4 }), back: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ k: fc.constant('move' as const), share: fc.integer({ min: 0, max: 4 }), host: fc.integer({ min: 0, max: 2 }) }),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const { j, records } = journal()
        // Memory, and the share records as durable in the store.
        const mem = Array.from({ length: 5 }, (_, i) => ({ id: `s${i}`, host: `h${i % 3}`, epoch: 1, position: 0 }))
        const stored = mem.map((s) => ({ ...s, status: 'running' }))
        const acked = mem.map(() => 0)
        for (const o of ops) {
          const s = mem[o.share]!
          if (o.k === 'cp') {
            s.position += o.advance
            await record(j, s.host, entry(s.id, s.position, s.epoch))
            acked[o.share] = s.position
          } else {
            // A share record write (a move writes the new epoch and host, at the share's position).
            if (o.k === 'move') {
              s.host = `h${o.host}`
              s.epoch += 1
            }
            // A late write took the share at some moment since its record was last written.
            const since = stored[o.share]!.epoch === s.epoch ? stored[o.share]!.position : s.position
            const position = o.k === 'late' ? Math.max(since, s.position - o.back) : s.position
            const run = { status: 'running', host: s.host, epoch: s.epoch, position }
            stored[o.share] = { id: s.id, ...run }
            await j.covered(s.id, run)
          }
        }
        const next = new CheckpointJournal(memoryWriter().writer, (x) => codec.sizeOf(x), { maxRecordBytes: 1 << 20, maxEntryBytes: 4096 })
        const adopted = next.recover([...records.values()], (id) => stored.find((r) => r.id === id))
        for (let i = 0; i < 5; i++) {
          const fromJournal = adopted.find((e) => e.shareId === `s${i}`)?.position
          const recovered = Math.max(stored[i]!.position, fromJournal ?? 0)
          expect(recovered, `share s${i}`).to.equal(Math.max(acked[i]!, stored[i]!.position))
        }
      }),
      { numRuns: 300 },
    )
  })

  it('newerThan: a later checkpoint of exactly the run the share record describes', () => {
    const e = entry('a', 20, 4)
    expect(newerThan(e, 'h1', running('h1', 4, 19))).to.equal(true)
    expect(newerThan(e, 'h1', running('h1', 4, 20))).to.equal(false)
    expect(newerThan(e, 'h2', running('h1', 4, 0))).to.equal(false)
    expect(newerThan(e, 'h1', running('h1', 5, 0))).to.equal(false)
    expect(newerThan(e, 'h1', { status: 'pending', host: 'h1', epoch: 4, position: 0 })).to.equal(false)
  })
})
