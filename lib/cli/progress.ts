/**
 * A one-line progress display for a job on a terminal: units done of total, percent, rate, ETA.
 * Redraws in place on a TTY; on a pipe prints a line at most every few seconds.
 */

import type { JobSummary } from '../protocol/messages.ts'

export class ProgressLine {
  private readonly started = Date.now()
  private lastPrint = 0
  private drawn = false

  constructor(private readonly out: NodeJS.WriteStream) {}

  update(s: JobSummary): void {
    const now = Date.now()
    const tty = this.out.isTTY === true
    if (!tty && now - this.lastPrint < 3000 && s.state === 'running') return
    this.lastPrint = now
    const pct = s.unitsTotal ? (100 * s.unitsDone) / s.unitsTotal : 0
    const secs = Math.max(0.001, (now - this.started) / 1000)
    const rate = s.unitsDone / secs
    const eta = rate > 0 ? (s.unitsTotal - s.unitsDone) / rate : Infinity
    const width = 30
    const filled = Math.round((pct / 100) * width)
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled)
    const line =
      `${s.jobId} ${bar} ${pct.toFixed(1).padStart(5)}%  ${fmt(s.unitsDone)}/${fmt(s.unitsTotal)} units  ` +
      `${fmt(rate)}/s  ETA ${Number.isFinite(eta) ? eta.toFixed(1) + ' s' : '?'}  shares ${s.sharesDone}/${s.sharesTotal}  ${s.state}` +
      (s.reason ? ` (${s.reason})` : '')
    this.out.write(tty ? `\r\x1b[2K${line}` : `${line}\n`)
    this.drawn = tty
  }

  finish(): void {
    if (this.drawn) this.out.write('\n')
    this.drawn = false
  }
}

function fmt(n: number): string {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + 'G'
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M'
  if (n >= 1e3) return (n / 1e3).toFixed(1) + 'k'
  return Math.round(n).toString()
}
