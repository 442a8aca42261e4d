/**
 * `shoal status`: hosts with capacity and load; the balance; jobs and their shares with state and
 * host. `--watch` redraws a compact live view until interrupted (one JSON document per refresh
 * with --json).
 */

import { setTimeout as delay } from 'node:timers/promises'
import { Command } from 'commander'
import type { ShoalClient, ClusterStatus } from '../../sdk/client.ts'
import { connectClient, connectionOptions, exitSoon, type ClientFlags } from '../client-options.ts'
import { formatDuration, parseIntArg, printJson, reportError } from '../output.ts'
import { renderWatch } from '../watch-view.ts'

interface StatusFlags extends ClientFlags {
  watch?: boolean
  interval: string
}

export function statusCommand(): Command {
  const cmd = new Command('status')
    .description('show hosts, jobs and shares')
    .option('--json', 'print one JSON document on stdout (with --watch: one per refresh, a line each)')
    .option('--watch', 'redraw a live view (hosts with load bars, imbalance, jobs, migrations) until Ctrl-C')
    .option('--interval <ms>', 'refresh period of --watch', '1000')
  return connectionOptions(cmd).action(async (o: StatusFlags) => {
      let client: ShoalClient | undefined
      try {
        client = await connectClient(o)
        if (o.watch) {
          await watch(client, parseIntArg('--interval', o.interval, 100), o.json === true)
          return
        }
        const st = await client.status()
        if (o.json) printJson(st)
        else process.stdout.write(renderStatus(st))
      } catch (e) {
        reportError(e, o.json === true)
      } finally {
        await client?.close()
        exitSoon()
      }
    })
}

/** "BALANCER leader b1 (pid 123), term 4 since 12:00:01.123; standbys b2 (pid 456)" */
export function leadershipLine(st: ClusterStatus): string | undefined {
  const l = st.leader
  if (!l) return undefined
  const standbys = st.standbys?.length ? st.standbys.map((s) => `${s.id} (pid ${s.pid})`).join(', ') : 'none'
  return `BALANCER leader ${l.id} (pid ${l.pid}), term ${l.term} since ${new Date(l.since).toISOString().slice(11, 23)}; standbys: ${standbys}`
}

/** A host's smoothed load with its noise: `1.32±0.05` (the noise only when it shows at 2 decimals). */
function loadText(load: number | undefined, noise: number | undefined): string {
  if (load === undefined) return '-'
  return noise !== undefined && noise >= 0.005 ? `${load.toFixed(2)}±${noise.toFixed(2)}` : load.toFixed(2)
}

