/**
 * Every NATS subject Shoal uses is built here, and nowhere else.
 *
 * Grammar (tokens in <> are validated ids: letters, digits, '_' and '-'):
 *
 *   shoal.<cluster>.pool.hb.<hostId>      host → balancer, status: heartbeat (publish, every pool.heartbeatMs)
 *   shoal.<cluster>.pool.leave.<hostId>   host → balancer: clean shutdown (publish)
 *   shoal.<cluster>.pool.>                balancer: subscription to both of the above
 *   shoal.<cluster>.host.<hostId>.cmd     balancer → host: assign | pause | split | drop | merge | validate (request/reply)
 *   shoal.<cluster>.bal.report.<hostId>   host → balancer: reports (a batch of checkpoint | done | failed), request/reply; an ack means durable
 *   shoal.<cluster>.bal.blob.<hostId>     host → balancer: blob-put | blob-get, a large checkpoint state in chunks (request/reply)
 *   shoal.<cluster>.bal.presence.<id>     balancer → all: leader or standby, with the term (publish, every pool.heartbeatMs)
 *   shoal.<cluster>.api.<op>.<identity>   SDK/CLI → balancer: submit | cancel | job | status | migrate | drain | config (request/reply)
 *   shoal.<cluster>.job.<owner>.<jobId>.ev  balancer → SDK: job events (publish)
 *   _INBOX.<cluster>.<identity>.>         replies to requests sent by <identity>
 *
 * Everything a process publishes names who sends it (a host its id, a client its identity) and
 * everything private to one identity names its owner: that is what lets NATS permissions, generated
 * by `shoal auth init` (lib/auth), tie each subject to one identity, and lets the balancer refuse a
 * body that names someone other than its subject.
 *
 * Identities: `balancer`, `host-<hostId>`, `operator[-<name>]`, `submitter[-<name>]`.
 *
 * The cluster token lets two Shoal clusters share one NATS account without seeing each other.
 * JetStream buckets are named here too, for the same reason.
 *
 * Must never do I/O: it only builds strings.
 */

import { ShoalError } from '../errors.ts'

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/

/** True when `s` can stand as one subject token (and as a KV key segment). */
export function isToken(s: string): boolean {
  return TOKEN.test(s)
}

/** Identities: `host-` and a host id fit. */
const IDENTITY = /^[A-Za-z0-9_-]{1,80}$/

function token(kind: string, s: string, re = TOKEN): string {
  if (!re.test(s)) {
    throw new ShoalError('E_BAD_JOB', `${kind} must be 1-${re === TOKEN ? 64 : 80} letters, digits, '_' or '-' (got ${JSON.stringify(s)})`)
  }
  return s
}

export type ApiOp = 'submit' | 'cancel' | 'job' | 'status' | 'migrate' | 'drain' | 'config'
export const API_OPS: readonly ApiOp[] = ['submit', 'cancel', 'job', 'status', 'migrate', 'drain', 'config']
/** What a submitter may ask; the rest acts on hosts or the balancer and is for operators. */
export const SUBMITTER_OPS: readonly ApiOp[] = ['submit', 'cancel', 'job', 'status']

/** The identity a host acts as. */
export function hostIdentity(hostId: string): string {
  return `host-${token('host id', hostId)}`
}

export const BALANCER_IDENTITY = 'balancer'

/** True for identities that may act on any job and on hosts: `operator` and `operator-<name>`. */
export function isOperator(identity: string): boolean {
  return identity === 'operator' || identity.startsWith('operator-')
}

/** Subject builders for one cluster. */
export class Subjects {
  readonly prefix: string

  constructor(readonly cluster: string) {
    this.prefix = `shoal.${token('cluster', cluster)}`
  }

  heartbeat(hostId: string): string {
    return `${this.prefix}.pool.hb.${token('host id', hostId)}`
  }

  leave(hostId: string): string {
    return `${this.prefix}.pool.leave.${token('host id', hostId)}`
  }

  /** Wildcard for heartbeats and leaves of every host. */
  poolAll(): string {
    return `${this.prefix}.pool.>`
  }

  /** Splits a pool subject into its kind and host id, or null when it is not one. */
  parsePool(subject: string): { kind: 'hb' | 'leave'; hostId: string } | null {
    const rest = subject.startsWith(`${this.prefix}.pool.`) ? subject.slice(this.prefix.length + 6).split('.') : []
    if (rest.length !== 2) return null
    const [kind, hostId] = rest as [string, string]
    if ((kind !== 'hb' && kind !== 'leave') || !TOKEN.test(hostId)) return null
    return { kind, hostId }
  }

  hostCommand(hostId: string): string {
    return `${this.prefix}.host.${token('host id', hostId)}.cmd`
  }

  /** Reports of host `hostId`: only that host may publish here. */
  report(hostId: string): string {
    return `${this.prefix}.bal.report.${token('host id', hostId)}`
  }

  /** Wildcard for every host's reports. */
  reportAll(): string {
    return `${this.prefix}.bal.report.*`
  }

  /** The host a report subject names, or null when it is not one. */
  parseReport(subject: string): string | null {
    return this.hostOf(subject, 'report')
  }

  /** Large checkpoint states of host `hostId`, in chunks: only that host may publish here. */
  blob(hostId: string): string {
    return `${this.prefix}.bal.blob.${token('host id', hostId)}`
  }

  blobAll(): string {
    return `${this.prefix}.bal.blob.*`
  }

  /** The host a blob subject names, or null when it is not one. */
  parseBlob(subject: string): string | null {
    return this.hostOf(subject, 'blob')
  }

  private hostOf(subject: string, kind: 'report' | 'blob'): string | null {
    const head = `${this.prefix}.bal.${kind}.`
    const rest = subject.startsWith(head) ? subject.slice(head.length) : ''
    return TOKEN.test(rest) ? rest : null
  }

  /** Where balancer `id` says it is there (leader or standby). */
  presence(id: string): string {
    return `${this.prefix}.bal.presence.${token('balancer id', id)}`
  }

  /** Wildcard for every balancer's presence. */
  presenceAll(): string {
    return `${this.prefix}.bal.presence.*`
  }

  /** Request `op` sent by `identity`. */
  api(op: ApiOp, identity: string): string {
    return `${this.prefix}.api.${op}.${token('identity', identity, IDENTITY)}`
  }

  /** Wildcard for every API request of every identity. */
  apiAll(): string {
    return `${this.prefix}.api.*.*`
  }

  /** The identity an API subject names, or null when it is not one. */
  parseApi(subject: string): { op: string; identity: string } | null {
    const head = `${this.prefix}.api.`
    const rest = subject.startsWith(head) ? subject.slice(head.length).split('.') : []
    if (rest.length !== 2 || !IDENTITY.test(rest[1]!)) return null
    return { op: rest[0]!, identity: rest[1]! }
  }

  /** Events of job `jobId`, submitted by `owner`: only the owner (and operators) may read them. */
  jobEvents(owner: string, jobId: string): string {
    return `${this.prefix}.job.${token('job owner', owner, IDENTITY)}.${token('job id', jobId)}.ev`
  }

  /** Subject prefix of `identity`'s reply inboxes (the NATS client adds `.<nuid>...`). */
  inbox(identity: string): string {
    return `_INBOX.${this.cluster}.${token('identity', identity, IDENTITY)}`
  }

  /** JetStream KV bucket names (bucket names allow letters, digits, '-' and '_'). */
  bucket(kind: 'jobs' | 'shares' | 'hosts' | 'journal' | 'leader' | 'ckpt'): string {
    return `shoal_${this.cluster}_${kind}`
  }
}
