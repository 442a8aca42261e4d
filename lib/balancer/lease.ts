/**
 * Leadership among the balancers of one cluster: a lease in one KV key, taken and renewed by
 * compare-and-set on its revision (per-key TTL is ignored by nats-server 2.9.10), with a term that
 * grows at every takeover.
 *
 *   follower  reads the key every `leaseMs / 10`. A record it has seen unchanged for `leaseMs`
 *             of its own (monotonic) time, or a lease marked released, it replaces with its own
 *             record at term + 1; the CAS lets exactly one contender win.
 *   leader    renews every `leaseMs / 5`. Its fence is valid until the send time of its last
 *             successful renewal + `leaseMs`: a follower only takes over after seeing the same
 *             record for `leaseMs`, which it can only start seeing after that send, so the two
 *             never act at once. A renewal that conflicts shows another leader: deposed.
 *
 * What a follower watches is the record's bytes, not only its revision: every renewal writes a new
 * renewedAt, so unchanged bytes mean no renewal. nats-server 2.9.10 can number one stream's
 * messages differently on two replicas after a node restarts (found by the chaos benchmark: direct
 * gets of a dead leader's record alternated between revisions 80 and 81 for 30 s, and a follower
 * that waited for one revision to stand still took 25–46 s to take over). The buckets read from
 * the stream leader for that reason (buckets.ts); watching bytes keeps the follower right even
 * if a read does come from a diverged replica, and a takeover that conflicts then simply tries
 * again at the next round with the revision read then.
 *
 * A follower that cannot read the key forgets what it saw: an outage of its own is not the
 * leader's silence, and after it the leader gets a whole lease to renew again. After store trouble
 * (a failed read, a takeover that failed for anything but a conflict) it waits two leases instead:
 * while JetStream elects a stream leader, replicas still answer reads but nobody can write, so
 * the leader could not renew for reasons that are not its own (found by the chaos benchmark: a
 * standby took over as soon as the stream could take writes again, racing the leader's renewal,
 * and its recovery then waited for the next stream's election while nobody served).
 *
 * Must never act on the cluster itself: it only elects, and tells its owner (`events`).
 */

import { LeaseFence } from './fence.ts'
import { RevisionConflict, type KvBucket } from './record-writer.ts'

export const LEASE_KEY = 'leader'

/** The lease record. */
export interface LeaseRecord {
  id: string
  pid: number
  term: number
  /** When this leader took over (wall clock, ms). */
  since: number
  renewedAt: number
  /** Set by a leader that stopped cleanly: a follower may take over at once. */
  released?: boolean
}

export interface LeaseEvents {
  elected(fence: LeaseFence, record: LeaseRecord): void
  deposed(why: string): void
  /** The store could not be read or written (logged once per outage by the owner). */
  storeTrouble?(err: unknown): void
  /**
   * A takeover lost on a revision conflict: someone else took the lease first, or the read it
   * was based on was stale (a lagging replica). Repeated, it explains a slow takeover.
   */
  takeoverConflict?(revision: number, term: number): void
  /**
   * A renewal came back after `ms` (monotonic), and `lapsedMs` > 0 when the fence had lapsed
   * before it did: the leader stopped acting for that long (issue 12 saw this on a busy balancer).
   */
  renewed?(ms: number, lapsedMs: number): void
}

export interface LeaseOptions {
  id: string
  pid: number
  leaseMs: number
  kv: KvBucket
  encode: (r: LeaseRecord) => Uint8Array
  decode: (v: Uint8Array) => LeaseRecord
  events: LeaseEvents
  /** Monotonic clock (performance.now in production). */
  now: () => number
  /** Wall clock for the record (Date.now in production). */
  wallNow: () => number
}

export class Lease {
  private fence: LeaseFence | undefined
  private record: LeaseRecord | undefined
  private revision = 0
  /** The record (its bytes) a follower saw, and since when (monotonic). */
  private observed: { bytes: string; at: number } | undefined
  /** When this follower last met store trouble (monotonic ms). */
  private troubledAt = Number.NEGATIVE_INFINITY
  private lastSeen: LeaseRecord | undefined
  private stepping = false
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(private readonly o: LeaseOptions) {}

  get leading(): boolean {
    return this.fence !== undefined && this.fence.state() !== 'revoked'
  }

  /** The lease record as last read or written (the leader's, as far as this process knows). */
  get current(): LeaseRecord | undefined {
    return this.leading ? this.record : this.lastSeen
  }

  get term(): number {
    return this.leading ? this.fence!.term : (this.lastSeen?.term ?? 0)
  }

  /** Starts following (and campaigning). */
  start(): void {
    const tick = () => {
      if (this.stopped || this.stepping) return
      this.stepping = true
      this.step()
        .catch((e: unknown) => this.o.events.storeTrouble?.(e))
        .finally(() => {
          this.stepping = false
        })
    }
    tick()
    this.timer = setInterval(tick, Math.max(10, Math.floor(this.o.leaseMs / 10)))
  }

