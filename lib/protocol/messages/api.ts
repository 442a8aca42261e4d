/**
 * Client (SDK/CLI) → balancer: the API, its replies, and job events.
 *
 * Part of the protocol's messages (../messages.ts says what every message is); must never do I/O.
 */

import { z } from 'zod'
import { count, id, ms, shareId, tags, term, unit, v, wireErrorSchema } from './common.ts'
import { heartbeatSchema } from './pool.ts'

export const jobStateSchema = z.enum(['waiting', 'running', 'completed', 'failed', 'cancelled'])
export type JobState = z.infer<typeof jobStateSchema>

export const shareStateSchema = z.enum(['pending', 'running', 'done', 'failed', 'cancelled'])
export type ShareState = z.infer<typeof shareStateSchema>

export const submitSchema = z.object({
  v,
  t: z.literal('submit'),
  jobId: id,
  processor: z.string().min(1),
  input: z.unknown(),
  from: unit,
  to: unit,
  /** Number of shares; absent → shares.perJob from the balancer's config. */
  shares: z.number().int().positive().optional(),
  /** Hosts must carry every one of these tags. */
  tags: tags.optional(),
  /** Memory one share needs; no host is given shares whose memory exceeds what it has free. */
  memoryBytesPerShare: count.optional(),
  /** Spread the shares: at most ceil(shares / eligible hosts) of them on one host. */
  spread: z.boolean().optional(),
})
export type Submit = z.infer<typeof submitSchema>

export const apiRequestSchema = z.discriminatedUnion('t', [
  submitSchema,
  z.object({ v, t: z.literal('cancel'), jobId: id }),
  z.object({ v, t: z.literal('job'), jobId: id, withShares: z.boolean().optional() }),
  /**
   * The cluster's state. A pool too large for one reply is paged by host id: `hostsAfter` asks for
   * the hosts whose id sorts after it (a host changing state meanwhile moves no other between
   * pages); the SDK reads every page.
   */
  z.object({ v, t: z.literal('status'), hostsAfter: id.optional() }),
  /** Live-migrate a running share to another host (`manual` reason). */
  z.object({ v, t: z.literal('migrate'), shareId, toHost: id }),
  /** Maintenance mode on (`drain: true`: migrate every share away, place nothing new) or off. */
  z.object({ v, t: z.literal('drain'), hostId: id, drain: z.boolean() }),
  /**
   * Read the live balancing settings, or change one (`key` and `value`, parsed like its environment
   * variable) on the running balancer: validated like start-up config, refused with the key named.
   */
  z.object({ v, t: z.literal('config'), key: z.string().min(1).max(200).optional(), value: z.string().max(10_000).optional() }),
])
export type ApiRequest = z.infer<typeof apiRequestSchema>

export const shareSummarySchema = z.object({
  shareId,
  jobId: id,
  from: unit,
  to: unit,
  position: unit,
  unitsDone: count,
  state: shareStateSchema,
  epoch: count,
  host: z.string().nullable(),
  /** Every host this share ran on, in order. */
  hosts: z.array(z.string()),
})
export type ShareSummary = z.infer<typeof shareSummarySchema>

export const jobSummarySchema = z.object({
  jobId: id,
  processor: z.string(),
  state: jobStateSchema,
  /** Identity that submitted it (`submitter-alice`, `operator`); its events are on job.<owner>.<jobId>.ev. */
  owner: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/).optional(),
  from: unit,
  to: unit,
  unitsTotal: count,
  unitsDone: count,
  sharesTotal: count,
  sharesDone: count,
  submittedAt: ms,
  finishedAt: ms.optional(),
  elapsedMs: ms.optional(),
  /** Why a job waits (no host yet, ...). */
  reason: z.string().optional(),
  result: z.unknown().optional(),
  error: wireErrorSchema.optional(),
  shares: z.array(shareSummarySchema).optional(),
})
export type JobSummary = z.infer<typeof jobSummarySchema>

export const moveReasonSchema = z.enum(['imbalance', 'drain', 'host-lost', 'split', 'constraint', 'manual', 'retry'])
export type MoveReason = z.infer<typeof moveReasonSchema>

/** One live migration, as measured by the balancer. */
export const migrationSchema = z.object({
  shareId,
  jobId: id,
  fromHost: id,
  toHost: id,
  reason: moveReasonSchema,
  /** The share's epoch on the target. */
  epoch: count,
  at: ms,
  ok: z.boolean(),
  /** Pause request sent to the source → target confirmed it resumed (an upper bound on the pause). */
  stunMs: ms,
  /** Pause request → final checkpoint back from the source. */
  pauseMs: ms,
  checkpointBytes: count,
  error: wireErrorSchema.optional(),
})
export type Migration = z.infer<typeof migrationSchema>

