/**
 * Every message Shoal sends, as a versioned discriminated type with its zod schema. A receiver
 * decodes with the codec and validates against the schema for its subject before touching a field;
 * anything else is counted and dropped (see codec.ts).
 *
 * `v` is the protocol version (1). `t` discriminates. Processor-owned values (input, state, result)
 * are opaque here (`unknown`): only the processor on a host interprets them.
 *
 * Must never do I/O.
 */

import { z } from 'zod'

export const PROTOCOL_VERSION = 1 as const

const v = z.literal(PROTOCOL_VERSION)
const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/)
const shareId = z.string().regex(/^[A-Za-z0-9_-]{1,64}-s[0-9]{1,9}$/)
const count = z.number().int().nonnegative()
const unit = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
const ms = z.number().nonnegative()
const fraction = z.number().min(0).max(1)
const tags = z.record(z.string(), z.string())

export const wireErrorSchema: z.ZodType<import('../errors.ts').WireError> = z.lazy(() =>
  z.object({
    code: z.string() as z.ZodType<import('../errors.ts').ErrorCode>,
    message: z.string(),
    retryable: z.boolean(),
    details: z.record(z.string(), z.unknown()).optional(),
    cause: wireErrorSchema.optional(),
  }),
)

/** The answer of any request whose handler failed (see Bus.serve): the error in wire form. */
export const errReplySchema = z.object({ v, t: z.literal('err'), error: wireErrorSchema })

// ---------------------------------------------------------------- pool

export const shareLoadSchema = z.object({
  shareId,
  epoch: count,
  position: unit,
  to: unit,
  unitsDone: count,
  unitsPerSec: z.number().nonnegative(),
  /**
   * Fraction of wall time the share's worker thread was active over the last rate window: its
   * CPU demand in cores (≈ 1 for a CPU-bound share even on a contended core). Absent = not
   * measured yet, or a host older than this field.
   */
  busy: fraction.optional(),
  /**
   * The share finished on this host and its result (or failure) is on its way to the balancer,
   * not yet acknowledged: the share is accounted for, not lost, and uses no slot.
   */
  finished: z.boolean().optional(),
})
export type ShareLoad = z.infer<typeof shareLoadSchema>

export const heartbeatSchema = z.object({
  v,
  t: z.literal('hb'),
  hostId: id,
  seq: count,
  startedAt: ms,
  capacity: z.object({ slots: z.number().int().positive(), cores: z.number().int().positive(), memoryBytes: count }),
  tags,
  processors: z.array(z.string()),
  load: z.object({
    /** Busy fraction of the CPUs this host may run on (its affinity set), all work included. */
    cpuMachine: fraction,
    /** This host process's own CPU use as a fraction of those CPUs (process.cpuUsage). */
    cpuShoal: fraction,
    memFreeBytes: count,
    busySlots: count,
    /** Busy slots / slots. */
    utilisation: fraction,
  }),
  shares: z.array(shareLoadSchema),
  /**
   * How often this host beats now (ms): pool.heartbeatMs, or the longer period the leader
   * announced for a large pool. The balancer measures this host's silence against it. Absent:
   * pool.heartbeatMs (hosts before the period adapted).
   */
  periodMs: z.number().int().min(1).max(3_600_000).optional(),
})
export type Heartbeat = z.infer<typeof heartbeatSchema>

export const leaveSchema = z.object({ v, t: z.literal('leave'), hostId: id })
export type Leave = z.infer<typeof leaveSchema>

// ---------------------------------------------------------------- balancer → host commands

/** Where a large checkpoint state lives in the Object Store (instead of inline `state`). */
export const stateRefSchema = z.object({ name: z.string().min(1).max(200), bytes: count })

export const shareAssignmentSchema = z.object({
  shareId,
  jobId: id,
  epoch: count,
  processor: z.string(),
  input: z.unknown(),
  from: unit,
  to: unit,
  position: unit,
  state: z.unknown().optional(),
  stateRef: stateRefSchema.optional(),
  unitsDone: count,
})
export type ShareAssignment = z.infer<typeof shareAssignmentSchema>

/**
 * The leading balancer's term (its own epoch, one higher at every takeover). Every command carries
 * it; a host refuses a command from a lower term than the highest it has seen (E_STALE_TERM), so a
 * deposed leader can change nothing on a host.
 */
const term = count

export const hostCommandSchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('assign'), term, share: shareAssignmentSchema }),
  z.object({ v, t: z.literal('pause'), term, shareId, epoch: count }),
  z.object({ v, t: z.literal('split'), term, shareId, epoch: count, fraction: z.number().gt(0).lt(1) }),
  z.object({ v, t: z.literal('drop'), term, shareId, epoch: count }),
  z.object({ v, t: z.literal('merge'), term, processor: z.string(), input: z.unknown(), results: z.array(z.unknown()).min(1) }),
  z.object({ v, t: z.literal('validate'), term, processor: z.string(), input: z.unknown() }),
])
export type HostCommand = z.infer<typeof hostCommandSchema>

export const checkpointSchema = z.object({
  shareId,
  epoch: count,
  position: unit,
  to: unit,
  /** The state inline, or absent when `stateRef` names it in the Object Store. */
  state: z.unknown(),
  stateRef: stateRefSchema.optional(),
  unitsDone: count,
  stateBytes: count,
})
export type CheckpointMsg = z.infer<typeof checkpointSchema>

