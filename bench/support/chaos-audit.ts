/**
 * Which "host dead" verdicts of the balancers were false, for the chaos benchmark: a balancer logs
 * `{"host":"x","to":"dead","msg":"host dead"}` (pino JSON, with its own `time`) when it declares a
 * host dead; the verdict is justified only if the benchmark had SIGKILLed that host by then, or had
 * it SIGSTOPped at that moment or within pool.hostDeadMs before it (the silence needs that long to
 * show). Every other verdict is a host falsely declared dead.
 *
 * Pure: lines and fault windows in, verdicts out. Must never drop a verdict it cannot explain, and
 * never excuse one by anything but a fault the benchmark itself caused.
 */

/** One "host dead" line of a balancer log. */
export interface DeadVerdict {
  /** The balancer process that said it (its id). */
  balancer: string
  host: string
  /** The state the host was in before: alive or suspect. */
  from: string
  /** The balancer's own clock when it logged it (ms since epoch). */
  at: number
}

/** A time the benchmark had a host down: killed (no end) or stopped (until it was continued). */
export interface HostFaultWindow {
  host: string
  kind: 'kill' | 'stop'
  from: number
  /** SIGCONT time of a stop; undefined for a kill (a killed host never comes back) or a stop still held. */
  to?: number
}

/** Reads a balancer log line; returns the verdict if it is a "host dead" line, else undefined. */
export function parseDeadVerdict(balancer: string, line: string): DeadVerdict | undefined {
  // Cheap filter first: most lines are not about a host dying, and JSON.parse of each costs.
  if (!line.includes('"dead"')) return undefined
  let o: { host?: unknown; from?: unknown; to?: unknown; msg?: unknown; time?: unknown }
  try {
    o = JSON.parse(line) as typeof o
  } catch {
    return undefined
  }
  if (o.to !== 'dead' || typeof o.host !== 'string' || typeof o.time !== 'number') return undefined
  return { balancer, host: o.host, from: typeof o.from === 'string' ? o.from : '?', at: o.time }
}

/** True when a fault the benchmark caused explains the verdict (see the header). */
export function justified(v: DeadVerdict, windows: readonly HostFaultWindow[], hostDeadMs: number): boolean {
  return windows.some((w) => {
    if (w.host !== v.host || v.at < w.from) return false
    if (w.kind === 'kill') return true
    return w.to === undefined || v.at <= w.to + hostDeadMs
  })
}

/** The verdicts no fault explains. */
export function falseVerdicts(verdicts: readonly DeadVerdict[], windows: readonly HostFaultWindow[], hostDeadMs: number): DeadVerdict[] {
  return verdicts.filter((v) => !justified(v, windows, hostDeadMs))
}
