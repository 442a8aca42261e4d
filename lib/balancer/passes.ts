/**
 * The balancing loop: a pass takes a snapshot of the cluster, asks the pure policy (core/policy.ts)
 * for a plan and applies it (the plan-then-apply split of DESIGN.md). A kick (a share pending, a
 * slot freed, a host joined) applies the plan's placements, splits and mandatory moves; an
 * interval pass, at the DRS cadence of `balancer.intervalMs`, also its balancing moves
 * (core/pass-rules.ts, shared with the simulator). Triggers during a pass coalesce into one more.
 */

import type { BalanceSummary } from '../protocol/messages.ts'
import type { Assigner } from './apply/assign.ts'
import type { Migrator } from './apply/migrate.ts'
import type { Splitter } from './apply/split.ts'
import type { Completion } from './completion.ts'
import type { BalancerContext } from './context.ts'
import type { LoadHistory } from './core/load-history.ts'
import { actionsFor, recordsCoreSpeeds } from './core/pass-rules.ts'
import { decide, type Action, type Knobs, type Plan } from './core/policy.ts'
import { buildClusterView } from './core/snapshot.ts'
import { learnStunCost } from './core/stun-model.ts'
import type { History } from './history.ts'
import type { Records } from './records.ts'

export interface PassParts {
  records: Records
  history: History
  loads: LoadHistory
  completion: Pick<Completion, 'complete'>
  assigner: Pick<Assigner, 'assign'>
  migrator: Pick<Migrator, 'migrate'>
  splitter: Pick<Splitter, 'split' | 'count'>
}

export class Passes {
  /** Per-core speeds the policy measured, remembered for hosts that go idle (`HostView.coreSpeed`). */
  readonly #coreSpeeds = new Map<string, number>()
  /** The last interval pass: what `shoal status` shows of the balance. */
  #lastBalance: Omit<BalanceSummary, 'splitsTotal'> | undefined
  /** A policy pass is running; `#wanted` says whether another (and which) must follow it. */
  #passing = false
  #wanted: 'kick' | 'interval' | null = null

  constructor(
    private readonly ctx: BalancerContext,
    private readonly parts: PassParts,
  ) {}

  /** The last interval pass's balance, with the term's split count (for `shoal status`). */
  balance(): BalanceSummary | undefined {
    return this.#lastBalance ? { ...this.#lastBalance, splitsTotal: this.parts.splitter.count } : undefined
  }

  /** The last interval pass's balance as the metrics show it. */
  lastBalance(): Omit<BalanceSummary, 'splitsTotal'> | undefined {
    return this.#lastBalance
  }

