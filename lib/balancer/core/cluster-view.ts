/**
 * The plain-data snapshot the balancing policy decides from, its knobs, and the plan it returns.
 * Types only: the shell (`lib/balancer/passes.ts`, through `snapshot.ts`) builds a `ClusterView` from heartbeats and
 * share records, `decide` (`policy.ts`) turns it into a `Plan`, and an applier carries the plan out.
 *
 * Must never import NATS, timers or the clock.
 */

/** One live host as the balancer sees it (dead hosts are not in the view). */
export interface HostView {
  hostId: string
  /** Worker slots: shares it runs at once. */
  slots: number
  /** CPU capacity in cores. */
  cores: number
  memFreeBytes: number
  /** Memory the host advertises; with it, a host short of free memory sheds shares (memory pressure). */
  memTotalBytes?: number
  tags: Readonly<Record<string, string>>
  processors: ReadonlySet<string>
  /** In maintenance mode: receives nothing, its shares are moved away (reason `drain`). */
  draining: boolean
  /**
   * CPU demand of work that is not Shoal's, as a fraction of all cores: smoothed over
   * balancer.loadWindowMs, and inferred from contention where the CPUs are saturated, so it may
   * exceed 1 (`load-history.ts`, `external-demand.ts`).
   */
  externalLoad: number
  /**
   * Noise of `externalLoad`: the estimated standard deviation of one heartbeat's reading, same
   * unit. The policy shades a move's figures by it (absent: 0, the figures are taken as exact).
   */
  externalNoise?: number
  /**
   * Optional relative per-core speed of this host (1 = the cluster's typical core) the shell
   * remembers from an earlier plan's `coreSpeeds`. Used only when no share running on the host
   * has a measured rate; without it the policy assumes nothing about the host's speed.
   */
  coreSpeed?: number
}

export interface ShareView {
  shareId: string
  jobId: string
  processor: string
  requiredTags?: Readonly<Record<string, string>>
  memoryBytes?: number
  /** The job asks its shares to spread: at most ceil(shares of job / eligible hosts) per host. */
  spread?: boolean
  /**
   * Hosts where this share's processor failed: a pending share goes there only when no other
   * live host qualifies for it (a retry should not meet the same broken host again).
   */
  avoidHosts?: readonly string[]
  status: 'pending' | 'running'
  /** Null when pending. */
  host: string | null
  /** Live position; remaining units = to − position. */
  position: number
  to: number
  /** Live rate on its host in units per second; 0 = unknown (just started). */
  unitsPerSec: number
  /**
   * Cores this share demands right now: ≈ 1 for a CPU-bound share. Feed the worker's busy
   * fraction (time inside `step` ÷ wall time), not the OS CPU it got, so contention shows as
   * load above 1. 0 = unknown and counts as one core.
   */
  cpuDemand: number
  /** Noise of `cpuDemand` (standard deviation of one reading, cores; absent: 0). */
  cpuDemandNoise?: number
  /** Size of its last checkpoint: what a migration has to carry. */
  checkpointBytes: number
  /**
   * Last live migration (ms, same clock as `now`), for `minResidencyMs`; null for a share that was
   * only placed (or re-dispatched after a failure): its placement may be corrected once measured.
   */
  lastMovedAt: number | null
  /** A migration or split is in flight: do not touch. */
  busy: boolean
}

export interface ClusterView {
  hosts: HostView[]
  shares: ShareView[]
  /** Learned migration cost: measured stun per MiB of checkpoint (default 40). */
  stunMsPerMiB?: number
  /** Learned fixed part of a migration's stun (default 5). */
  stunBaseMs?: number
}

export interface Knobs {
  /** 1 = mandatory moves only (drain, constraint violations); 5 = act on slight gains. */
  migrationThreshold: 1 | 2 | 3 | 4 | 5
  /** A share moved less than this long ago is not moved again unless the move is mandatory. */
  minResidencyMs: number
  /** Most migrations plus splits planned in one cycle. */
  maxMovesPerCycle: number
  /** Most migrations in flight from or to one host, counting busy shares already there. */
  maxConcurrentMigrationsPerHost: number
  /** A share with fewer remaining units than 2 × this is never split. */
  splitMinUnits: number
}

export type MoveReason = 'imbalance' | 'drain' | 'constraint'

export type Action =
  | { kind: 'place'; shareId: string; hostId: string; reason: 'place' }
  | { kind: 'migrate'; shareId: string; fromHost: string; toHost: string; reason: MoveReason; goodness: number; cost: number }
  /** Give `fraction` of the remaining units (the tail) to `toHost`, which may equal `hostId`. */
  | { kind: 'split'; shareId: string; hostId: string; toHost: string; fraction: number; reason: 'split' }

export interface Plan {
  actions: Action[]
  /** Per live, non-draining host, before the plan. */
  normalisedLoads: Record<string, number>
  /** Noise of each of those loads (standard deviation of one reading), before the plan. */
  loadNoise: Record<string, number>
  /** Standard deviation of the normalised loads, before the plan. */
  imbalance: number
  /** From the threshold and host count (Infinity at threshold 1). */
  toleratedImbalance: number
  /**
   * Relative per-core speed of each host measured this cycle (hosts with measured shares only).
   * The shell should remember these and pass them back as `HostView.coreSpeed`, so a host that
   * has gone idle keeps its known speed.
   */
  coreSpeeds: Record<string, number>
  /** Imbalance the load model expects once every action of the plan has been carried out. */
  projectedImbalance: number
  /** Short explanations of what was done or what held moves back (for logs and `shoal status`). */
  reasons: string[]
  /** Per job with a pending share left unplaced: why the first such share waits (shown to the client). */
  waiting: Record<string, string>
}
