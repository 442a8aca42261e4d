/**
 * `shoal submit PROCESSOR`: submits a job; with --wait follows it to the end and prints the result.
 * With --json prints exactly one JSON document on stdout (the job summary, with `result` when done).
 */

import { Command } from 'commander'
import type { ShoalClient, JobSummary } from '../../sdk/client.ts'
import { connectClient, connectionOptions, exitSoon, type ClientFlags } from '../client-options.ts'
import { ShoalError } from '../../errors.ts'
import { formatDuration, parseIntArg, parseRange, parseTags, printJson, progressLine, reportError } from '../output.ts'
import type { ProgressLine } from '../progress.ts'

interface SubmitFlags extends ClientFlags {
  range: string
  input?: string
  shares?: string
  tags?: string
  spread?: boolean
  wait?: boolean
  cancelOnInterrupt?: boolean
  timeoutMs?: string
}

export function submitCommand(): Command {
  const cmd = new Command('submit')
    .description('submit a job to the pool')
    .argument('<processor>', 'name of a processor registered on hosts (e.g. count-primes, cpu-burn)')
    .option('--range <from:to>', 'units [from, to) of the job', '0:1000000')
    .option('--input <json>', 'processor input as JSON', 'null')
    .option('--shares <n>', 'number of shares (default: the balancer decides)')
    .option('--tags <k=v,...>', 'only hosts with these tags may run it')
    .option('--spread', 'spread the shares evenly over the hosts that may run them')
    .option('--wait', 'wait for the job to finish and print its result (Ctrl-C stops waiting; the job goes on)')
    .option('--cancel-on-interrupt', 'with --wait: Ctrl-C cancels the job instead of leaving it running')
    .option('--json', 'print one JSON document on stdout')
  return connectionOptions(cmd).action(async (processor: string, o: SubmitFlags) => {
      const json = o.json === true
      let client: ShoalClient | undefined
      try {
        const range = parseRange(o.range)
        let input: unknown
        try {
          input = JSON.parse(o.input ?? 'null')
        } catch (e) {
          throw new ShoalError('E_BAD_JOB', `--input is not valid JSON: ${(e as Error).message}`)
        }
        client = await connectClient(o)
        const abort = new AbortController()
        if (o.cancelOnInterrupt) process.once('SIGINT', () => abort.abort())
        // Ctrl-C stops waiting, as detaching from `kubectl logs -f` or a Ray job does: the job goes
        // on. The handler is there before the job is sent, so no Ctrl-C finds the default action.
        let jobId: string | undefined
        let progress: ProgressLine | undefined
        const detach = () => {
          progress?.finish()
          process.stderr.write(
            jobId === undefined
              ? 'stopped before the balancer answered: the job may have been admitted (shoal job list shows it)\n'
              : `stopped waiting; job ${jobId} goes on (wait again: shoal job wait ${jobId}; cancel: shoal job cancel ${jobId})\n`,
          )
          process.exit(130)
        }
        if (o.wait && !o.cancelOnInterrupt) process.once('SIGINT', detach)
        const job = await client.submit({
          processor,
          range,
          input,
          ...(o.cancelOnInterrupt ? { signal: abort.signal } : {}),
          ...(o.shares !== undefined ? { shares: parseIntArg('--shares', o.shares) } : {}),
          ...(o.tags !== undefined ? { tags: parseTags(o.tags) } : {}),
          ...(o.spread ? { spread: true } : {}),
        })
        jobId = job.id
        if (!o.wait) {
          const s = job.summary!
          job.close()
          if (json) printJson(s)
          else process.stdout.write(`${s.jobId}\n`)
          return
        }
        progress = json ? undefined : await progressLine()
        const shown = progress
        if (shown) job.on('progress', (s: JobSummary) => shown.update(s))
        const final = await job.done()
        process.off('SIGINT', detach)
        progress?.finish()
        const detailed = await client.fetchJob(job.id, true).catch(() => final)
        if (json) {
          printJson({ ...detailed, result: final.result, shares: detailed.shares ?? [] })
        } else if (final.state === 'completed') {
          process.stdout.write(`${formatResult(final.result)}\n`)
          process.stderr.write(`job ${final.jobId} completed in ${formatDuration(final.elapsedMs ?? 0)} over ${final.sharesTotal} shares\n`)
        }
        if (final.state !== 'completed') {
          await job.result().catch((e) => {
            if (!json) reportError(e, false)
            process.exitCode = 1
          })
        }
      } catch (e) {
        reportError(e, json)
      } finally {
        await client?.close()
        exitSoon()
      }
    })
}

export function formatResult(r: unknown): string {
  return typeof r === 'string' ? r : JSON.stringify(r)
}
