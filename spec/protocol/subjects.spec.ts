/**
 * Behaviour of lib/protocol/subjects.ts: the exact grammar of every subject, isolation between
 * clusters (a prefix per cluster, no subject shared), parsePool as the inverse of heartbeat/leave,
 * refusal of ids that could break a subject (dots, spaces, wildcards, empty), and bucket names.
 *
 * Must never do I/O: subjects are plain strings.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { ShoalError } from '../../lib/errors.ts'
import { Subjects, hostIdentity, isOperator, isToken, type ApiOp } from '../../lib/protocol/subjects.ts'

const OPS: ApiOp[] = ['submit', 'cancel', 'job', 'status']

/** Every subject one cluster uses, for ids `host` and `job`. */
function allSubjects(s: Subjects, host: string, job: string): string[] {
  return [
    s.heartbeat(host),
    s.leave(host),
    s.poolAll(),
    s.hostCommand(host),
    s.report(host),
    s.reportAll(),
    ...OPS.map((op) => s.api(op, 'submitter-a')),
    s.apiAll(),
    s.jobEvents('operator', job),
  ]
}

function shoalError(fn: () => unknown): ShoalError {
  try {
    fn()
  } catch (err) {
    expect(err).to.be.instanceOf(ShoalError)
    return err as ShoalError
  }
  return expect.fail('expected a ShoalError')
}

const tokenArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/)

