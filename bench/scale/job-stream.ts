/**
 * Submits synthetic jobs (or jobs of a processor with the same input and results) through the SDK, keeping a fixed number in flight, and checks each one's
 * result: a job of S shares over [0, S · unitsPerShare) must merge to exactly S · unitsPerShare
 * (synthetic-host.ts makes each share's result the length of its range), so a unit lost or counted
 * twice shows as a wrong result.
 *
 * A submission that gets no answer is sent again under the same job id (the balancer admits a job
 * once), up to five times; a job that does not end within `doneTimeoutMs` is counted as timed
 * out and left alone. Neither is an exception: a balancer that falls behind is what the benchmark
 * measures. A wrong result is kept in `wrong` for the caller to fail the run with.
 *
 * Must never leave a job's subscription open: each Job is closed once it ended or timed out.
 */

import { ShoalError } from '../../lib/errors.ts'
import type { JobSpec, ShoalClient } from '../../lib/sdk/client.ts'
import type { Job } from '../../lib/sdk/job.ts'
import { sleep } from '../support/bench.ts'
import { SYNTHETIC_PROCESSOR, type SyntheticInput } from './ipc.ts'

export interface StreamOptions {
  prefix: string
  /**
   * Processor the jobs name; default the synthetic hosts' own. bench/processors/instant.ts takes the
   * same input and gives the same result on real hosts (the tiny benchmark's).
   */
  processor?: string
  sharesPerJob: number
  unitsPerShare: number
  input: SyntheticInput
  concurrency: number
  doneTimeoutMs: number
}

export interface StreamStats {
  submitted: number
  completed: number
  exact: number
  /** Completed with another result than its range's length: `jobId: got X, want Y`. */
  wrong: string[]
  failed: number
  timedOut: number
  submitErrors: number
  /** Shares of the jobs that completed exactly. */
  completedShares: number
  /** Submit → completed of each completed job, ms. */
  latencyMs: number[]
}

const SUBMIT_TRIES = 5

/**
 * Submits `spec` (with its own job id), sent again while the balancer does not answer; undefined
 * when it was refused or never answered.
 */
export async function submitWithRetry(client: ShoalClient, spec: JobSpec & { jobId: string }): Promise<Job | undefined> {
  for (let tryNo = 1; ; tryNo++) {
    try {
      return await client.submit(spec)
    } catch (e) {
      const code = e instanceof ShoalError ? e.code : undefined
      if (tryNo >= SUBMIT_TRIES || (code !== 'E_TIMEOUT' && code !== 'E_UNAVAILABLE')) return undefined
      await sleep(500)
    }
  }
}

export class JobStream {
  readonly stats: StreamStats = { submitted: 0, completed: 0, exact: 0, wrong: [], failed: 0, timedOut: 0, submitErrors: 0, completedShares: 0, latencyMs: [] }
  private n = 0

  /** Jobs this stream has begun to submit (counted before the submission is answered). */
  get started(): number {
    return this.n
  }

  constructor(
    private readonly client: ShoalClient,
    private readonly o: StreamOptions,
  ) {}

  /** Keeps `concurrency` jobs in flight until `stop()` says so, then waits for those in flight. */
  async run(stop: () => boolean): Promise<void> {
    const lane = async () => {
      while (!stop()) await this.one()
    }
    await Promise.all(Array.from({ length: this.o.concurrency }, lane))
  }

  private async one(): Promise<void> {
    const jobId = `${this.o.prefix}-${++this.n}`
    const units = this.o.sharesPerJob * this.o.unitsPerShare
    const t0 = performance.now()
    const job = await submitWithRetry(this.client, { processor: this.o.processor ?? SYNTHETIC_PROCESSOR, range: [0, units], shares: this.o.sharesPerJob, input: this.o.input, jobId })
    if (!job) {
      this.stats.submitErrors++
      await sleep(500)
      return
    }
    this.stats.submitted++
    let timer: NodeJS.Timeout | undefined
    const end = await Promise.race([job.done(), new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), this.o.doneTimeoutMs)))])
    clearTimeout(timer)
    job.close()
    if (!end) {
      this.stats.timedOut++
      return
    }
    if (end.state !== 'completed') {
      this.stats.failed++
      return
    }
    this.stats.completed++
    this.stats.latencyMs.push(performance.now() - t0)
    if (end.result === units) {
      this.stats.exact++
      this.stats.completedShares += this.o.sharesPerJob
    } else this.stats.wrong.push(`${jobId}: got ${JSON.stringify(end.result)}, want ${units}`)
  }
}
