/**
 * The JetStream buckets of one Shoal cluster, opened (created when missing) with `nats.replicas`
 * replicas: KV `shoal_<cluster>_jobs`, `_shares`, `_hosts`, `_journal`, `_leader` and the Object Store
 * `shoal_<cluster>_ckpt`. Also the adapter that gives record-writer.ts and lease.ts their narrow
 * bucket interface, with CAS conflicts turned into `RevisionConflict`.
 *
 * JetStream keeps a bucket that already exists with its own settings: opening one whose replicas
 * differ from the configured ones changes nothing, and says so with the command that moves it
 * (`shoal store replicas N`, a stream update).
 *
 * Must never decide anything about jobs or shares.
 */

import type { NatsConnection } from '@nats-io/transport-node'
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import { ShoalError } from '../errors.ts'
import type { Subjects } from '../protocol/subjects.ts'
import { StateBlobs } from '../checkpoints/state-blobs.ts'
import { RevisionConflict, type KvBucket } from './record-writer.ts'
import { readLastValues } from './bulk-read.ts'
import { AckedPublisher, JsRefused } from './acked-publisher.ts'

export const KV_KINDS = ['jobs', 'shares', 'hosts', 'journal', 'leader'] as const
/** Request timeout of record reads and writes (a KV put takes ≈ 0.2 ms here). */
const DATA_TIMEOUT_MS = 2_000
export type KvKind = (typeof KV_KINDS)[number]

/** A bucket as the store and the lease use it: the narrow interface, plus listing its keys. */
export type Bucket = KvBucket & {
  kv: KV
  /**
   * Every key that holds a value or a delete marker. Read from the stream's info (its leader
   * answers), not with a consumer as `kv.keys()` does: nats-server 2.9.10 may place that consumer
   * on a node that is down, and the listing then times out (5 of 24 with one node of three down),
   * which stalled a takeover for as long as the node stayed away.
   */
  list(): Promise<string[]>
  /**
   * Every key's current value with its revision, handed to `each` as it arrives, in one pass of a
   * consumer over the bucket (bulk-read.ts; issue 12: one get per key took 11 s for 50,000
   * records); resolves with how many. `value` is only valid during the call. Rejects when the
   * consumer stalls for `stallMs` — on nats-server 2.9.10 it may sit on a node that is down (see
   * `list`) — or skips a message, so the caller can fall back to `list` and gets (and drop what
   * `each` was given).
   */
  entries(stallMs: number, each: (key: string, revision: number, value: Uint8Array) => void): Promise<number>
}

export interface Buckets {
  jobs: Bucket
  shares: Bucket
  hosts: Bucket
  /** One record per host: its running shares' latest checkpoints (checkpoint-journal.ts). */
  journal: Bucket
  leader: Bucket
  blobs: StateBlobs
  /** Replicas the buckets were asked for. */
  replicas: number
  /** The server is part of a NATS cluster (it reports a cluster name). */
  clustered: boolean
  /** What the operator should know: replicas that differ from the wanted ones, too few on a cluster. */
  warnings: string[]
  /** Told how long each record write took, publish to JetStream's answer as this process read it (ms). */
  onWriteAnswered?: ((ms: number) => void) | undefined
}

export interface OpenOptions {
  /** `nats.replicas`; unset: 3 on a NATS cluster, else 1. */
  replicas?: number | undefined
  /** Timeout of the leader bucket's operations: a renewal must not wait longer than a lease. */
  leaseMs: number
  /**
   * The connection the lease bucket goes through (default: `nc`). A balancer gives the lease a
   * connection of its own: on the shared one, a renewal's answer queues behind every host message
   * the server holds for a busy balancer, and the lease lapsed for that (issue 12).
   */
  leaseNc?: NatsConnection | undefined
}

/** Replicas wanted: the configured ones, else 3 on a cluster and 1 on a single server. */
export function wantedReplicas(configured: number | undefined, clustered: boolean): number {
  return configured ?? (clustered ? 3 : 1)
}

export function isClustered(nc: NatsConnection): boolean {
  return typeof nc.info?.cluster === 'string' && nc.info.cluster !== ''
}

