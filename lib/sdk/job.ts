/**
 * A submitted job as the SDK user holds it: progress as events or an async iterator, the result as
 * a promise, cancellation. Events come over NATS core pub/sub (at most once), so the job also asks
 * the balancer for its state now and then: a missed event delays an update, never loses the result.
 * An event is only a hint: anyone who may publish on the job's event subject could send one, so a
 * final state (completed, failed, cancelled) is taken only from the balancer's own answer, which
 * such an event merely prompts the job to ask for.
 *
 * Must never talk to hosts: everything goes through the balancer.
 */

import { EventEmitter } from 'node:events'
import type { Subscription } from '@nats-io/transport-node'
import { ShoalError, fromWire } from '../errors.ts'
import type { JobSummary } from '../protocol/messages.ts'

/** What a Job needs from its client (kept narrow so tests can drive a Job with a fake). */
export interface JobBackend {
  fetch(jobId: string, withShares: boolean): Promise<JobSummary>
  cancel(jobId: string): Promise<JobSummary>
  subscribe(jobId: string, onEvent: (job: JobSummary) => void): Subscription
}

const POLL_MS = 2_000

function isFinal(s: JobSummary['state']): boolean {
  return s === 'completed' || s === 'failed' || s === 'cancelled'
}

/**
 * A job running on the pool. Emits `progress` (JobSummary) on every update and `done` once with
 * the final summary.
 */
export class Job<Result = unknown> extends EventEmitter<{ progress: [JobSummary]; done: [JobSummary] }> {
  /** The job's id (also accepted by `shoal job get|wait|cancel|result` and `ShoalClient.job`). */
  readonly id: string
  private latest: JobSummary | undefined
  private final: Promise<JobSummary>
  private settle!: (s: JobSummary) => void
  private readonly sub: Subscription
  private poll: NodeJS.Timeout | undefined
  /** A final state seen in an event is being confirmed with the balancer. */
  private confirming = false

  /** @internal Created by ShoalClient.submit and ShoalClient.job. */
  constructor(
    id: string,
    private readonly backend: JobBackend,
  ) {
    super()
    this.id = id
    this.final = new Promise((resolve) => (this.settle = resolve))
    // Subscribe before the job is submitted (the client does that next), so no event is missed.
    this.sub = backend.subscribe(id, (s) => this.hint(s))
  }

  /** @internal Starts the safety-net polling once the balancer has accepted the job. */
  accepted(first: JobSummary): void {
    this.update(first)
    if (this.latest && isFinal(this.latest.state)) return
    this.poll = setInterval(() => {
      this.backend.fetch(this.id, false).then((s) => this.update(s), () => undefined)
    }, POLL_MS)
    this.poll.unref()
  }

  /** The latest known summary (state, units done of total, shares done of total). */
  get summary(): JobSummary | undefined {
    return this.latest
  }

  /**
   * Resolves with the processor's merged result once every share is done. Rejects with a
   * ShoalError: `E_JOB_FAILED` (its `cause` is the share's error, e.g. `E_PROCESSOR_THREW` with the
   * processor's message) or `E_CANCELLED`.
   */
  async result(): Promise<Result> {
    const s = await this.final
    if (s.state === 'completed') return s.result as Result
    throw s.error ? fromWire(s.error) : new ShoalError('E_JOB_FAILED', `job ${this.id} ended ${s.state}`)
  }

  /** Resolves with the final summary, whatever the outcome (never rejects). */
  async done(): Promise<JobSummary> {
    return this.final
  }

  /** Yields a summary on every update, ending after the final one. */
  async *progress(): AsyncGenerator<JobSummary, void, undefined> {
    const queue: JobSummary[] = this.latest ? [this.latest] : []
    let wake: (() => void) | undefined
    const onProgress = (s: JobSummary) => {
      queue.push(s)
      wake?.()
    }
    this.on('progress', onProgress)
    try {
      for (;;) {
        while (queue.length) {
          const s = queue.shift()!
          yield s
          if (isFinal(s.state)) return
        }
        await new Promise<void>((r) => (wake = r))
        wake = undefined
      }
    } finally {
      this.off('progress', onProgress)
    }
  }

  /** Asks the balancer to cancel the job; its shares are dropped on their hosts. */
  async cancel(): Promise<void> {
    this.update(await this.backend.cancel(this.id))
  }

  /** Fetches the current summary, with each share's range, state and host when `withShares`. */
  async fetch(withShares = false): Promise<JobSummary> {
    const s = await this.backend.fetch(this.id, withShares)
    this.update(s)
    return s
  }

  /** Stops listening for updates (called automatically once the job has ended). */
  close(): void {
    if (this.poll) clearInterval(this.poll)
    this.sub.unsubscribe()
  }

  /** An event: progress is taken as it comes, an end only once the balancer confirms it. */
  private hint(s: JobSummary): void {
    if (!isFinal(s.state)) return this.update(s)
    if (this.confirming || (this.latest && isFinal(this.latest.state))) return
    this.confirming = true
    this.backend
      .fetch(this.id, false)
      .then((c) => this.update(c), () => undefined) // the polling asks again
      .finally(() => (this.confirming = false))
      .catch(() => undefined)
  }

  private update(s: JobSummary): void {
    const prev = this.latest
    if (prev && isFinal(prev.state)) return
    // Events and polls can arrive out of order: never go backwards in progress.
    if (prev && !isFinal(s.state) && s.unitsDone < prev.unitsDone && s.state === prev.state) return
    this.latest = s.shares === undefined && prev?.shares ? { ...s, shares: prev.shares } : s
    this.emit('progress', this.latest)
    if (isFinal(s.state)) {
      this.close()
      this.emit('done', this.latest)
      this.settle(this.latest)
    }
  }
}
