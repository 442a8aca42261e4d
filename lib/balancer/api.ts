/**
 * The client API (submit, cancel, job, status, migrate, drain, config) as `identity`, taken from
 * the request's subject, which a secured cluster's permissions tie to it: operators may do
 * anything; a submitter may submit, and read, follow and cancel its own jobs (issue 10).
 */

import { ShoalError } from '../errors.ts'
import { assertKnownKey, setConfigValue, type Config } from '../config/mod.ts'
import { NO_REPLY } from '../protocol/bus.ts'
import { PROTOCOL_VERSION as V, type ApiReply, type ApiRequest, type BalanceSummary } from '../protocol/messages.ts'
import { SUBMITTER_OPS, isOperator, type ApiOp } from '../protocol/subjects.ts'
import type { Admission } from './admission.ts'
import type { Migrator } from './apply/migrate.ts'
import type { Completion } from './completion.ts'
import type { BalancerContext } from './context.ts'
import type { History } from './history.ts'
import { isFinalJob as isFinal } from './ledger.ts'
import { isLiveKey, LIVE_KEYS, liveSettings, type SettingChange } from './live-settings.ts'
import { mayActOn } from './ownership.ts'
import type { Records } from './records.ts'
import { fitStatus } from './status-fit.ts'
import type { JobRecord, ShareRecord } from './store.ts'
import { hostSummary } from './summaries.ts'

/** API requests a balancer answers from memory even while its lease is unconfirmed. */
const READ_ONLY_OPS = new Set(['status', 'job'])

/** Who leads and who stands by, as `shoal status` shows it. */
export interface LeadershipView {
  leader: { id: string; pid: number; term: number; since: number }
  standbys: Array<{ id: string; pid: number }>
}

export interface ApiParts {
  records: Records
  history: History
  admission: Pick<Admission, 'submit'>
  completion: Pick<Completion, 'finishJob'>
  migrator: Pick<Migrator, 'migrate'>
  /** The last interval pass's balance (passes.ts), with the term's split count. */
  balance: () => BalanceSummary | undefined
  leadership: () => LeadershipView
  /** Messages dropped, by `subject cause`. */
  rejected: () => Record<string, number>
  /** Takes new balancing settings (balancer.ts). */
  applySettings: (next: Config, source: string) => SettingChange[]
}

export class Api {
  constructor(
    private readonly ctx: BalancerContext,
    private readonly parts: ApiParts,
  ) {}

  /** A request on `subject`, checked against the operations its identity may ask for. */
  async onApiFrom(r: ApiRequest, subject: string): Promise<ApiReply | typeof NO_REPLY> {
    const { subjects, bus } = this.ctx
    const parsed = subjects.parseApi(subject)
    if (!parsed || parsed.op !== r.t) {
      bus.rejects.count(subject, 'invalid')
      throw new ShoalError('E_MSG_INVALID', `a '${r.t}' request must be sent on ${subjects.prefix}.api.${r.t}.<identity>, not ${subject}`)
    }
    const identity = parsed.identity
    if (!isOperator(identity) && !(SUBMITTER_OPS as readonly string[]).includes(r.t)) {
      bus.rejects.count(subject, 'forbidden')
      throw new ShoalError('E_FORBIDDEN', `${identity} may not ${r.t}: only operators act on hosts, shares and settings`)
    }
    return this.onApi(r, identity)
  }

  /**
   * The job `jobId`, if `identity` may see and act on it: from memory, or read back from its
   * records when it finished longer than jobs.retainMs ago (then with those records' shares).
   */
  private async jobFor(jobId: string, identity: string, op: ApiOp): Promise<{ job: JobRecord; shares?: ShareRecord[] }> {
    const job = this.ctx.ledger.job(jobId)
    if (job) return { job: this.mine(job, identity, op) }
    const archived = await this.parts.records.archived(jobId)
    if (!archived) throw new ShoalError('E_NO_SUCH_JOB', `no job ${jobId}`)
    return { job: this.mine(archived.job, identity, op), shares: archived.shares }
  }

  private mine(job: JobRecord, identity: string, op: ApiOp): JobRecord {
    if (!mayActOn(job, identity)) {
      this.ctx.bus.rejects.count(this.ctx.subjects.api(op, identity), 'forbidden')
      throw new ShoalError('E_FORBIDDEN', `job ${job.jobId} belongs to another submitter: ${identity} may act only on its own jobs`)
    }
    return job
  }

