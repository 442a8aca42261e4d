/**
 * A new term's start (recovery.ts) over records a fake store hands back: the ledger rebuilt, a
 * share without its job ignored, drained hosts remembered, a journal checkpoint adopted, and the
 * original of a split interrupted by a crash trimmed and written, while a job whose shares are all
 * done is left as it is.
 */

import { expect } from 'chai'
import { recover } from '../../lib/balancer/recovery.ts'
import { Archive } from '../../lib/balancer/archive.ts'
import { Ledger } from '../../lib/balancer/ledger.ts'
import { CheckpointJournal, type JournalRecord } from '../../lib/balancer/checkpoint-journal.ts'
import type { BalancerContext } from '../../lib/balancer/context.ts'
import type { Records } from '../../lib/balancer/records.ts'
import type { HostRecord, JobRecord, ShareRecord } from '../../lib/balancer/store.ts'
import { silentLogger } from '../../lib/log.ts'

const job = (jobId: string, state: JobRecord['state'], submittedAt: number): JobRecord => ({ jobId, processor: 'p', input: null, from: 0, to: 10, state, submittedAt, nextShare: 2 })
const share = (jobId: string, i: number, from: number, to: number, status: ShareRecord['status'], more: Partial<ShareRecord> = {}): ShareRecord => ({
  shareId: `${jobId}-s${i}`, jobId, from, to, position: status === 'done' ? to : from, status, epoch: 1, host: status === 'running' ? 'h1' : null, hosts: ['h1'], unitsDone: 0, attempts: 0, failedOn: [], updatedAt: 1, ...more,
})

async function recoverFrom(loaded: { jobs: JobRecord[]; shares: ShareRecord[]; hosts?: HostRecord[]; journal?: JournalRecord[] }, retainMs = 60_000) {
  const ledger = new Ledger()
  const draining = new Set<string>()
  const written: ShareRecord[] = []
  const forgotten: string[] = []
  const archive = new Archive()
  const ctx = { ledger, log: silentLogger(), limited: { warn: () => undefined }, tracking: { draining }, config: () => ({ jobs: { retainMs } }) } as unknown as BalancerContext
  const records = {
    archive,
    store: {
      loadAll: async () => ({ hosts: [], journal: [], ...loaded }),
      forgetRevisions: (jobIds: string[], shareIds: string[]) => forgotten.push(...jobIds, ...shareIds),
    },
    persistShare: async (s: ShareRecord) => void written.push({ ...s }),
  } as unknown as Records
  const journal = new CheckpointJournal({ put: async () => undefined, remove: async () => undefined }, () => 10, { maxRecordBytes: 1 << 20, maxEntryBytes: 1 << 16 })
  await recover(ctx, records, journal)
  return { ledger, draining, written, archive, forgotten }
}

describe('recovery at the start of a term', () => {
  it('rebuilds the ledger in submission order, ignores a share without its job, and remembers drained hosts', async () => {
    const { ledger, draining } = await recoverFrom({
      jobs: [job('b', 'completed', 2), job('a', 'running', 1)],
      shares: [share('a', 0, 0, 10, 'running'), share('b', 0, 0, 10, 'done'), share('gone', 0, 0, 10, 'done')],
      hosts: [{ hostId: 'h1', draining: true }, { hostId: 'h2', draining: false }],
    })
    expect(ledger.newestJobs(10).map((j) => j.jobId)).to.deep.equal(['b', 'a'])
    expect(ledger.shareCount).to.equal(2)
    expect(ledger.share('gone-s0')).to.equal(undefined)
    expect([...draining]).to.deep.equal(['h1'])
  })

  it('leaves finished jobs past jobs.retainMs out of memory: archived, their shares skipped and their revisions forgotten', async () => {
    const now = Date.now()
    const { ledger, archive, forgotten } = await recoverFrom({
      jobs: [{ ...job('old', 'completed', 1), finishedAt: now - 120_000 }, { ...job('recent', 'failed', 2), finishedAt: now - 1_000 }, job('a', 'running', 3)],
      shares: [share('old', 0, 0, 5, 'done'), share('old', 1, 5, 10, 'done'), share('recent', 0, 0, 10, 'failed'), share('a', 0, 0, 10, 'running')],
    }, 60_000)
    expect(ledger.newestJobs(10).map((j) => j.jobId)).to.deep.equal(['a', 'recent'])
    expect(ledger.shareCount).to.equal(2)
    expect(archive.get('old')).to.deep.equal({ finishedAt: now - 120_000, nextShare: 2 })
    expect(archive.has('recent')).to.equal(false)
    expect(forgotten.sort()).to.deep.equal(['old', 'old-s0', 'old-s1'])
  })

  it('adopts a later checkpoint from the journal of the host the share runs on', async () => {
    const { ledger } = await recoverFrom({
      jobs: [job('a', 'running', 1)],
      shares: [share('a', 0, 0, 10, 'running', { position: 2 })],
      journal: [{ hostId: 'h1', entries: [{ shareId: 'a-s0', epoch: 1, position: 6, unitsDone: 6, state: { n: 6 } }] }],
    })
    expect(ledger.share('a-s0')).to.include({ position: 6, unitsDone: 6 })
  })

  it('trims and writes the original of an interrupted split, and leaves a job whose shares are all done alone', async () => {
    const { ledger, written } = await recoverFrom({
      jobs: [job('a', 'running', 1), job('b', 'completed', 2)],
      // The tail [5, 10) was stored, the original [0, 10) not shrunk yet.
      shares: [share('a', 1, 5, 10, 'pending'), share('a', 0, 0, 10, 'running', { position: 7 }), share('b', 0, 0, 10, 'done'), share('b', 1, 5, 10, 'done')],
    })
    expect(ledger.share('a-s0')).to.include({ to: 5, position: 5 })
    expect(written.map((s) => [s.shareId, s.to])).to.deep.equal([['a-s0', 5]])
    expect(ledger.share('b-s0')).to.include({ to: 10 })
  })
})
