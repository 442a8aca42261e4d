/**
 * How CLI commands print: data to stdout (one JSON document with --json), diagnostics to stderr,
 * errors with their code and a non-zero exit status.
 */

import { ShoalError, toWire } from '../errors.ts'

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

/** Prints an error (as JSON on stdout when `json`) and sets the exit code: 2 for config errors, else 1. */
export function reportError(err: unknown, json: boolean): void {
  const w = toWire(err)
  if (json) printJson({ error: { code: w.code, message: w.message, ...(w.cause ? { cause: { code: w.cause.code, message: w.cause.message } } : {}) } })
  // A cause whose message the error already quotes is not printed a second time.
  const cause = w.cause && !w.message.includes(w.cause.message) ? `\n  caused by ${w.cause.code}: ${w.cause.message}` : ''
  process.stderr.write(`shoal: ${w.message}${cause}\n  (${w.code})\n`)
  process.exitCode = err instanceof ShoalError && err.code === 'E_CONFIG' ? 2 : 1
}

/** Parses `FROM:TO` (underscores allowed as digit separators, and 1e7 notation). */
export function parseRange(s: string): [number, number] {
  const m = /^\s*([0-9_.eE+]+)\s*:\s*([0-9_.eE+]+)\s*$/.exec(s)
  const n = (x: string) => Number(x.replace(/_/g, ''))
  if (!m) throw new ShoalError('E_BAD_RANGE', `--range must be FROM:TO, e.g. 0:10000000 (got ${JSON.stringify(s)})`)
  const from = n(m[1]!)
  const to = n(m[2]!)
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to)) {
    throw new ShoalError('E_BAD_RANGE', `--range bounds must be integers (got ${JSON.stringify(s)})`)
  }
  return [from, to]
}

/** Parses `k=v,k2=v2`. */
export function parseTags(s: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const i = part.indexOf('=')
    if (i <= 0) throw new ShoalError('E_CONFIG', `--tags must be k=v,k2=v2 (got ${JSON.stringify(s)})`, { details: { key: 'host.tags' } })
    out[part.slice(0, i)] = part.slice(i + 1)
  }
  return out
}

export function parseIntArg(name: string, s: string, min = 1): number {
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < min) throw new ShoalError('E_CONFIG', `${name} must be an integer >= ${min} (got ${JSON.stringify(s)})`)
  return n
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`
}

/**
 * A progress line on stderr. Its terminal libraries are loaded here, when a command shows
 * progress, not when the CLI starts (`--help` stays fast).
 */
export async function progressLine(): Promise<import('./progress.ts').ProgressLine> {
  const { ProgressLine } = await import('./progress.ts')
  return new ProgressLine(process.stderr)
}
