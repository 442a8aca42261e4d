/**
 * Every NATS subject Shoal uses is built here, and nowhere else.
 *
 * Grammar (tokens in <> are validated ids: letters, digits, '_' and '-'):
 *
 *   shoal.<cluster>.pool.hb.<hostId>      host → balancer, status: heartbeat (publish, every pool.heartbeatMs)
 *   shoal.<cluster>.pool.leave.<hostId>   host → balancer: clean shutdown (publish)
 *   shoal.<cluster>.pool.>                balancer: subscription to both of the above
 *   shoal.<cluster>.host.<hostId>.cmd     balancer → host: assign | pause | split | drop | merge | validate (request/reply)
 *   shoal.<cluster>.bal.report            host → balancer: checkpoint | done | failed (request/reply; the ack means durable)
 *   shoal.<cluster>.bal.presence.<id>     balancer → all: leader or standby, with the term (publish, every pool.heartbeatMs)
 *   shoal.<cluster>.api.<op>              SDK/CLI → balancer: submit | cancel | job | status | migrate | drain | config (request/reply)
 *   shoal.<cluster>.job.<jobId>.ev        balancer → SDK: job events (publish)
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

function token(kind: string, s: string): string {
  if (!TOKEN.test(s)) {
    throw new ShoalError('E_BAD_JOB', `${kind} must be 1-64 letters, digits, '_' or '-' (got ${JSON.stringify(s)})`)
  }
  return s
}

export type ApiOp = 'submit' | 'cancel' | 'job' | 'status' | 'migrate' | 'drain' | 'config'

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

  report(): string {
    return `${this.prefix}.bal.report`
  }

  /** Where balancer `id` says it is there (leader or standby). */
  presence(id: string): string {
    return `${this.prefix}.bal.presence.${token('balancer id', id)}`
  }

  /** Wildcard for every balancer's presence. */
  presenceAll(): string {
    return `${this.prefix}.bal.presence.*`
  }

  api(op: ApiOp): string {
    return `${this.prefix}.api.${op}`
  }

  jobEvents(jobId: string): string {
    return `${this.prefix}.job.${token('job id', jobId)}.ev`
  }

  /** JetStream KV bucket names (bucket names allow letters, digits, '-' and '_'). */
  bucket(kind: 'jobs' | 'shares' | 'hosts' | 'leader' | 'ckpt'): string {
    return `shoal_${this.cluster}_${kind}`
  }
}
