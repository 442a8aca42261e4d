/**
 * The SDK entry: connect to a Shoal cluster, submit share-divisible jobs, follow and cancel them,
 * list hosts. Talks only to the balancer, over NATS request/reply, plus the job event subjects.
 *
 * Must never load processor code: a job names a processor that hosts register.
 */

import { randomBytes } from 'node:crypto'
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node'
import { ShoalError } from '../errors.ts'
import { closeNats, connectNats } from '../nats-connect.ts'
import { Bus } from '../protocol/bus.ts'
import { Codec } from '../protocol/codec.ts'
import {
  PROTOCOL_VERSION as V,
  apiReplySchema,
  jobEventSchema,
  type ApiReply,
  type ApiRequest,
  type HostSummary,
  type JobSummary,
  type Migration,
  type Failover,
  type BalanceSummary,
} from '../protocol/messages.ts'
import { Subjects, type ApiOp } from '../protocol/subjects.ts'
import { IDENTITY_RE } from '../config/schema.ts'
import { Job, type JobBackend } from './job.ts'
import type { Processor, ProcessorRef } from '../processors/define.ts'

/** Pages of hosts one status() reads at most (a page holds thousands of hosts). */
const MAX_STATUS_PAGES = 64
const HOST_STATE_ORDER: Record<HostSummary['state'], number> = { alive: 0, suspect: 1, dead: 2, left: 3 }

export type { JobSummary, HostSummary, ShareSummary, Migration, Failover, BalanceSummary } from '../protocol/messages.ts'

/** What `ShoalClient.status()` returns. */
export interface ClusterStatus {
  hosts: HostSummary[]
  /** Recent jobs, with their shares for unfinished ones. */
  jobs: JobSummary[]
  /** Messages the balancer counted and dropped, by `subject cause`. */
  rejected: Record<string, number>
  /** Recent live migrations with their reason and stun time, newest last. */
  migrations: Migration[]
  /** Recent failovers, newest last. */
  failovers: Failover[]
  /** The last balancing pass: imbalance against the tolerated imbalance, loads, reasons. */
  balance?: BalanceSummary
  /** The balancer that leads (it answered), with its term and since when. */
  leader?: { id: string; pid: number; term: number; since: number }
  /** Balancers standing by to take over. */
  standbys?: Array<{ id: string; pid: number }>
  /**
   * What the balancer left out to keep its answer under the message limit (a very large pool, or
   * jobs with very many shares): counts of hosts, jobs, share lists and history entries.
   */
  omitted?: { hosts: number; jobs: number; shares: number; history: number }
}

/** Options of {@link ShoalClient.connect}. */
export interface ShoalClientOptions {
  /** NATS server URL(s). Default: `SHOAL_NATS_URL`, then `nats://127.0.0.1:4222`. */
  servers?: string | string[]
  /** Cluster name (the subject prefix). Default: `SHOAL_CLUSTER`, then `default`. */
  cluster?: string
  /**
   * Who this client acts as: `operator[-<name>]` or `submitter[-<name>]`. It names the subjects
   * requests go on, which a secured cluster's permissions tie to that identity (see
   * docs/SECURITY.md); a submitter sees and cancels only its own jobs. Default:
   * `SHOAL_CLIENT_IDENTITY`, then `operator`.
   */
  identity?: string
  /** Further NATS connection options (credentials, TLS, ...), passed through. */
  nats?: Partial<NodeConnectionOptions>
  /** How long one attempt to reach NATS may take (a port that does not speak NATS never answers). Default 5000. */
  connectTimeoutMs?: number
  /** How long to wait for the balancer to answer a request. Default 10000. */
  requestTimeoutMs?: number
  /** Largest message the client sends. Default 1 MiB − 4 KiB, as the balancer's default. */
  maxMessageBytes?: number
  /** Use this connection instead of opening one (it is not closed by {@link ShoalClient.close}). */
  connection?: NatsConnection
}

/** A job to run on the pool. */
export interface JobSpec {
  /** Name of a processor registered on hosts, e.g. `count-primes`. */
  processor: string
  /** Units `[from, to)` the job covers; a list of items is a range over its indices. */
  range: readonly [from: number, to: number]
  /** Processor input, the same for every share; must survive msgpack. */
  input?: unknown
  /** How many shares to split into. Default: the balancer's `shares.perJob` (auto: the pool's slots). */
  shares?: number
  /** Hosts must carry all of these tags. */
  tags?: Record<string, string>
  /** Memory one share needs; no host is given more shares than its free memory holds. */
  memoryBytesPerShare?: number
  /**
   * Spread the shares over the hosts that may run them: at most ceil(shares ÷ those hosts) on one
   * host, kept as shares are placed, migrated and split (for resilience rather than speed).
   */
  spread?: boolean
  /** Aborting cancels the job. */
  signal?: AbortSignal
  /** Choose the job id yourself (1-64 of letters, digits, '_', '-'); default a random one. */
  jobId?: string
}