/** The human view of `shoal status`: hosts with their load, the balance, jobs, migrations with reasons. */
export function renderStatus(st: ClusterStatus): string {
  const { hosts, jobs, rejected, migrations, balance } = st
  const lines: string[] = []
  const lead = leadershipLine(st)
  if (lead) lines.push(lead, '')
  lines.push(`HOSTS (${hosts.length})`)
  lines.push(row(['host', 'state', 'slots', 'busy', 'cores', 'cpu', 'load', 'mem free', 'processors', 'tags']))
  for (const h of [...hosts].sort((a, b) => a.hostId.localeCompare(b.hostId))) {
    lines.push(
      row([
        h.hostId,
        h.draining ? `${h.state}/drain` : h.state,
        String(h.capacity.slots),
        String(h.shares),
        String(h.capacity.cores),
        `${Math.round(h.load.cpuMachine * 100)}%`,
        loadText(balance?.loads[h.hostId], balance?.loadNoise?.[h.hostId]),
        `${(h.load.memFreeBytes / 2 ** 30).toFixed(1)} GiB`,
        h.processors.join(','),
        Object.entries(h.tags).map(([k, v]) => `${k}=${v}`).join(',') || '-',
      ]),
    )
  }
  if (balance) {
    const tol = balance.toleratedImbalance === null ? 'none: threshold 1 makes mandatory moves only' : balance.toleratedImbalance.toFixed(3)
    const verdict = balance.toleratedImbalance === null ? '' : balance.imbalance > balance.toleratedImbalance ? '  (above: balancing)' : '  (within)'
    lines.push('', `BALANCE  imbalance ${balance.imbalance.toFixed(3)}, tolerated ${tol}${verdict}; migrationThreshold ${balance.threshold}; ${balance.splitsTotal} splits so far`)
    lines.push(`  last pass ${new Date(balance.at).toISOString().slice(11, 23)}: ${balance.actions.place} placed, ${balance.actions.migrate} migrations, ${balance.actions.split} splits (decide ${balance.decideMs.toFixed(1)} ms)`)
    for (const r of balance.reasons) lines.push(`  - ${r}`)
  }
  lines.push('', `JOBS (${jobs.length})`)
  for (const j of jobs) {
    const pct = j.unitsTotal ? ((100 * j.unitsDone) / j.unitsTotal).toFixed(1) : '0'
    lines.push(`${j.jobId}  ${j.processor}  ${j.state}  ${pct}%  shares ${j.sharesDone}/${j.sharesTotal}  ${formatDuration(j.elapsedMs ?? 0)}${j.reason ? `  (${j.reason})` : ''}`)
    if (j.state === 'completed') lines.push(`  result: ${JSON.stringify(j.result)}`)
    if (j.error) lines.push(`  error: ${j.error.code}: ${j.error.message}`)
    for (const s of j.shares ?? []) {
      lines.push(`  ${s.shareId}  [${s.from}, ${s.to})  ${s.state}  ${s.host ?? '-'}  epoch ${s.epoch}  ${s.unitsDone}/${s.to - s.from}`)
    }
  }
  if (migrations.length) {
    lines.push('', 'RECENT MIGRATIONS')
    for (const m of migrations.slice(-10)) {
      lines.push(`  ${new Date(m.at).toISOString().slice(11, 23)}  ${m.shareId}  ${m.fromHost} → ${m.toHost}  ${m.reason}  ${m.ok ? `stun ${formatDuration(m.stunMs)}` : `failed: ${m.error?.message ?? ''}`}`)
    }
  }
  const rej = Object.entries(rejected)
  if (rej.length) {
    lines.push('', 'REJECTED MESSAGES')
    for (const [k, n] of rej) lines.push(`  ${n}  ${k}`)
  }
  const o = st.omitted
  if (o) {
    const parts = [
      o.hosts ? `${o.hosts} more hosts (dead and departed first)` : '',
      o.jobs ? `${o.jobs} more jobs` : '',
      o.shares ? `the share lists of unfinished jobs (${o.shares} shares; the SDK's fetchJob(id, true) has them)` : '',
      o.history ? `${o.history} older migrations and failovers` : '',
    ].filter(Boolean)
    lines.push('', `NOT SHOWN (the answer had to fit in one message): ${parts.join(', ')}`)
  }
  return lines.join('\n') + '\n'
}

/** Redraws until SIGINT/SIGTERM; a failed refresh is shown and retried, not fatal (the balancer may restart). */
async function watch(client: ShoalClient, everyMs: number, json: boolean): Promise<void> {
  const stop = new AbortController()
  const onSignal = () => stop.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const tty = process.stdout.isTTY === true
  // On a terminal: redrawn in place, every line cut to the width (log-update, cli-truncate), so a
  // narrow terminal neither wraps nor keeps fragments; on a pipe: frames in sequence.
  const [{ createLogUpdate }, { default: cliTruncate }] = await Promise.all([import('log-update'), import('cli-truncate')])
  const draw = tty && !json ? createLogUpdate(process.stdout, { showCursor: true }) : undefined
  try {
    while (!stop.signal.aborted) {
      const at = new Date()
      let frame: string
      try {
        const st = await client.status()
        frame = json ? JSON.stringify({ at: at.toISOString(), ...st }) : renderWatch(st, at.getTime())
      } catch (e) {
        const why = (e as Error).message
        frame = json ? JSON.stringify({ at: at.toISOString(), error: why }) : `shoal  ${at.toISOString().slice(11, 23)}   cannot reach the balancer: ${why}`
      }
      if (draw) {
        const columns = Math.max(10, (process.stdout.columns || 80) - 1)
        draw(frame.split('\n').map((l) => cliTruncate(l, columns)).join('\n'))
      } else process.stdout.write(json ? `${frame}\n` : `${frame}\n\n`)
      await delay(everyMs, undefined, { signal: stop.signal }).catch(() => undefined)
    }
  } finally {
    draw?.done()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

function row(cells: string[]): string {
  const widths = [18, 12, 6, 5, 6, 5, 5, 9, 26, 10]
  return cells.map((c, i) => c.padEnd(widths[i] ?? 10)).join(' ').trimEnd()
}