/** One share re-dispatched because its host was lost, as measured by the balancer. */
export const failoverSchema = z.object({
  shareId,
  jobId: id,
  /** The lost host. */
  hostId: id,
  /** When the balancer re-queued the share (host declared dead, or share missing). */
  at: ms,
  /** Durable checkpoint position the share resumes from. */
  checkpointPosition: unit,
  /** Last position the lost host reported in a heartbeat (≥ checkpointPosition). */
  lastKnownPosition: unit,
  /** Units the lost host had processed past its checkpoint: they are processed again. */
  unitsRedone: count,
  /** Where and when it was placed again (absent until then). */
  toHost: id.optional(),
  redispatchedAt: ms.optional(),
})
export type Failover = z.infer<typeof failoverSchema>

export const hostSummarySchema = z.object({
  hostId: id,
  state: z.enum(['alive', 'suspect', 'dead', 'left']),
  lastSeenMsAgo: ms,
  capacity: heartbeatSchema.shape.capacity,
  load: heartbeatSchema.shape.load,
  tags,
  processors: z.array(z.string()),
  shares: count,
  /** In maintenance mode: shares are migrated away and nothing new is placed here. */
  draining: z.boolean(),
  /** How often the host beats (ms), as its heartbeats say. */
  heartbeatMs: ms.optional(),
})
export type HostSummary = z.infer<typeof hostSummarySchema>

/** The balancer's last balancing pass, as `shoal status` shows it. */
export const balanceSummarySchema = z.object({
  at: ms,
  /** balancer.migrationThreshold in force (1 = mandatory moves only … 5 = act on slight gains). */
  threshold: z.number().int().min(1).max(5),
  /** Standard deviation of the hosts' normalised loads. */
  imbalance: z.number().nonnegative(),
  /** Imbalance the threshold tolerates before it balances; null at threshold 1 (it never does). */
  toleratedImbalance: z.number().nonnegative().nullable(),
  /** Imbalance expected once the pass's actions are carried out. */
  projectedImbalance: z.number().nonnegative(),
  /** Normalised load per host (demand ÷ cores; above 1, shares time-share the CPU). */
  loads: z.record(z.string(), z.number().nonnegative()),
  /**
   * Noise of each host's load: the standard deviation of one heartbeat's reading, in the same unit
   * (the loads themselves are smoothed over balancer.loadWindowMs). Absent from older balancers.
   */
  loadNoise: z.record(z.string(), z.number().nonnegative()).optional(),
  /** Why the pass did what it did, or what held moves back. */
  reasons: z.array(z.string()),
  decideMs: z.number().nonnegative(),
  actions: z.object({ place: count, migrate: count, split: count }),
  /** Dynamic splits since the balancer started. */
  splitsTotal: count,
})
export type BalanceSummary = z.infer<typeof balanceSummarySchema>

export const apiReplySchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('ok') }),
  z.object({ v, t: z.literal('job'), job: jobSummarySchema }),
  z.object({
    v,
    t: z.literal('status'),
    hosts: z.array(hostSummarySchema),
    jobs: z.array(jobSummarySchema),
    /** Messages counted and dropped, by `subject cause`. */
    rejected: z.record(z.string(), count),
    /** Recent migrations, newest last. */
    migrations: z.array(migrationSchema),
    /** Recent failovers (shares re-dispatched from a lost host), newest last. */
    failovers: z.array(failoverSchema),
    /** The last balancing pass (absent until the first one ran). */
    balance: balanceSummarySchema.optional(),
    /** The balancer that answered, which leads, with its term (absent from older balancers). */
    leader: z.object({ id, pid: count, term, since: ms }).optional(),
    /** Balancers standing by to take over, as the leader hears them. */
    standbys: z.array(z.object({ id, pid: count })).optional(),
    /** What was left out to keep the reply under the message limit (absent: nothing). */
    omitted: z.object({ hosts: count, jobs: count, shares: count, history: count }).optional(),
    /** Hosts in the pool (with `hostsAfter`: after it); fewer in `hosts` means more pages follow. */
    hostsTotal: count.optional(),
  }),
  z.object({ v, t: z.literal('migration'), migration: migrationSchema }),
  z.object({
    v,
    t: z.literal('config'),
    /** The balancing settings in force after the request, by config key. */
    settings: z.record(z.string(), z.number()),
    /** The change the request made (absent for a read, or when the value was already in force). */
    changed: z.object({ key: z.string(), from: z.number().nullable(), to: z.number().nullable() }).optional(),
  }),
  z.object({ v, t: z.literal('err'), error: wireErrorSchema }),
])
export type ApiReply = z.infer<typeof apiReplySchema>

export const jobEventSchema = z.object({ v, t: z.literal('job'), job: jobSummarySchema })
export type JobEvent = z.infer<typeof jobEventSchema>
