/**
 * The NATS permissions of every Shoal identity: the narrowest publish and subscribe lists with
 * which that role still works. `shoal auth init` writes them into nats-server's auth config;
 * docs/SECURITY.md explains each line.
 *
 * Roles and identities:
 *   balancer            every balancer process (leader and standbys); the only JetStream API user
 *   host-<hostId>       one per host: only its own heartbeats, leave, reports, state chunks and commands; no JetStream
 *   submitter[-<name>]  submits jobs and reads, follows and cancels its own
 *   operator[-<name>]   may also drain, migrate, retune and cancel any job
 *
 * Every subject comes from lib/protocol/subjects.ts. Must never do I/O.
 */

import { API_OPS, BALANCER_IDENTITY, SUBMITTER_OPS, Subjects, hostIdentity, isOperator } from '../protocol/subjects.ts'

export type Role = 'balancer' | 'host' | 'submitter' | 'operator'

/** One identity's permissions, as nats-server's `permissions` block takes them. */
export interface Permissions {
  publish: string[]
  subscribe: string[]
  /** May answer the requests it receives (and only those): hosts answer commands, the balancer requests. */
  allowResponses: boolean
}

export interface Identity {
  name: string
  role: Role
  /** The host id, for role `host`. */
  hostId?: string
}

/** The identity of each kind of Shoal process. */
export function identityOf(name: string): Identity {
  if (name === BALANCER_IDENTITY) return { name, role: 'balancer' }
  if (name.startsWith('host-')) return { name, role: 'host', hostId: name.slice('host-'.length) }
  return { name, role: isOperator(name) ? 'operator' : 'submitter' }
}

/** JetStream stream of a KV bucket or an object store, as JetStream names it. */
const kvStream = (bucket: string) => `KV_${bucket}`
const objStream = (bucket: string) => `OBJ_${bucket}`

export function permissionsFor(cluster: string, id: Identity): Permissions {
  const s = new Subjects(cluster)
  const p = s.prefix
  const inbox = `${s.inbox(id.name)}.>`
  switch (id.role) {
    case 'balancer': {
      const buckets = (['jobs', 'shares', 'hosts', 'journal', 'leader'] as const).map((k) => s.bucket(k))
      const ckpt = s.bucket('ckpt')
      return {
        publish: [
          `${p}.host.*.cmd`,
          `${p}.job.>`,
          s.presenceAll(),
          // It creates, inspects and administers the cluster's streams: the JetStream API is its
          // alone. Nobody else gets any: JetStream answers to whatever reply subject a caller
          // names, with its own rights, so any JetStream permission would let its holder write
          // JetStream's answer into a KV bucket or onto another identity's subjects.
          '$JS.API.>',
          ...buckets.map((b) => `$KV.${b}.>`),
          `$O.${ckpt}.>`,
          ...[...buckets.map(kvStream), objStream(ckpt)].flatMap((st) => [`$JS.ACK.${st}.>`, `$JS.FC.${st}.>`]),
        ],
        subscribe: [s.poolAll(), s.reportAll(), s.blobAll(), s.apiAll(), s.presenceAll(), inbox],
        allowResponses: true,
      }
    }
    case 'host': {
      const hostId = id.hostId ?? ''
      if (hostIdentity(hostId) !== id.name) throw new Error(`identity ${id.name} is not a host's`)
      return {
        publish: [s.heartbeat(hostId), s.leave(hostId), s.report(hostId), s.blob(hostId)],
        subscribe: [s.hostCommand(hostId), s.presenceAll(), inbox],
        allowResponses: true,
      }
    }
    case 'submitter':
      return {
        publish: SUBMITTER_OPS.map((op) => s.api(op, id.name)),
        subscribe: [`${p}.job.${id.name}.>`, inbox],
        allowResponses: false,
      }
    case 'operator':
      return {
        publish: API_OPS.map((op) => s.api(op, id.name)),
        subscribe: [`${p}.job.>`, inbox],
        allowResponses: false,
      }
  }
}