  private async onApi(r: ApiRequest, identity: string): Promise<ApiReply | typeof NO_REPLY> {
    const now = Date.now()
    const { records } = this.parts
    // While the lease is unconfirmed (a JetStream election, our own NATS link coming back) reads
    // are answered from memory, so progress stays visible; changes wait for a leader.
    if (this.ctx.stopped() || (!this.ctx.acting() && !(READ_ONLY_OPS.has(r.t) || (r.t === 'config' && r.key === undefined)))) return NO_REPLY
    switch (r.t) {
      case 'submit':
        return { v: V, t: 'job', job: await this.parts.admission.submit(r, identity, (job) => this.mine(job, identity, 'submit')) }
      case 'cancel': {
        const { job, shares } = await this.jobFor(r.jobId, identity, 'cancel')
        if (!isFinal(job.state)) await this.parts.completion.finishJob(job, 'cancelled', {})
        return { v: V, t: 'job', job: records.summary(job, now, false, shares) }
      }
      case 'job': {
        const { job, shares } = await this.jobFor(r.jobId, identity, 'job')
        return { v: V, t: 'job', job: records.summary(job, now, r.withShares ?? false, shares) }
      }
      case 'status':
        return this.status(identity, r.hostsAfter, now)
      case 'migrate':
        return { v: V, t: 'migration', migration: await this.parts.migrator.migrate(r.shareId, r.toHost, 'manual') }
      case 'drain':
        await this.setDraining(r.hostId, r.drain)
        return { v: V, t: 'ok' }
      case 'config': {
        const config = this.ctx.config()
        if (r.key === undefined) return { v: V, t: 'config', settings: liveSettings(config) }
        assertKnownKey(r.key)
        if (!isLiveKey(r.key)) {
          throw new ShoalError('E_CONFIG', `${r.key} cannot change on a running balancer; restart it with the new value (these change live: ${LIVE_KEYS.join(', ')})`)
        }
        if (r.value === undefined) throw new ShoalError('E_CONFIG', `${r.key}: no value given`)
        // Validated exactly like start-up config: a bad value throws E_CONFIG naming the key, and nothing changes.
        const [changed] = this.parts.applySettings(setConfigValue(config, r.key, r.value), 'shoal config set')
        return { v: V, t: 'config', settings: liveSettings(this.ctx.config()), ...(changed ? { changed } : {}) }
      }
    }
  }

  /**
   * The pool, the newest jobs and the recent moves, cut to fit in one message (status-fit.ts).
   * Hosts by id, so that the pages of a pool too large for one reply (hostsAfter) neither overlap
   * nor skip while hosts change state; the SDK orders them for reading (alive first).
   */
  private status(identity: string, after: string | undefined, now: number): ApiReply {
    const { membership, ledger, tracking, bus } = this.ctx
    const { records, history } = this.parts
    const all = membership.all().filter((h) => after === undefined || h.hostId > after).sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0))
    const hosts = all.map((h) => hostSummary(h, ledger.runningOn(h.hostId).size, tracking.draining.has(h.hostId), now))
    // A later page carries hosts only: the rest came with the first.
    const firstPage = after === undefined
    const jobs = firstPage ? ledger.newestJobs(50, (j) => mayActOn(j, identity)).map((j) => records.summary(j, now, !isFinal(j.state))) : []
    const balance = this.parts.balance()
    const { leader, standbys } = this.parts.leadership()
    // A submitter sees the history of its own jobs only, and no reject counts (they name identities).
    const operator = isOperator(identity)
    const mine = (x: { jobId: string }) => {
      const job = ledger.job(x.jobId)
      return job ? mayActOn(job, identity) : operator
    }
    const recent = <T extends { jobId: string }>(list: readonly T[], n: number): T[] => (firstPage ? list.filter(mine).slice(-n) : [])
    const reply = { v: V, t: 'status' as const, hosts, hostsTotal: all.length, jobs, rejected: operator && firstPage ? this.parts.rejected() : {}, migrations: recent(history.migrations(), 50), failovers: recent(history.failovers(), 100), ...(balance && firstPage ? { balance } : {}), leader, standbys }
    // Room to spare for the fields fitStatus does not cut.
    const max = bus.codec.maxMessageBytes
    return fitStatus(reply, (x) => bus.codec.sizeOf(x), Math.max(512, Math.min(max - 4096, Math.floor(max * 0.95))))
  }

  private async setDraining(hostId: string, drain: boolean): Promise<void> {
    const { membership, tracking, log } = this.ctx
    if (drain && !membership.get(hostId)) throw new ShoalError('E_NO_SUCH_HOST', `no host ${hostId} in the pool`)
    if (drain === tracking.draining.has(hostId)) return
    if (drain) tracking.draining.add(hostId)
    else tracking.draining.delete(hostId)
    await this.parts.records.store.putHost({ hostId, draining: drain })
    log.info({ host: hostId }, drain ? 'host draining: migrating its shares away' : 'host back in service')
    this.ctx.kick()
  }
}