export async function openBuckets(nc: NatsConnection, subjects: Subjects, opts: OpenOptions): Promise<Buckets> {
  const clustered = isClustered(nc)
  const replicas = wantedReplicas(opts.replicas, clustered)
  const warnings: string[] = []
  try {
    // Short request timeouts: a write sent while a stream has no leader gets no answer, and the
    // client's default (5 s) would hold the writer that long after the election ended. The record
    // writer retries (CAS makes a write whose answer was lost harmless).
    const kvm = new Kvm(jetstream(nc, { timeout: DATA_TIMEOUT_MS }))
    const leaderKvm = new Kvm(jetstream(opts.leaseNc ?? nc, { timeout: Math.max(200, opts.leaseMs) }))
    const jsm = await jetstreamManager(nc, { timeout: DATA_TIMEOUT_MS })
    // Set once the buckets exist (the metrics come later than the buckets): read at each answer.
    let answered: ((ms: number) => void) | undefined
    const publisher = new AckedPublisher(nc, DATA_TIMEOUT_MS, (ms) => answered?.(ms))
    const open = async (kind: KvKind) => {
      // Kvm.create mutates its options object: a fresh literal each time. No direct gets: every read
      // goes to the stream leader, whose revisions are the ones a compare-and-set is checked
      // against. A direct get may be answered by any replica, and nats-server 2.9.10 can number the
      // same message differently on a replica that restarted (the chaos benchmark read a record
      // alternately as revision 80 and 81 for 30 s): every write based on such a read conflicts.
      const kv = await (kind === 'leader' ? leaderKvm : kvm).create(subjects.bucket(kind), { history: 1, replicas, allow_direct: false })
      const have = (await kv.status()).replicas
      if (have !== replicas) warnings.push(replicaWarning(subjects.bucket(kind), have, replicas))
      else if (clustered && have < 3) warnings.push(`bucket ${subjects.bucket(kind)} has ${have} replica(s) on a NATS cluster: losing the node that holds it stops Shoal until it is back; set nats.replicas to 3 (and run 'shoal store replicas 3' for existing buckets)`)
      return kind === 'leader' ? adapt(subjects.bucket(kind), kv, jsm, opts.leaseNc ?? nc) : adapt(subjects.bucket(kind), kv, jsm, nc, publisher)
    }
    const jobs = await open('jobs')
    const shares = await open('shares')
    const hosts = await open('hosts')
    const journal = await open('journal')
    const leader = await open('leader')
    const blobs = await StateBlobs.open(nc, subjects, replicas)
    return {
      jobs, shares, hosts, journal, leader, blobs, replicas, clustered, warnings,
      set onWriteAnswered(f: ((ms: number) => void) | undefined) {
        answered = f
      },
      get onWriteAnswered() {
        return answered
      },
    }
  } catch (e) {
    throw storeError(e, replicas)
  }
}

function replicaWarning(bucket: string, have: number, want: number): string {
  return `bucket ${bucket} exists with ${have} replica(s), not the ${want} wanted (nats.replicas); JetStream keeps an existing bucket's settings. Move every Shoal bucket with: shoal store replicas ${want}`
}

/** Why the buckets could not be opened, in words an operator can act on. */
function storeError(e: unknown, replicas: number): ShoalError {
  const msg = (e as Error).message ?? String(e)
  if (/insufficient resources|no suitable peers/i.test(msg)) {
    return new ShoalError('E_STORE', `cannot create JetStream buckets with ${replicas} replicas: the NATS cluster has fewer JetStream servers than that (${msg}); lower nats.replicas or add servers`, { cause: e, retryable: false })
  }
  if (/jetstream not enabled/i.test(msg) && !/temporarily/i.test(msg)) {
    return new ShoalError('E_STORE', `cannot open JetStream KV buckets: JetStream is not enabled on nats-server (start it with -js) (${msg})`, { cause: e })
  }
  return new ShoalError('E_STORE', `cannot open JetStream KV buckets: ${msg}`, { cause: e })
}

/** The narrow bucket interface over a nats.js KV. */
/**
 * The narrow bucket the record writer and the store use. With a `publisher`, a create or update is
 * first tried as one acknowledged publish (acked-publisher.ts); whatever that cannot settle (a
 * CAS mismatch, a refusal) is done again through the library, so its rules stay the only ones.
 */
