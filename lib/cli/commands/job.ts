/**
 * `shoal job list | get ID | wait ID | cancel ID | result ID`: jobs after submission, kubectl-style.
 * Each has --help and --json (one JSON document on stdout, the job's fields at its top level).
 * Exit codes: 0 when the job completed (or the command did what it says), 1 when it failed or was
 * cancelled or the command failed, 2 when `result` finds the job not finished yet.
 */

import { Command } from 'commander'
import type { JobSummary, Migration, ShoalClient } from '../../sdk/client.ts'
import { clientOptions, withClient, type ClientFlags } from '../client-options.ts'
import { formatDuration, printJson, progressLine, reportError } from '../output.ts'
import type { ProgressLine } from '../progress.ts'
import { formatResult } from './submit.ts'

export function jobCommand(): Command {
  return new Command('job')
    .description('list, inspect, wait for, cancel and fetch the result of jobs')
    .addCommand(
      clientOptions(new Command('list'))
        .description('recent jobs (a submitter sees its own): id, processor, state, progress, shares, age')
        .action((o: ClientFlags) =>
          withClient(o, async (c) => {
            const jobs = (await c.status()).jobs
            if (o.json) return printJson({ jobs })
            if (!jobs.length) return void process.stdout.write('no jobs\n')
            process.stdout.write(`${['job', 'processor', 'state', 'done', 'shares', 'elapsed'].map((h, i) => h.padEnd(WIDTHS[i]!)).join(' ')}\n`)
            for (const j of jobs) process.stdout.write(`${listRow(j)}\n`)
          }),
        ),
    )
    .addCommand(
      clientOptions(new Command('get'))
        .description('one job: state, progress, result or error, its shares with hosts and epochs, and its migrations')
        .argument('<id>', 'job id')
        .action((id: string, o: ClientFlags) =>
          withClient(o, async (c) => {
            const job = await c.fetchJob(id, true)
            const migrations = await migrationsOf(c, id)
            if (o.json) return printJson({ ...job, shares: job.shares ?? [], migrations })
            process.stdout.write(describe(job, migrations))
          }),
        ),
    )
    .addCommand(
      clientOptions(new Command('wait'))
        .description('follow a job to its end with a progress bar; exit 0 if it completed, 1 if not (Ctrl-C stops waiting, not the job)')
        .argument('<id>', 'job id')
        .action((id: string, o: ClientFlags) =>
          withClient(o, async (c) => {
            // Installed first: a Ctrl-C at any moment stops waiting, never the job.
            let progress: ProgressLine | undefined
            const stop = () => {
              progress?.finish()
              process.stderr.write(`stopped waiting; job ${id} goes on (wait again: shoal job wait ${id}; cancel: shoal job cancel ${id})\n`)
              process.exit(130)
            }
            process.once('SIGINT', stop)
            const job = await c.job(id)
            progress = o.json ? undefined : await progressLine()
            const shown = progress
            if (shown) {
              if (job.summary) shown.update(job.summary)
              job.on('progress', (s: JobSummary) => shown.update(s))
            }
            const final = await job.done()
            process.off('SIGINT', stop)
            progress?.finish()
            job.close()
            const detailed = await c.fetchJob(id, true).catch(() => final)
            if (o.json) printJson({ ...detailed, shares: detailed.shares ?? [] })
            else if (final.state === 'completed') process.stdout.write(`${formatResult(final.result)}\n`)
            if (final.state !== 'completed') {
              await job.result().catch((e: unknown) => {
                if (!o.json) reportError(e, false)
              })
              process.exitCode = 1
            }
          }),
        ),
    )
    .addCommand(
      clientOptions(new Command('cancel'))
        .description('cancel a job: its running shares are dropped on their hosts')
        .argument('<id>', 'job id')
        .action((id: string, o: ClientFlags) =>
          withClient(o, async (c) => {
            const job = await c.cancel(id)
            if (o.json) return printJson(job)
            process.stdout.write(`job ${id} ${job.state === 'cancelled' ? 'cancelled' : `had already ended: ${job.state}`}\n`)
          }),
        ),
    )
    .addCommand(
      clientOptions(new Command('result'))
        .description('print the result of a completed job; exit 1 if it failed or was cancelled, 2 if it has not finished')
        .argument('<id>', 'job id')
        .action((id: string, o: ClientFlags) =>
          withClient(o, async (c) => {
            const job = await c.fetchJob(id, false)
            if (o.json) printJson(job)
            else if (job.state === 'completed') process.stdout.write(`${formatResult(job.result)}\n`)
            else if (job.state === 'failed' || job.state === 'cancelled') process.stderr.write(`job ${id} ${job.state}${job.error ? `: ${job.error.code}: ${job.error.message}` : ''}\n`)
            else process.stderr.write(`job ${id} has not finished: ${job.state}, ${pct(job)} done (wait for it: shoal job wait ${id})\n`)
            process.exitCode = job.state === 'completed' ? 0 : job.state === 'failed' || job.state === 'cancelled' ? 1 : 2
          }),
        ),
    )
}

const WIDTHS = [24, 16, 10, 7, 9, 9]

function pct(j: JobSummary): string {
  return `${j.unitsTotal > 0 ? ((100 * j.unitsDone) / j.unitsTotal).toFixed(1) : '0.0'}%`
}

function listRow(j: JobSummary): string {
  const cells = [j.jobId, j.processor, j.state, pct(j), `${j.sharesDone}/${j.sharesTotal}`, j.elapsedMs !== undefined ? formatDuration(j.elapsedMs) : '-']
  return cells.map((c, i) => c.padEnd(WIDTHS[i]!)).join(' ').trimEnd()
}

/** The job's migrations from `status` (best effort: absent when status cannot be read). */
async function migrationsOf(c: ShoalClient, id: string): Promise<Migration[]> {
  const st = await c.status().catch(() => undefined)
  return st?.migrations.filter((m) => m.jobId === id) ?? []
}

function describe(j: JobSummary, migrations: Migration[]): string {
  const lines = [
    `job ${j.jobId}  ${j.processor}  ${j.state}${j.reason ? ` (${j.reason})` : ''}`,
    `  range [${j.from}, ${j.to}): ${j.unitsDone}/${j.unitsTotal} units (${pct(j)}), shares ${j.sharesDone}/${j.sharesTotal}${j.elapsedMs !== undefined ? `, ${formatDuration(j.elapsedMs)}` : ''}`,
  ]
  if (j.state === 'completed') lines.push(`  result: ${formatResult(j.result)}`)
  if (j.error) lines.push(`  error: ${j.error.code}: ${j.error.message}`)
  if (j.shares?.length) {
    lines.push('  shares:')
    for (const s of j.shares) lines.push(`    ${s.shareId}  ${s.state.padEnd(9)} [${s.from}, ${s.to}) at ${s.position}  epoch ${s.epoch}  host ${s.host ?? '-'}  ran on ${s.hosts.join(' → ') || '-'}`)
  }
  if (migrations.length) {
    lines.push('  migrations:')
    for (const m of migrations) lines.push(`    ${new Date(m.at).toISOString().slice(11, 23)}  ${m.shareId}  ${m.fromHost} → ${m.toHost}  ${m.reason}  ${m.ok ? `stun ${formatDuration(m.stunMs)}` : `failed: ${m.error?.message ?? ''}`}`)
  }
  return lines.join('\n') + '\n'
}