export const hostReplySchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('ok') }),
  z.object({ v, t: z.literal('paused'), checkpoint: checkpointSchema }),
  z.object({ v, t: z.literal('split'), keptTo: unit, tail: z.tuple([unit, unit]).nullable() }),
  z.object({ v, t: z.literal('merged'), result: z.unknown() }),
  z.object({ v, t: z.literal('err'), error: wireErrorSchema }),
])
export type HostReply = z.infer<typeof hostReplySchema>

// ---------------------------------------------------------------- host → balancer reports

export const reportSchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('checkpoint'), hostId: id, checkpoint: checkpointSchema }),
  z.object({
    v,
    t: z.literal('done'),
    hostId: id,
    shareId,
    epoch: count,
    to: unit,
    result: z.unknown(),
    unitsDone: count,
    elapsedMs: ms,
  }),
  z.object({
    v,
    t: z.literal('failed'),
    hostId: id,
    shareId,
    epoch: count,
    error: wireErrorSchema,
    checkpoint: checkpointSchema.optional(),
  }),
])
export type Report = z.infer<typeof reportSchema>

/**
 * The balancer's answer to a report: `ack` once durable; `nack` (a definite refusal: stale epoch,
 * share or job gone) tells the host to drop the share. Both carry the leader's term: a host treats
 * an answer from a lower term than it knows as no answer and sends the report again.
 */
export const reportReplySchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('ack'), term }),
  z.object({ v, t: z.literal('nack'), term, error: wireErrorSchema }),
])
export type ReportReply = z.infer<typeof reportReplySchema>

/** Reports one batch may carry: a host's reports of one interval, at most one per share it runs. */
export const MAX_REPORTS_PER_BATCH = 1_024

/**
 * A host's reports of one interval in one message (issue 12, point 4): the balancer's message
 * rate and its store writes grow with hosts, not with shares. Answered with one answer per report,
 * in order.
 */
export const reportBatchSchema = z.object({ v, t: z.literal('reports'), hostId: id, reports: z.array(reportSchema).min(1).max(MAX_REPORTS_PER_BATCH) })
export type ReportBatch = z.infer<typeof reportBatchSchema>

/** One report's answer in a batch: its ack or nack, or `err` (not handled now: send it again). */
export const reportAnswerSchema = z.union([reportReplySchema, errReplySchema])
export type ReportAnswer = z.infer<typeof reportAnswerSchema>

export const reportBatchReplySchema = z.object({ v, t: z.literal('answers'), term, answers: z.array(reportAnswerSchema) })
export type ReportBatchReply = z.infer<typeof reportBatchReplySchema>

// ---------------------------------------------------------------- large states (host ↔ balancer)

/** Object names a host gives its states: `<shareId>.<epoch>.<hostId>.<seq>`. */
const blobName = z.string().regex(/^[A-Za-z0-9_-]{1,64}-s[0-9]{1,9}\.[0-9]{1,15}\.[A-Za-z0-9_-]{1,64}\.[0-9]{1,15}$/)
const bytes = z.custom<Uint8Array>((x) => x instanceof Uint8Array, { message: "expected bytes" })

/**
 * A checkpoint state too large for one message travels in chunks through the balancer, which
 * alone writes the Object Store (lib/balancer/blob-proxy.ts says why).
 */
export const blobRequestSchema = z.discriminatedUnion('t', [
  /** Chunk `index` of `count` of the packed state `name` of `total` bytes; index 0 starts over. */
  z.object({ v, t: z.literal('blob-put'), hostId: id, name: blobName, index: count, count: z.number().int().min(1).max(100_000), total: count, chunk: bytes }),
  /** Bytes [offset, offset + length) of the state `name`. */
  z.object({ v, t: z.literal('blob-get'), hostId: id, name: blobName, offset: count, length: z.number().int().min(1) }),
])
export type BlobRequest = z.infer<typeof blobRequestSchema>

export const blobReplySchema = z.discriminatedUnion('t', [
  z.object({ v, t: z.literal('ok') }),
  z.object({ v, t: z.literal('blob'), total: count, chunk: bytes }),
])
export type BlobReply = z.infer<typeof blobReplySchema>

// ---------------------------------------------------------------- balancer presence

/**
 * Every balancer process says it is there, every pool.heartbeatMs: the leader (with its term,
 * which hosts adopt as the lowest term they obey) and the standbys (which `shoal status` lists).
 */
export const presenceSchema = z.object({
  v,
  t: z.literal('presence'),
  id,
  pid: count,
  role: z.enum(['leader', 'standby']),
  /** The leader's term; for a standby, the highest term it has seen. */
  term,
  /** When the leader took over (wall clock, ms); absent for a standby. */
  since: ms.optional(),
  /** The leader's word on how often hosts beat (ms), grown with the pool (lib/pool/heartbeat-period.ts). */
  heartbeatMs: z.number().int().min(1).max(3_600_000).optional(),
})
export type Presence = z.infer<typeof presenceSchema>

// ---------------------------------------------------------------- SDK/CLI → balancer

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
