/**
 * Structured logging (pino) to stderr, so stdout stays free for a command's data (`--json`).
 * Each process makes one root logger; parts take children with their component name.
 */

import { pino, type Logger } from 'pino'

export type { Logger }

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export function createLogger(name: string, level: LogLevel = 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }))
}

/** A logger that drops everything (library use, tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

/**
 * Logs a recurring trouble once, then at most once per `everyMs` per key with the number of
 * occurrences left out since, so an outage of a minute is a few lines, not thousands.
 */
export class LogLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>()

  constructor(
    private readonly log: Logger,
    private readonly everyMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(key: string, obj: Record<string, unknown>, msg: string): void {
    this.emit('warn', key, obj, msg)
  }

  error(key: string, obj: Record<string, unknown>, msg: string): void {
    this.emit('error', key, obj, msg)
  }

  private emit(level: 'warn' | 'error', key: string, obj: Record<string, unknown>, msg: string): void {
    const now = this.now()
    const seen = this.last.get(key)
    if (seen && now - seen.at < this.everyMs) {
      seen.suppressed++
      return
    }
    const suppressed = seen?.suppressed ?? 0
    this.last.set(key, { at: now, suppressed: 0 })
    this.log[level](suppressed ? { ...obj, suppressed } : obj, suppressed ? `${msg} (${suppressed} more since the last report)` : msg)
  }
}
