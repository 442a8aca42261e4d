/**
 * The narrow face the balancer's parts get from the composition root (balancer.ts): the term's
 * fence verdicts, commands to hosts, a pass kicked, logging, metrics, the live config, and the
 * state every part reads (the ledger, the pool's membership, the per-share tracking).
 *
 * Parts own the rest of their state themselves and get each other's operations as constructor
 * arguments, so that what a part may touch is written in its constructor. Nothing here knows a part.
 */

import type { Config } from '../config/mod.ts'
import type { LogLimiter, Logger } from '../log.ts'
import type { BalancerMetrics } from '../metrics/balancer-metrics.ts'
import type { Membership } from '../pool/membership.ts'
import type { Bus } from '../protocol/bus.ts'
import type { HostCommand, HostReply } from '../protocol/messages.ts'
import type { Subjects } from '../protocol/subjects.ts'
import type { Fence } from './fence.ts'
import type { Ledger } from './ledger.ts'
import type { Tracking } from './tracking.ts'

export interface BalancerContext {
  readonly log: Logger
  /** Rate-limited logging, for what may repeat thousands of times a second. */
  readonly limited: LogLimiter
  readonly metrics: BalancerMetrics
  readonly subjects: Subjects
  readonly bus: Bus
  /** This term's fence: records and commands carry its term. */
  readonly fence: Fence
  /** Jobs and shares: the only place a share's status, host or epoch changes. */
  readonly ledger: Ledger
  readonly membership: Membership
  readonly tracking: Tracking
  /** The config now: balancing settings change while the balancer runs. */
  config(): Config
  /** The balancer was stopped (deposed or shut down). */
  stopped(): boolean
  /** May this balancer act now: not stopped, and its lease confirmed. */
  acting(): boolean
  /** May it act now or within a lease (a lapse from running late is usually confirmed again). */
  actingSoon(): Promise<boolean>
  /** A background task failed: logged (rate-limited) and counted, unless the term ended. */
  failed(what: string, e: unknown): void
  /** Sends a command to a host, only while this balancer may act. */
  command(hostId: string, cmd: HostCommand, timeoutMs?: number): Promise<HostReply>
  /** Schedules a policy pass soon (passes.ts). */
  kick(kind?: 'kick' | 'interval'): void
}
