/**
 * The work the chaos benchmark keeps the pool busy with: a set of jobs with known answers,
 * submitted together as a *round*; rounds follow one another until the phase ends. Each job's
 * makespan (the balancer's submit → completed) is kept with its round, so a run under faults can be
 * compared job by job with undisturbed rounds of the same set in the same run.
 *
 * Must never judge a result by anything but equality with the known answer, never drop a job that
 * failed or was wrong from the outcomes, and never wait without a deadline.
 */

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { JobSpec, JobSummary, ShoalClient } from '../../lib/sdk/client.ts'
import { BenchError, sleep } from './bench.ts'

/** A job of a round and its known answer. */
export interface JobDef {
  /** Short name, the same in every round (makespans are compared by it). */
  label: string
  spec: Omit<JobSpec, 'jobId' | 'signal'>
  expected: number
}

export interface JobOutcome {
  label: string
  jobId: string
  phase: string
  round: number
  state: JobSummary['state']
  exact: boolean
  result: unknown
  expected: number
  /** Submit → completed, as the balancer measured it (wall time seen here if it did not say). */
  makespanMs: number
  error?: string
}

/** The final summary of a job: waits on the SDK's events and polls; BenchError after `timeoutMs`. */
export async function finalSummary(client: ShoalClient, jobId: string, timeoutMs: number): Promise<JobSummary> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const s = await client.fetchJob(jobId).catch(() => undefined)
    if (s && (s.state === 'completed' || s.state === 'failed' || s.state === 'cancelled')) return s
    if (Date.now() > deadline) throw new BenchError(`job ${jobId} did not end within ${timeoutMs} ms (last state: ${s?.state ?? 'unknown'})`)
    await sleep(200)
  }
}

function outcomeOf(def: JobDef, phase: string, round: number, s: JobSummary, wallMs: number): JobOutcome {
  const exact = s.state === 'completed' && s.result === def.expected
  const o: JobOutcome = { label: def.label, jobId: s.jobId, phase, round, state: s.state, exact, result: s.result ?? null, expected: def.expected, makespanMs: s.elapsedMs ?? wallMs }
  if (s.error) o.error = `${s.error.code}: ${s.error.message}`
  return o
}

/** Submits rounds of `defs` one after another while a phase runs. */
export class JobRounds {
  private running: Promise<void> | undefined
  private stopping = false
  private round = 0
  readonly outcomes: JobOutcome[] = []

  /** `client` must retry submits for as long as a takeover or a NATS election may take. */
  constructor(
    private readonly client: ShoalClient,
    private readonly defs: readonly JobDef[],
    private readonly log: (line: string) => void,
    private readonly roundTimeoutMs: number,
  ) {}

  /** One round: every job submitted at once; resolves with their outcomes once all have ended. */
  async runRound(phase: string): Promise<JobOutcome[]> {
    const round = ++this.round
    const t0 = Date.now()
    const jobs = await Promise.all(
      this.defs.map(async (def) => {
        const job = await this.client.submit<number>({ ...def.spec, jobId: `${phase}-r${round}-${def.label}` })
        // The round's own polling follows the job; the SDK's event follower is not needed.
        job.close()
        return { def, job }
      }),
    )
    const out = await Promise.all(jobs.map(async ({ def, job }) => outcomeOf(def, phase, round, await finalSummary(this.client, job.id, this.roundTimeoutMs), Date.now() - t0)))
    this.outcomes.push(...out)
    const wrong = out.filter((o) => !o.exact)
    this.log(`  ${phase} round ${round}: ${out.map((o) => `${o.label} ${(o.makespanMs / 1000).toFixed(1)} s${o.exact ? '' : ` WRONG (${o.state}, ${JSON.stringify(o.result)}${o.error ? `, ${o.error}` : ''})`}`).join(', ')}`)
    if (wrong.length) this.log(`  ${phase} round ${round}: ${wrong.length} job(s) not exact`)
    return out
  }

  /** Starts rounds back to back until `stop()`. */
  start(phase: string): void {
    if (this.running) throw new BenchError('job rounds already running')
    this.stopping = false
    this.running = (async () => {
      while (!this.stopping) await this.runRound(phase)
    })()
    // stop() reports the failure; until then it must not surface as an unhandled rejection.
    this.running.catch(() => undefined)
  }

  /** Lets the round in flight finish, then resolves (rejects if a round failed). */
  async stop(): Promise<void> {
    this.stopping = true
    const r = this.running
    this.running = undefined
    await r
  }
}

/** Runs bench/support/burn-range.ts to compute a cpu-burn checksum outside Shoal (the known answer). */
export function cpuBurnChecksum(from: number, to: number, workPerUnit: number): Promise<number> {
  const script = fileURLToPath(new URL('./burn-range.ts', import.meta.url))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, 'range', String(from), String(to), String(workPerUnit)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
    child.once('error', reject)
    child.once('close', (code) => {
      try {
        if (code !== 0) throw new Error(`exit code ${code}: ${err.trim()}`)
        const r = JSON.parse(out) as { checksum: number; units: number }
        if (r.units !== to - from) throw new Error(`it counted ${r.units} units, expected ${to - from}`)
        resolve(r.checksum)
      } catch (e) {
        reject(new BenchError(`computing the cpu-burn checksum of [${from}, ${to}) outside Shoal failed: ${(e as Error).message}`))
      }
    })
  })
}
