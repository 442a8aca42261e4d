/**
 * Reports (lib/balancer/reports.ts) and what the balancer keeps after them: a share that is done
 * leaves nothing behind in the per-share tracking, so what the leader walks on a membership
 * excuse, or holds in memory, grows with the shares that run, not with every share ever finished.
 * Real Ledger and Tracking; the store is a fake that stores at once.
 */

import { expect } from 'chai'
import type { BalancerContext } from '../../lib/balancer/context.ts'
import { Ledger } from '../../lib/balancer/ledger.ts'
import { Reports } from '../../lib/balancer/reports.ts'
import type { Records } from '../../lib/balancer/records.ts'
import type { JobRecord, ShareRecord } from '../../lib/balancer/store.ts'
import { Tracking } from '../../lib/balancer/tracking.ts'
import { loadConfig } from '../../lib/config/mod.ts'
import { silentLogger } from '../../lib/log.ts'
import { PROTOCOL_VERSION as V, type Report } from '../../lib/protocol/messages.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'

const config = loadConfig({ env: {}, overrides: { cluster: 'rp' } })
const counter = { inc: () => undefined }
const histogram = { observe: () => undefined }

function harness() {
  const ledger = new Ledger()
  const tracking = new Tracking()
  const subjects = new Subjects('rp')
  const completed: string[] = []
  const ctx = {
    log: silentLogger(),
    metrics: { reportAnswer: histogram, checkpointFailures: counter, checkpoints: counter, checkpointSize: histogram },
    subjects,
    bus: { rejects: { count: () => undefined } },
    ledger,
    tracking,
    config: () => config,
    fence: { term: 3 },
    actingSoon: async () => true,
    kick: () => undefined,
  } as unknown as BalancerContext
  const records = { persistShare: async () => undefined, persistCheckpoint: async () => undefined, dropState: () => undefined } as unknown as Records
  const reports = new Reports(ctx, records, { failed: async () => undefined }, { complete: (jobId) => void completed.push(jobId) }, { addTail: async () => { throw new Error('no tail expected') } })
  return { ledger, tracking, subjects, reports, completed }
}

const job: JobRecord = { jobId: 'j1', processor: 'p', input: null, from: 0, to: 40, state: 'running', submittedAt: 0, nextShare: 4 }
const share = (i: number): ShareRecord => ({ shareId: `j1-s${i}`, jobId: 'j1', from: i * 10, to: i * 10 + 10, position: i * 10, status: 'pending', epoch: 0, host: null, hosts: [], unitsDone: 0, attempts: 0, failedOn: [], updatedAt: 0 })

describe('reports', () => {
  it('keeps nothing tracked of a share once it is done (assigned-at, live position, last move)', async () => {
    const t = harness()
    t.ledger.addJob(job)
    const shares = [0, 1, 2, 3].map(share)
    for (const s of shares) {
      t.ledger.addShare(s)
      t.ledger.assign(s, 'h1', 1)
      t.tracking.assignedAt.set(s.shareId, 1)
      t.tracking.live.set(s.shareId, { epoch: s.epoch, position: s.from + 5 })
      t.tracking.migratedAt.set(s.shareId, 1)
    }
    for (const s of shares.slice(0, 3)) {
      const done: Report = { v: V, t: 'done', hostId: 'h1', shareId: s.shareId, epoch: s.epoch, to: s.to, result: 1, unitsDone: 10, elapsedMs: 5 }
      const answer = await t.reports.onReportFrom(done, t.subjects.report('h1'))
      expect(answer).to.deep.include({ t: 'ack' })
    }
    // The three done shares are gone from every map; the one still running keeps its entries.
    expect([...t.tracking.assignedAt.keys()]).to.deep.equal(['j1-s3'])
    expect([...t.tracking.live.keys()]).to.deep.equal(['j1-s3'])
    expect([...t.tracking.migratedAt.keys()]).to.deep.equal(['j1-s3'])
    expect(t.completed).to.deep.equal(['j1', 'j1', 'j1'])
  })
})