/**
 * A job of a processor known by its definition or a `processorRef`: the processor comes from the
 * first argument of `submit`, and the input must have the processor's input type (required unless
 * that type allows `undefined`).
 */
export type TypedJobSpec<Input> = Omit<JobSpec, 'processor' | 'input'> & (undefined extends Input ? { input?: Input } : { input: Input })

/** A connection to a Shoal cluster. */
export class ShoalClient {
  private readonly subjects: Subjects
  private readonly bus: Bus
  private readonly backend: JobBackend

  private constructor(
    private readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    cluster: string,
    private readonly identity: string,
    private readonly timeoutMs: number,
    maxMessageBytes: number,
  ) {
    this.subjects = new Subjects(cluster)
    this.bus = new Bus(nc, new Codec(maxMessageBytes), { inbox: this.subjects.inbox(identity) })
    this.backend = {
      fetch: (jobId, withShares) => this.fetchJob(jobId, withShares),
      cancel: async (jobId) => jobOf(await this.api('cancel', { v: V, t: 'cancel', jobId })),
      subscribe: (jobId, onEvent) => this.bus.subscribe(this.subjects.jobEvents(this.identity, jobId), jobEventSchema, (e) => onEvent(e.job)),
    }
  }

  /** Connects to NATS and returns a client. Fails with `E_UNAVAILABLE` when NATS is unreachable. */
  static async connect(opts: ShoalClientOptions = {}): Promise<ShoalClient> {
    const url = Array.isArray(opts.servers) ? opts.servers.join(',') : (opts.servers ?? process.env.SHOAL_NATS_URL ?? 'nats://127.0.0.1:4222')
    const cluster = opts.cluster ?? process.env.SHOAL_CLUSTER ?? 'default'
    const identity = opts.identity ?? process.env.SHOAL_CLIENT_IDENTITY ?? 'operator'
    if (!IDENTITY_RE.test(identity)) {
      throw new ShoalError('E_CONFIG', `identity must be operator, submitter, operator-<name> or submitter-<name> (got ${JSON.stringify(identity)})`)
    }
    const subjects = new Subjects(cluster)
    const nc = opts.connection ?? (await connectNats({ url, inboxPrefix: subjects.inbox(identity) }, 'shoal-client', opts.nats ?? {}, { connectTimeoutMs: opts.connectTimeoutMs ?? 5_000 }))
    return new ShoalClient(nc, opts.connection === undefined, cluster, identity, opts.requestTimeoutMs ?? 10_000, opts.maxMessageBytes ?? 1024 * 1024 - 4096)
  }

  /**
   * Submits a job. Resolves once the balancer has durably admitted it (or put it in the waiting
   * state with a reason); rejects with `E_UNKNOWN_PROCESSOR`, `E_BAD_RANGE`, `E_BAD_JOB`,
   * `E_JOB_EXISTS` (the id is taken by another submission), `E_MSG_TOO_LARGE` (input too big) or
   * `E_UNAVAILABLE` (no balancer).
   *
   * Typed: `submit(processor, { range, input })` with the processor's definition (from
   * `defineProcessor`) or a `processorRef<Input, Result>(name)` checks the input and gives a
   * `Job<Result>` at compile time. Named: `submit({ processor: 'name', … })` for names known only
   * at run time.
   */
  async submit<Input, State, Result>(processor: Processor<Input, State, Result>, spec: TypedJobSpec<Input>): Promise<Job<Result>>
  async submit<Input, Result>(processor: ProcessorRef<Input, Result>, spec: TypedJobSpec<Input>): Promise<Job<Result>>
  async submit<Result = unknown>(spec: JobSpec): Promise<Job<Result>>
  async submit<Result = unknown>(first: JobSpec | { readonly name: string }, typed?: TypedJobSpec<unknown>): Promise<Job<Result>> {
    const spec: JobSpec = typed === undefined ? (first as JobSpec) : { ...typed, processor: (first as { name: string }).name }
    return this.submitNamed<Result>(spec)
  }

