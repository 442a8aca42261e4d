/**
 * A one-line progress display for a job on a terminal: units done of total, percent, rate, ETA.
 * On a TTY it is redrawn in place by log-update and cut to the terminal's width by cli-truncate
 * (which measure what a terminal shows: wide and combining characters, escapes), so a narrow
 * terminal never wraps it and never keeps fragments of an older, longer line. On a pipe it prints
 * a plain line at most every few seconds.
 */

import cliTruncate from 'cli-truncate'
import { createLogUpdate } from 'log-update'
import type { JobSummary } from '../protocol/messages.ts'

type Draw = ReturnType<typeof createLogUpdate>

export class ProgressLine {
  private readonly started = Date.now()
  private lastPrint = 0
  private readonly draw: Draw | undefined

  constructor(private readonly out: NodeJS.WriteStream) {
    this.draw = out.isTTY === true ? createLogUpdate(out, { showCursor: true }) : undefined
  }

  update(s: JobSummary): void {
    const now = Date.now()
    if (!this.draw && now - this.lastPrint < 3000 && s.state === 'running') return
    this.lastPrint = now
    const columns = this.out.columns || 80
    const line = progressText(s, now - this.started, columns)
    if (this.draw) this.draw(cliTruncate(line, Math.max(10, columns - 1)))
    else this.out.write(`${line}\n`)
  }

  /** Leaves the last line in place; what is written next starts below it. */
  finish(): void {
    this.draw?.done()
  }
}

/** The progress line of `s` after `elapsedMs`; the bar narrows on narrow terminals. */
export function progressText(s: JobSummary, elapsedMs: number, columns = 120): string {
  const pct = s.unitsTotal ? (100 * s.unitsDone) / s.unitsTotal : 0
  const rate = s.unitsDone / Math.max(0.001, elapsedMs / 1000)
  const eta = rate > 0 ? (s.unitsTotal - s.unitsDone) / rate : Infinity
  const width = Math.max(10, Math.min(30, columns - 95))
  const filled = Math.round((pct / 100) * width)
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled)
  return (
    `${s.jobId} ${bar} ${pct.toFixed(1).padStart(5)}%  ${fmt(s.unitsDone)}/${fmt(s.unitsTotal)} units  ` +
    `${fmt(rate)}/s  ETA ${Number.isFinite(eta) ? eta.toFixed(1) + ' s' : '?'}  shares ${s.sharesDone}/${s.sharesTotal}  ${s.state}` +
    (s.reason ? ` (${s.reason})` : '')
  )
}

function fmt(n: number): string {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + 'G'
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M'
  if (n >= 1e3) return (n / 1e3).toFixed(1) + 'k'
  return Math.round(n).toString()
}