describe('protocol subjects', () => {
  const s = new Subjects('prod')

  it('builds each subject exactly as the grammar in the header says', () => {
    expect(s.heartbeat('h1')).to.equal('shoal.prod.pool.hb.h1')
    expect(s.leave('h1')).to.equal('shoal.prod.pool.leave.h1')
    expect(s.poolAll()).to.equal('shoal.prod.pool.>')
    expect(s.hostCommand('h1')).to.equal('shoal.prod.host.h1.cmd')
    expect(s.report('h1')).to.equal('shoal.prod.bal.report.h1')
    expect(s.reportAll()).to.equal('shoal.prod.bal.report.*')
    expect(OPS.map((op) => s.api(op, 'submitter-a'))).to.deep.equal([
      'shoal.prod.api.submit.submitter-a',
      'shoal.prod.api.cancel.submitter-a',
      'shoal.prod.api.job.submitter-a',
      'shoal.prod.api.status.submitter-a',
    ])
    expect(s.apiAll()).to.equal('shoal.prod.api.*.*')
    expect(s.jobEvents('submitter-a', 'job-1')).to.equal('shoal.prod.job.submitter-a.job-1.ev')
    expect(s.inbox('host-h1')).to.equal('_INBOX.prod.host-h1')
    expect(hostIdentity('h1')).to.equal('host-h1')
  })

  it('reads the sender back from report and API subjects, and nothing from others', () => {
    expect(s.parseReport(s.report('h-7'))).to.equal('h-7')
    expect(s.parseReport('shoal.prod.bal.report')).to.equal(null)
    expect(s.parseReport('shoal.prod.bal.report.a.b')).to.equal(null)
    expect(s.parseReport('shoal.other.bal.report.h1')).to.equal(null)
    expect(s.parseApi(s.api('drain', 'operator-ann'))).to.deep.equal({ op: 'drain', identity: 'operator-ann' })
    expect(s.parseApi(`shoal.prod.api.drain.host-${'x'.repeat(64)}`)).to.deep.equal({ op: 'drain', identity: `host-${'x'.repeat(64)}` })
    expect(s.parseApi('shoal.prod.api.drain')).to.equal(null)
    expect(s.parseApi('shoal.prod.api.drain.a.b')).to.equal(null)
  })

  it('tells operators from everyone else', () => {
    expect(['operator', 'operator-ann'].map(isOperator)).to.deep.equal([true, true])
    expect(['submitter', 'submitter-operator', 'operators', 'balancer', 'host-operator'].map(isOperator)).to.deep.equal([false, false, false, false, false])
  })

  it('starts every subject with shoal.<cluster>.', () => {
    fc.assert(
      fc.property(tokenArb, tokenArb, tokenArb, (cluster, host, job) => {
        const subjects = new Subjects(cluster)
        expect(subjects.prefix).to.equal(`shoal.${cluster}`)
        for (const subject of allSubjects(subjects, host, job)) expect(subject.startsWith(`shoal.${cluster}.`), subject).to.equal(true)
      }),
    )
  })

  it('never gives two different clusters the same subject', () => {
    fc.assert(
      fc.property(tokenArb, tokenArb, tokenArb, tokenArb, (c1, c2, host, job) => {
        fc.pre(c1 !== c2)
        const a = new Set(allSubjects(new Subjects(c1), host, job))
        for (const subject of allSubjects(new Subjects(c2), host, job)) expect(a.has(subject), subject).to.equal(false)
      }),
    )
  })

  it("does not let one cluster's pool wildcard see another cluster whose name starts the same", () => {
    // 'a' and 'ab', 'a' and 'a-b': a wildcard matches whole tokens, so shoal.a.pool.> never covers shoal.ab.*.
    const wildcardPrefix = new Subjects('a').poolAll().slice(0, -1)
    for (const other of ['ab', 'a-b', 'a_b']) {
      expect(new Subjects(other).heartbeat('h').startsWith(wildcardPrefix)).to.equal(false)
    }
  })

  describe('parsePool', () => {
    it('returns the kind and host id of a heartbeat or leave subject it built', () => {
      fc.assert(
        fc.property(tokenArb, tokenArb, (cluster, host) => {
          const subjects = new Subjects(cluster)
          expect(subjects.parsePool(subjects.heartbeat(host))).to.deep.equal({ kind: 'hb', hostId: host })
          expect(subjects.parsePool(subjects.leave(host))).to.deep.equal({ kind: 'leave', hostId: host })
        }),
      )
    })

    it('returns null for the same pool subject of a different cluster', () => {
      expect(s.parsePool(new Subjects('staging').heartbeat('h1'))).to.equal(null)
      expect(s.parsePool(new Subjects('prod2').leave('h1'))).to.equal(null)
      expect(s.parsePool(new Subjects('pro').heartbeat('h1'))).to.equal(null)
    })

    for (const foreign of [
      'shoal.prod.host.h1.cmd',
      'shoal.prod.bal.report',
      'shoal.prod.api.status',
      'shoal.prod.pool.ping.h1',
      'shoal.prod.pool.hb',
      'shoal.prod.pool.hb.',
      'shoal.prod.pool.hb.h1.extra',
      'shoal.prod.pool.hb.h 1',
      'shoal.prod.pool.hb.*',
      'shoal.prod.pool.>',
      'other.prod.pool.hb.h1',
      'shoal.prod.pool.hb.h1'.toUpperCase(),
      '',
    ]) {
      it(`returns null for the subject ${JSON.stringify(foreign)}`, () => {
        expect(s.parsePool(foreign)).to.equal(null)
      })
    }
  })

  describe('id validation', () => {
    const bad = ['a.b', 'a b', '*', '>', 'a*', 'a>', '', ' ', 'x'.repeat(65), 'tab\there', 'né']

    for (const id of bad) {
      it(`refuses the id ${JSON.stringify(id)} in every builder that takes an id, naming the value`, () => {
        for (const build of [
          (x: string) => s.heartbeat(x),
          (x: string) => s.leave(x),
          (x: string) => s.hostCommand(x),
          (x: string) => s.jobEvents('operator', x),
          (x: string) => s.report(x),
        ]) {
          const err = shoalError(() => build(id))
          expect(err.message).to.include(JSON.stringify(id))
        }
        expect(isToken(id)).to.equal(false)
      })

      it(`refuses ${JSON.stringify(id)} as a cluster name`, () => {
        const err = shoalError(() => new Subjects(id))
        expect(err.message).to.include('cluster')
        expect(err.message).to.include(JSON.stringify(id))
      })
    }

    it('accepts ids of letters, digits, _ and - up to 64 characters', () => {
      for (const id of ['a', 'A-z_0-9', 'x'.repeat(64), '-', '_']) {
        expect(isToken(id)).to.equal(true)
        expect(s.heartbeat(id)).to.equal(`shoal.prod.pool.hb.${id}`)
      }
    })

    it('names what kind of id it refused', () => {
      expect(shoalError(() => s.heartbeat('a.b')).message).to.include('host id')
      expect(shoalError(() => s.jobEvents('operator', 'a.b')).message).to.include('job id')
      expect(shoalError(() => s.jobEvents('a.b', 'j')).message).to.include('job owner')
      expect(shoalError(() => s.inbox('a b')).message).to.include('identity')
    })
  })

  describe('bucket names', () => {
    it('names the jobs and shares buckets after the cluster', () => {
      expect(s.bucket('jobs')).to.equal('shoal_prod_jobs')
      expect(s.bucket('shares')).to.equal('shoal_prod_shares')
    })

    it('gives every cluster and kind a distinct bucket made only of letters, digits, _ and -', () => {
      fc.assert(
        fc.property(tokenArb, tokenArb, (c1, c2) => {
          const names = [c1, c2].flatMap((c) => (['jobs', 'shares'] as const).map((k) => new Subjects(c).bucket(k)))
          for (const n of names) expect(n).to.match(/^[A-Za-z0-9_-]+$/)
          expect(new Set(names).size).to.equal(c1 === c2 ? 2 : 4)
        }),
      )
    })
  })
})