  /** Schedules a policy pass soon. */
  kick(kind: 'kick' | 'interval' = 'kick'): void {
    if (this.ctx.stopped()) return
    this.#wanted = this.#wanted === 'interval' || kind === 'interval' ? 'interval' : 'kick'
    if (this.#passing) return
    this.#passing = true
    // runPasses catches each pass's errors itself.
    setImmediate(() => {
      this.runPasses().catch((e: unknown) => this.ctx.failed('a balancing pass', e))
    })
  }

  /** The interval timer's turn: completes what can complete, then an interval pass. */
  cycle(): void {
    if (!this.ctx.acting()) return
    for (const job of this.ctx.ledger.openJobs()) if (job.state === 'running') this.parts.completion.complete(job.jobId)
    this.kick('interval')
  }

  private async runPasses(): Promise<void> {
    try {
      // A balancer that may not act keeps the wish; the tick kicks again once it can.
      while (this.#wanted !== null && this.ctx.acting()) {
        const kind = this.#wanted
        this.#wanted = null
        await this.pass(kind).catch((e: unknown) => this.ctx.failed('a balancing pass', e))
      }
    } finally {
      this.#passing = false
    }
  }

  /** The balancing knobs, read from the config on every pass. */
  private knobs(): Knobs {
    const b = this.ctx.config().balancer
    return {
      migrationThreshold: b.migrationThreshold as Knobs['migrationThreshold'],
      minResidencyMs: b.minResidencyMs,
      maxMovesPerCycle: b.maxMovesPerCycle,
      maxConcurrentMigrationsPerHost: b.maxConcurrentMigrationsPerHost,
      splitMinUnits: b.splitMinUnits,
    }
  }

  /** One pass: snapshot → pure `decide` → apply. */
  private async pass(kind: 'kick' | 'interval'): Promise<void> {
    const { ledger, tracking, membership, metrics, log } = this.ctx
    const start = performance.now()
    const view = buildClusterView({
      hosts: membership.all(),
      draining: tracking.draining,
      benched: tracking.refusals.benched(Date.now()),
      incoming: tracking.incoming,
      coreSpeeds: this.#coreSpeeds,
      jobs: [...ledger.openJobs()],
      sharesOf: (jobId) => ledger.sharesOf(jobId),
      live: tracking.live,
      movedAt: tracking.migratedAt,
      moving: tracking.moving,
      stun: learnStunCost(this.parts.history.migrations()),
      loads: this.parts.loads,
    })
    const now = Date.now()
    const knobs = this.knobs()
    const t0 = performance.now()
    const plan = decide(view, knobs, now)
    const decideMs = performance.now() - t0
    metrics.decide.observe({ pass: kind }, decideMs / 1000)
    metrics.pass.observe({ pass: kind }, (performance.now() - start) / 1000)
    // What a pass of this kind applies and remembers: core/pass-rules.ts, shared with the simulator.
    if (recordsCoreSpeeds(kind)) for (const [hostId, speed] of Object.entries(plan.coreSpeeds)) this.#coreSpeeds.set(hostId, speed)
    const actions = actionsFor(kind, plan.actions)
    if (kind === 'interval') {
      this.#lastBalance = summarisePlan(plan, knobs.migrationThreshold, now, decideMs)
      const moves = plan.actions.filter((a) => a.kind !== 'place')
      if (moves.length) log.info({ imbalance: +plan.imbalance.toFixed(4), tolerated: +plan.toleratedImbalance.toFixed(4), decideMs: +decideMs.toFixed(2), reasons: plan.reasons }, `balancing pass: ${describeActions(moves)}`)
    }
    await this.noteWaiting(plan.waiting)
    await this.apply(actions)
  }

  /** Carries out a plan: placements are awaited; migrations and splits run on (their shares are busy meanwhile). */
  private async apply(actions: readonly Action[]): Promise<void> {
    const placements: Array<Promise<void>> = []
    for (const a of actions) {
      if (a.kind === 'place') placements.push(this.parts.assigner.assign(a.shareId, a.hostId))
      else if (a.kind === 'migrate') {
        this.ctx.log.info({ share: a.shareId, from: a.fromHost, to: a.toHost, reason: a.reason, goodness: +a.goodness.toFixed(5), cost: +a.cost.toFixed(5) }, `migrating (${a.reason})`)
        this.parts.migrator.migrate(a.shareId, a.toHost, a.reason).catch((e: Error) => this.ctx.log.warn({ share: a.shareId, to: a.toHost, reason: a.reason, err: e.message }, 'planned migration refused'))
      } else {
        // split() catches and logs its own refusals.
        this.parts.splitter.split(a.shareId, a.toHost, a.fraction).catch((e: unknown) => this.ctx.failed('a dynamic split', e))
      }
    }
    await Promise.all(placements)
  }

  /** Tells the clients of waiting jobs why they wait (no host with the processor, no room, ...). */
  private async noteWaiting(waiting: Readonly<Record<string, string>>): Promise<void> {
    for (const [jobId, reason] of Object.entries(waiting)) {
      const job = this.ctx.ledger.job(jobId)
      if (job && job.state === 'waiting' && job.reason !== reason) {
        job.reason = reason
        await this.parts.records.persistJob(job)
        this.parts.records.publishJob(job)
      }
    }
  }
}

/** What `shoal status` shows of a balancing pass. */
function summarisePlan(plan: Plan, threshold: number, at: number, decideMs: number): Omit<BalanceSummary, 'splitsTotal'> {
  const count = (kind: Action['kind']) => plan.actions.filter((a) => a.kind === kind).length
  return {
    at,
    threshold,
    imbalance: plan.imbalance,
    toleratedImbalance: Number.isFinite(plan.toleratedImbalance) ? plan.toleratedImbalance : null,
    projectedImbalance: plan.projectedImbalance,
    loads: plan.normalisedLoads,
    loadNoise: plan.loadNoise,
    reasons: plan.reasons,
    decideMs,
    actions: { place: count('place'), migrate: count('migrate'), split: count('split') },
  }
}

/** "2 migrate (imbalance), 1 split" for a log line. */
function describeActions(actions: readonly Action[]): string {
  const n = new Map<string, number>()
  for (const a of actions) {
    const k = a.kind === 'migrate' ? `migrate (${a.reason})` : a.kind
    n.set(k, (n.get(k) ?? 0) + 1)
  }
  return [...n].map(([k, c]) => `${c} ${k}`).join(', ')
}
