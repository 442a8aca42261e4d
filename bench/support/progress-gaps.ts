/**
 * The longest time a job made no visible progress, as a user polling `shoal status` sees it: a
 * client asks `status()` every 200 ms and notes each poll at which the job's unitsDone grew; the
 * longest gap is the longest time between two such polls. A poll that fails counts as no progress.
 *
 * Must never count a failed or slow poll as progress, nor stop polling because one failed.
 */

import type { ShoalClient } from '../../lib/sdk/client.ts'
import { sleep } from './bench.ts'

export interface ProgressGaps {
  /** Longest time between two polls that saw unitsDone grow. */
  longestGapMs: number
  /** When that gap began (ms since epoch). */
  longestGapFrom: number
  polls: number
  failedPolls: number
  /** The first failed polls: ms since the watch started, how long the poll took, and why it failed. */
  failures: string[]
}

/** Failed polls described in `failures` (the count goes on). */
const FAILURES_KEPT = 12

/** Polls until `stop()`, then reports the gaps. */
export class ProgressGapWatch {
  private stopped = false
  private readonly done: Promise<ProgressGaps>

  /** `client` should time out within about a second, so a poll that hangs does not hide others. */
  constructor(
    private readonly client: ShoalClient,
    private readonly jobId: string,
    private readonly everyMs = 200,
  ) {
    this.done = this.loop()
  }

  private async loop(): Promise<ProgressGaps> {
    // unitsDone of the last answered poll; it may go down (a failover resumes from a checkpoint),
    // and growth is counted against the previous answer, not against the best so far.
    let prev: number | undefined
    // The first answer is the starting point that gaps are measured from.
    let lastGrowth: number | undefined
    const out: ProgressGaps = { longestGapMs: 0, longestGapFrom: 0, polls: 0, failedPolls: 0, failures: [] }
    const start = Date.now()
    while (!this.stopped) {
      const t = Date.now()
      out.polls++
      let why = ''
      const job = await this.client.status().then(
        (st) => {
          const j = st.jobs.find((x) => x.jobId === this.jobId)
          if (!j) why = `the job is not in the answer (leader ${st.leader?.id ?? '?'} term ${st.leader?.term ?? '?'})`
          return j
        },
        (e: unknown) => {
          why = (e as Error).message
          return undefined
        },
      )
      if (!job) {
        out.failedPolls++
        if (out.failures.length < FAILURES_KEPT) out.failures.push(`+${t - start} ms (${Date.now() - t} ms): ${why}`)
      } else {
        if (prev === undefined) lastGrowth = t
        else if (job.unitsDone > prev) {
          if (t - lastGrowth! > out.longestGapMs) {
            out.longestGapMs = t - lastGrowth!
            out.longestGapFrom = lastGrowth!
          }
          lastGrowth = t
        }
        prev = job.unitsDone
      }
      await sleep(Math.max(0, t + this.everyMs - Date.now()))
    }
    return out
  }

  /** Stops polling (after the poll in flight) and returns the figures. */
  async stop(): Promise<ProgressGaps> {
    this.stopped = true
    return this.done
  }
}