export function adapt(name: string, kv: KV, jsm: JetStreamManager, nc: NatsConnection, publisher?: AckedPublisher): Bucket {
  const prefix = `$KV.${name}.`
  const conflict = (key: string, e: unknown): unknown => (isRevisionConflict(e) ? new RevisionConflict(key, e) : e)
  const viaLibrary = async (key: string, write: () => Promise<number>): Promise<number> => {
    try {
      return await write()
    } catch (e) {
      throw conflict(key, e)
    }
  }
  const fast = async (key: string, value: Uint8Array, expectLast: number, write: () => Promise<number>): Promise<number> => {
    if (!publisher || !AckedPublisher.plainKey(key)) return viaLibrary(key, write)
    try {
      return await publisher.publish(prefix + key, value, expectLast)
    } catch (e) {
      if (e instanceof JsRefused) return viaLibrary(key, write)
      throw e
    }
  }
  return {
    name,
    kv,
    create(key, value) {
      return fast(key, value, 0, () => kv.create(key, value))
    },
    update(key, value, revision) {
      return fast(key, value, revision, () => kv.update(key, value, revision))
    },
    async remove(key, revision) {
      try {
        // A purge leaves one small marker per key (JetStream's rollup) instead of the record.
        await kv.purge(key, { previousSeq: revision })
      } catch (e) {
        throw conflict(key, e)
      }
    },
    async get(key) {
      const e = await kv.get(key)
      if (!e || e.operation !== 'PUT' || e.value.length === 0) return null
      return { revision: e.revision, value: e.value }
    },
    async list() {
      const si = await jsm.streams.info(`KV_${name}`, { subjects_filter: `${prefix}>` })
      return Object.keys(si.state.subjects ?? {}).map((subject) => subject.slice(prefix.length))
    },
    entries(stallMs, each) {
      return readLastValues({ nc, jsm, stream: `KV_${name}`, prefix, stallMs }, each)
    },
  }
}

/** JetStream's "wrong last sequence" answer to a compare-and-set (codes 10071 and 10164). */
export function isRevisionConflict(e: unknown): boolean {
  const err = e as { name?: string; code?: unknown; message?: string }
  if (err?.name === 'JetStreamApiError' && (err.code === 10071 || err.code === 10164)) return true
  return typeof err?.message === 'string' && /wrong last sequence/i.test(err.message)
}

/** Every Shoal stream of a cluster with its replicas and leader (for `shoal store`). */
export async function describeStreams(nc: NatsConnection, subjects: Subjects): Promise<Array<{ stream: string; replicas: number; leader: string | undefined; current: number }>> {
  const jsm = await jetstreamManager(nc)
  const out = []
  for (const stream of streamNames(subjects)) {
    try {
      const si = await jsm.streams.info(stream)
      const peers = si.cluster?.replicas ?? []
      out.push({ stream, replicas: si.config.num_replicas, leader: si.cluster?.leader, current: 1 + peers.filter((p) => p.current).length })
    } catch (e) {
      if (/stream not found/i.test((e as Error).message)) continue
      throw e
    }
  }
  return out
}

/** Sets every Shoal stream of a cluster to `replicas` (JetStream moves the data). */
export async function setReplicas(nc: NatsConnection, subjects: Subjects, replicas: number): Promise<Array<{ stream: string; from: number; to: number }>> {
  const jsm = await jetstreamManager(nc)
  const changed = []
  for (const stream of streamNames(subjects)) {
    let si
    try {
      si = await jsm.streams.info(stream)
    } catch (e) {
      if (/stream not found/i.test((e as Error).message)) continue
      throw e
    }
    if (si.config.num_replicas === replicas) continue
    await jsm.streams.update(stream, { ...si.config, num_replicas: replicas })
    changed.push({ stream, from: si.config.num_replicas, to: replicas })
  }
  return changed
}

/** The JetStream streams behind a cluster's buckets (KV_<bucket>, OBJ_<bucket>). */
export function streamNames(subjects: Subjects): string[] {
  return [...KV_KINDS.map((k) => `KV_${subjects.bucket(k)}`), `OBJ_${subjects.bucket('ckpt')}`]
}