  private async submitNamed<Result>(spec: JobSpec): Promise<Job<Result>> {
    const [from, to] = spec.range
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0) {
      throw new ShoalError('E_BAD_RANGE', `range must be two non-negative integers [from, to) (got [${from}, ${to}])`)
    }
    if (!(to > from)) throw new ShoalError('E_BAD_RANGE', `range [${from}, ${to}) is empty: 'to' must be greater than 'from'`)
    if (spec.signal?.aborted) throw new ShoalError('E_CANCELLED', 'signal already aborted')
    const jobId = spec.jobId ?? `j${Date.now().toString(36)}${randomBytes(5).toString('hex')}`
    const req: ApiRequest = { v: V, t: 'submit', jobId, processor: spec.processor, input: spec.input ?? null, from, to }
    if (spec.shares !== undefined) req.shares = spec.shares
    if (spec.tags !== undefined) req.tags = spec.tags
    if (spec.memoryBytesPerShare !== undefined) req.memoryBytesPerShare = spec.memoryBytesPerShare
    if (spec.spread !== undefined) req.spread = spec.spread
    const job = new Job<Result>(jobId, this.backend)
    try {
      job.accepted(jobOf(await this.api('submit', req)))
    } catch (e) {
      job.close()
      throw e
    }
    if (spec.signal) {
      const onAbort = () => {
        job.cancel().catch(() => undefined)
      }
      spec.signal.addEventListener('abort', onAbort, { once: true })
      job.done().then(() => spec.signal?.removeEventListener('abort', onAbort), () => undefined)
    }
    return job
  }

  /**
   * A handle on a job submitted earlier (by this client or, for an operator, by anyone): the same
   * `progress()`, `result()`, `done()` and `cancel()` as the one `submit` returned. Rejects with
   * `E_NO_SUCH_JOB`, or `E_FORBIDDEN` for another submitter's job.
   */
  async job<Result = unknown>(jobId: string): Promise<Job<Result>> {
    const first = await this.fetchJob(jobId, false)
    const owner = first.owner ?? 'operator'
    const job = new Job<Result>(jobId, {
      ...this.backend,
      subscribe: (id, onEvent) => this.bus.subscribe(this.subjects.jobEvents(owner, id), jobEventSchema, (e) => onEvent(e.job)),
    })
    job.accepted(first)
    return job
  }

  /** The current summary of a job; `withShares` adds each share's range, state and host. */
  async fetchJob(jobId: string, withShares = false): Promise<JobSummary> {
    return jobOf(await this.api('job', { v: V, t: 'job', jobId, withShares }))
  }

  /** Cancels a job by id. */
  async cancel(jobId: string): Promise<JobSummary> {
    return this.backend.cancel(jobId)
  }

  /** The hosts of the pool with capacity, load and state. */
  async hosts(): Promise<HostSummary[]> {
    return (await this.status()).hosts
  }

  /** Hosts, recent jobs (with shares for unfinished ones), recent migrations, the last balancing pass and the balancer's reject counters. */
  async status(): Promise<ClusterStatus> {
    const r = await this.api('status', { v: V, t: 'status' })
    if (r.t !== 'status') throw new ShoalError('E_INTERNAL', `unexpected reply '${r.t}' to status`)
    const st: ClusterStatus = { hosts: r.hosts, jobs: r.jobs, rejected: r.rejected, migrations: r.migrations, failovers: r.failovers }
    if (r.balance) st.balance = r.balance
    if (r.leader) st.leader = r.leader
    if (r.standbys) st.standbys = r.standbys
    if (r.omitted) st.omitted = r.omitted
    // A pool too large for one reply comes in pages of hosts: read them all, so every host is
    // listed (what may still be left out is detail: share lists, old history, jobs past 50).
    let left = (r.hostsTotal ?? st.hosts.length) - st.hosts.length
    if (left > 0) {
      const hosts = [...st.hosts]
      for (let page = 0; page < MAX_STATUS_PAGES && left > 0 && hosts.length > 0; page++) {
        const next = await this.api('status', { v: V, t: 'status', hostsAfter: hosts.at(-1)!.hostId })
        if (next.t !== 'status' || next.hosts.length === 0) break
        hosts.push(...next.hosts)
        left = (next.hostsTotal ?? next.hosts.length) - next.hosts.length
      }
      st.hosts = hosts
      if (st.omitted) st.omitted = { ...st.omitted, hosts: Math.max(0, left) }
    }
    // Hosts that are there first, then by id.
    st.hosts.sort((a, b) => HOST_STATE_ORDER[a.state] - HOST_STATE_ORDER[b.state] || (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0))
    return st
  }

  /**
   * Live-migrates a running share to another host: it pauses at its next safe point, its final
   * checkpoint is stored, and it resumes on `toHost` under a new epoch. Resolves with the measured
   * migration (stun time, checkpoint size); rejects with `E_MIGRATION_REFUSED` when the share is
   * not running or the target cannot take it (the share then keeps running where it was).
   */
  async migrate(shareId: string, toHost: string): Promise<Migration> {
    const r = await this.api('migrate', { v: V, t: 'migrate', shareId, toHost })
    if (r.t !== 'migration') throw new ShoalError('E_INTERNAL', `unexpected reply '${r.t}' to migrate`)
    return r.migration
  }

  /**
   * Puts a host in maintenance mode (`drain = true`): its shares are live-migrated to other hosts
   * as room allows and nothing new is placed on it, until called again with `drain = false`.
   */
  async drain(hostId: string, drain = true): Promise<void> {
    await this.api('drain', { v: V, t: 'drain', hostId, drain })
  }

  /** The balancing settings in force on the running balancer, by config key. */
  async settings(): Promise<Record<string, number>> {
    const r = await this.api('config', { v: V, t: 'config' })
    if (r.t !== 'config') throw new ShoalError('E_INTERNAL', `unexpected reply '${r.t}' to config`)
    return r.settings
  }

  /**
   * Changes one balancing setting on the running balancer, without a restart: `value` is parsed
   * like the key's SHOAL_ environment variable and validated like start-up config. Rejects with
   * `E_CONFIG` naming the key when the value is refused (the old one stays) or the key cannot
   * change live. Resolves with the settings in force and the change made, if any.
   */
  async setSetting(key: string, value: string): Promise<{ settings: Record<string, number>; changed?: { key: string; from: number | null; to: number | null } }> {
    const r = await this.api('config', { v: V, t: 'config', key, value })
    if (r.t !== 'config') throw new ShoalError('E_INTERNAL', `unexpected reply '${r.t}' to config`)
    return r.changed ? { settings: r.settings, changed: r.changed } : { settings: r.settings }
  }

  /** Closes the connection (if the client opened it). */
  async close(): Promise<void> {
    if (this.ownsConnection) await closeNats(this.nc)
  }

  /**
   * One request to the leading balancer. Idempotent requests (everything but `migrate`: a submit
   * names its job id, so a second one returns the first's job) are sent again while no balancer
   * answers — a standby taking over, a leader waiting for JetStream — until `requestTimeoutMs`
   * has passed; then the last error (E_UNAVAILABLE, E_TIMEOUT or E_NOT_LEADER) is thrown.
   */
  private async api(op: ApiOp, req: ApiRequest): Promise<ApiReply> {
    const subject = this.subjects.api(op, this.identity)
    if (!IDEMPOTENT.has(op)) return this.bus.request(subject, req, apiReplySchema, this.timeoutMs)
    const deadline = Date.now() + this.timeoutMs
    // Several attempts fit in the timeout: a balancer that stays silent (one that no longer leads)
    // must not use up the whole of it.
    const attemptMs = Math.max(2_000, Math.floor(this.timeoutMs / 3))
    let wait = 100
    for (;;) {
      const left = deadline - Date.now()
      try {
        return await this.bus.request(subject, req, apiReplySchema, Math.max(1, Math.min(attemptMs, left)))
      } catch (e) {
        const code = (e as ShoalError).code
        if (!RETRIED.has(code) || Date.now() + wait >= deadline) throw e
      }
      await new Promise((r) => setTimeout(r, wait))
      wait = Math.min(1_000, wait * 2)
    }
  }
}

/** Requests that may be sent twice with the effect of once. */
const IDEMPOTENT = new Set<ApiOp>(['submit', 'cancel', 'job', 'status', 'drain', 'config'])
/** Errors that mean "no leader answered (yet)". */
const RETRIED = new Set(['E_UNAVAILABLE', 'E_TIMEOUT', 'E_NOT_LEADER'])

function jobOf(r: ApiReply): JobSummary {
  if (r.t !== 'job') throw new ShoalError('E_INTERNAL', `unexpected reply '${r.t}'`)
  return r.job
}
