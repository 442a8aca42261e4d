/**
 * The compact live view of `shoal status --watch`: hosts with load bars and slots, imbalance
 * against the tolerated imbalance, running jobs with progress, and recent migrations with their
 * reasons and stun times. A pure function of one status snapshot, so it is tested on plain data.
 *
 * Must never do I/O: the command fetches and draws.
 */

import type { ClusterStatus } from '../sdk/client.ts'

/** Load bar width in characters; a full bar is normalised load 1 (a full host). */
const BAR = 16

function bar(fraction: number, width: number): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0))
  const filled = Math.round(f * width)
  return '█'.repeat(filled) + '░'.repeat(width - filled)
}

function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`
  return String(Math.round(n))
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23)
}

/** Renders one frame (lines joined with \n, no trailing clear codes). */
export function renderWatch(st: ClusterStatus, now: number, title = 'shoal'): string {
  const out: string[] = []
  const b = st.balance
  const head = [`${title}  ${clock(now)}`]
  if (b) {
    const tol = b.toleratedImbalance
    const verdict = tol === null ? 'threshold 1: mandatory moves only' : b.imbalance > tol ? 'ABOVE tolerated: balancing' : 'within tolerated'
    head.push(`imbalance ${b.imbalance.toFixed(3)} / tolerated ${tol === null ? '-' : tol.toFixed(3)} (${verdict})`, `threshold ${b.threshold}`, `splits ${b.splitsTotal}`)
  } else head.push('no balancing pass yet')
  out.push(head.join('   '))
  if (st.leader) out.push(`leader ${st.leader.id} term ${st.leader.term}   standbys ${st.standbys?.map((s) => s.id).join(', ') || 'none'}`)

  const hosts = [...st.hosts].filter((h) => h.state !== 'left').sort((x, y) => x.hostId.localeCompare(y.hostId))
  const idW = Math.max(4, ...hosts.map((h) => h.hostId.length))
  // Column heads over the columns the rows below draw: id, state, load bar + value, slots, cpu.
  out.push('', `${`HOSTS (${hosts.length})`.padEnd(2 + idW + 1 + 7 + 1)}${'load'.padEnd(BAR + 7)}${'slots'.padStart(5)}  cpu`)
  for (const h of hosts) {
    const load = b?.loads[h.hostId]
    const state = h.draining ? 'drain' : h.state
    const loadText = load === undefined ? '  -  ' : `${load.toFixed(2)}${load > 1 ? '>' : ' '}`
    out.push(`  ${h.hostId.padEnd(idW)} ${state.padEnd(7)} ${bar(load ?? 0, BAR)} ${loadText}  ${`${h.shares}/${h.capacity.slots}`.padStart(5)}  ${String(Math.round(h.load.cpuMachine * 100)).padStart(3)}%`)
  }

  const jobs = st.jobs.filter((j) => j.state === 'running' || j.state === 'waiting')
  out.push('', `JOBS (${jobs.length} running or waiting)`)
  for (const j of jobs) {
    const pct = j.unitsTotal ? j.unitsDone / j.unitsTotal : 0
    out.push(`  ${j.jobId} ${j.processor.padEnd(12)} ${bar(pct, 20)} ${(100 * pct).toFixed(1).padStart(5)}%  ${human(j.unitsDone)}/${human(j.unitsTotal)} units  shares ${j.sharesDone}/${j.sharesTotal}  ${j.state}${j.reason ? ` (${j.reason})` : ''}`)
  }
  const done = st.jobs.filter((j) => j.state !== 'running' && j.state !== 'waiting').slice(0, 3)
  for (const j of done) out.push(`  ${j.jobId} ${j.processor.padEnd(12)} ${j.state}${j.error ? `: ${j.error.code}` : ''}`)

  const moves = st.migrations.slice(-8).reverse()
  out.push('', `RECENT MIGRATIONS (${st.migrations.length})`)
  for (const m of moves) {
    out.push(`  ${clock(m.at)}  ${m.shareId}  ${m.fromHost} → ${m.toHost}  ${m.reason.padEnd(10)} ${m.ok ? `stun ${m.stunMs.toFixed(1)} ms` : `failed: ${m.error?.code ?? ''}`}`)
  }
  if (b?.reasons.length) {
    out.push('', 'LAST PASS')
    for (const r of b.reasons.slice(0, 4)) out.push(`  - ${r}`)
  }
  return out.join('\n')
}
