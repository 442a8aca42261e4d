/**
 * A job that ends (lib/balancer/completion.ts `finishJob`) takes its shares out of the per-share
 * tracking: what was kept of them while they ran (assigned at, live position, last move, why one
 * was pending, an open failover) goes with the job, cancelled or failed ones included, so the
 * tracking holds what runs, not what ever ran. Real Ledger and Tracking; the store is a fake.
 */

import { expect } from 'chai'
import { Completion } from '../../lib/balancer/completion.ts'
import type { BalancerContext } from '../../lib/balancer/context.ts'
import { Ledger } from '../../lib/balancer/ledger.ts'
import type { Records } from '../../lib/balancer/records.ts'
import type { JobRecord, ShareRecord } from '../../lib/balancer/store.ts'
import { Tracking } from '../../lib/balancer/tracking.ts'
import { silentLogger } from '../../lib/log.ts'

const share = (i: number): ShareRecord => ({ shareId: `j1-s${i}`, jobId: 'j1', from: i * 10, to: i * 10 + 10, position: i * 10, status: 'pending', epoch: 0, host: null, hosts: [], unitsDone: 0, attempts: 0, failedOn: [], updatedAt: 0 })

describe('completion: a job that ends', () => {
  it('leaves nothing of its shares in the tracking when cancelled, and tells the host to drop the running one', async () => {
    const ledger = new Ledger()
    const tracking = new Tracking()
    const dropped: string[] = []
    const ctx = {
      log: silentLogger(),
      ledger,
      tracking,
      metrics: { jobDuration: { observe: () => undefined } },
      fence: { term: 2 },
      command: async (hostId: string, cmd: { t: string; shareId?: string }) => {
        dropped.push(`${hostId}:${cmd.t}:${cmd.shareId ?? ''}`)
        return { v: 1, t: 'ok' }
      },
    } as unknown as BalancerContext
    const records = { persistJob: async () => undefined, persistShare: async () => undefined, dropState: () => undefined, publishJob: () => undefined } as unknown as Records
    const job: JobRecord = { jobId: 'j1', processor: 'p', input: null, from: 0, to: 20, state: 'waiting', submittedAt: 0, nextShare: 2 }
    ledger.addJob(job)
    ledger.startJob(job)
    const [running, pending] = [share(0), share(1)]
    ledger.addShare(running)
    ledger.addShare(pending)
    ledger.assign(running, 'h1', 1)
    tracking.assignedAt.set(running.shareId, 1)
    tracking.live.set(running.shareId, { epoch: running.epoch, position: 5 })
    tracking.migratedAt.set(running.shareId, 1)
    tracking.pendingReason.set(pending.shareId, 'host-lost')
    tracking.openFailover.set(pending.shareId, { shareId: pending.shareId, jobId: 'j1', hostId: 'h2', at: 1, checkpointPosition: 10, lastKnownPosition: 12, unitsRedone: 2 })
    await new Completion(ctx, records).finishJob(job, 'cancelled', {})
    expect(job.state).to.equal('cancelled')
    expect([running.status, pending.status]).to.deep.equal(['cancelled', 'cancelled'])
    for (const m of [tracking.assignedAt, tracking.live, tracking.migratedAt, tracking.pendingReason, tracking.openFailover]) expect([...m.keys()]).to.deep.equal([])
    expect(dropped).to.deep.equal(['h1:drop:j1-s0'])
  })
})