  /** One round: a follower looks and may take over; a leader renews (at every other round). */
  async step(): Promise<void> {
    if (this.stopped) return
    if (this.leading) await this.renew()
    else await this.follow()
  }

  /** Stops; a leader marks the lease released so a follower takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    const fence = this.fence
    if (!fence || fence.state() === 'revoked') return
    const rec = this.record!
    fence.revoke('stopped')
    try {
      await this.o.kv.update(LEASE_KEY, this.o.encode({ ...rec, released: true, renewedAt: this.o.wallNow() }), this.revision)
    } catch {
      // Not written: the followers take over when the lease lapses instead.
    }
  }

  /** Gives up leadership without stopping (a leader that found itself deposed some other way). */
  stepDown(why: string): void {
    const fence = this.fence
    if (!fence || fence.state() === 'revoked') return
    fence.revoke(why)
  }

  private lastRenewal = 0

  private async renew(): Promise<void> {
    const fence = this.fence!
    // Renew at leaseMs / 5, not at every (leaseMs / 10) round.
    if (this.o.now() - this.lastRenewal < this.o.leaseMs / 5 - 1 && fence.state() === 'valid') return
    const sentAt = this.o.now()
    const rec: LeaseRecord = { ...this.record!, renewedAt: this.o.wallNow() }
    try {
      this.revision = await this.o.kv.update(LEASE_KEY, this.o.encode(rec), this.revision)
      this.record = rec
      const back = this.o.now()
      // Valid until lastRenewal + leaseMs: past that, and until now, the leader could not act.
      const lapsedMs = Math.max(0, back - (this.lastRenewal + this.o.leaseMs))
      this.lastRenewal = sentAt
      fence.renewed(sentAt + this.o.leaseMs)
      this.o.events.renewed?.(back - sentAt, lapsedMs)
    } catch (e) {
      if (!(e instanceof RevisionConflict)) {
        this.o.events.storeTrouble?.(e)
        return
      }
      const cur = await this.o.kv.get(LEASE_KEY)
      const theirs = cur ? this.o.decode(cur.value) : undefined
      if (cur && theirs && theirs.id === this.o.id && theirs.term === fence.term) {
        // Our own renewal whose answer was lost: carry on from its revision (the next round renews).
        this.revision = cur.revision
        return
      }
      if (theirs) this.lastSeen = theirs
      fence.deposed(theirs ? `balancer ${theirs.id} took over with term ${theirs.term}` : 'the lease was deleted')
    }
  }

  private async follow(): Promise<void> {
    let cur: { revision: number; value: Uint8Array } | null
    try {
      cur = await this.o.kv.get(LEASE_KEY)
    } catch (e) {
      // Blind: what we saw before the outage says nothing about the leader now.
      this.observed = undefined
      this.troubledAt = this.o.now()
      this.o.events.storeTrouble?.(e)
      return
    }
    const now = this.o.now()
    if (cur) {
      const rec = this.o.decode(cur.value)
      this.lastSeen = rec
      if (!rec.released) {
        const bytes = Buffer.from(cur.value).toString('base64')
        if (!this.observed || this.observed.bytes !== bytes) {
          this.observed = { bytes, at: now }
          return
        }
        const patience = now - this.troubledAt < 3 * this.o.leaseMs ? 2 * this.o.leaseMs : this.o.leaseMs
        if (now - this.observed.at < patience) return
      }
    }
    await this.takeOver(cur?.revision ?? 0, (this.lastSeen?.term ?? 0) + 1)
  }

  private async takeOver(revision: number, term: number): Promise<void> {
    const sentAt = this.o.now()
    const wall = this.o.wallNow()
    const rec: LeaseRecord = { id: this.o.id, pid: this.o.pid, term, since: wall, renewedAt: wall }
    try {
      this.revision = revision === 0 ? await this.o.kv.create(LEASE_KEY, this.o.encode(rec)) : await this.o.kv.update(LEASE_KEY, this.o.encode(rec), revision)
    } catch (e) {
      if (!(e instanceof RevisionConflict)) {
        // The store is away: follow again from scratch.
        this.observed = undefined
        this.troubledAt = this.o.now()
        this.o.events.storeTrouble?.(e)
      } else {
        // Someone else won (the next read shows other bytes and starts the wait again), or the
        // revision read was a diverged replica's (the same bytes again: the next round retries).
        this.o.events.takeoverConflict?.(revision, term)
      }
      return
    }
    if (this.stopped) return
    this.record = rec
    this.lastSeen = rec
    this.lastRenewal = sentAt
    const fence = new LeaseFence(term, sentAt + this.o.leaseMs, this.o.now)
    // However the fence ends (a conflicting renewal, a record of a higher term found by a writer,
    // stepDown, stop), this process is a follower from then on.
    fence.onRevoked = (why) => {
      if (this.fence !== fence) return
      this.fence = undefined
      this.observed = undefined
      if (!this.stopped) this.o.events.deposed(why)
    }
    this.fence = fence
    this.o.events.elected(fence, rec)
  }
}
