/**
 * Reads a balancer's Prometheus endpoint the way Prometheus does (GET /metrics, text format) and
 * keeps the counters and gauges the scale benchmark compares before and after a window: host
 * transitions by state entered, hosts by state, failovers, migrations, splits, checkpoints,
 * rejected messages, store retries and internal errors, the lease's health (lapses, renewal
 * times, event-loop delay), the work queue's wait and the collector's pauses.
 *
 * Must never fail a run for a scrape that did not answer: it returns null and the figure says
 * "not measured".
 */

/** Sample values by `name{labels}` exactly as the exposition writes them (labels sorted by prom-client). */
export type Samples = Map<string, number>

const KEPT = /^(shoal_host_transitions_total|shoal_hosts|shoal_failovers_total|shoal_migrations_total|shoal_splits_total|shoal_checkpoints_total|shoal_checkpoint_failures_total|shoal_messages_rejected_total|shoal_store_write_retries_total|shoal_errors_total|shoal_shares|shoal_jobs|shoal_balancer_lease_lapses_total|shoal_balancer_lease_lapsed_seconds_total|shoal_balancer_lease_renewal_seconds_bucket|shoal_balancer_event_loop_delay_seconds|shoal_balancer_work_queue_wait_seconds_bucket|shoal_balancer_gc_seconds_(?:bucket|sum|count)|shoal_balancer_pass_seconds_(?:bucket|sum|count)|shoal_report_answer_seconds_bucket|shoal_decide_duration_seconds_(?:bucket|sum|count)|shoal_store_write_seconds_bucket)(\{|\s)/

export async function scrape(url: string | undefined, timeoutMs = 20_000): Promise<Samples | null> {
  if (!url) return null
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    if (!res.ok) return null
    const out: Samples = new Map()
    for (const line of (await res.text()).split('\n')) {
      if (!KEPT.test(line)) continue
      const at = line.lastIndexOf(' ')
      out.set(line.slice(0, at), Number(line.slice(at + 1)))
    }
    return out
  } catch {
    return null
  }
}

/** Sum of a family's samples whose labels include every `label="value"` in `where`. */
export function total(s: Samples | null, name: string, where: Record<string, string> = {}): number | null {
  if (!s) return null
  const want = Object.entries(where).map(([k, v]) => `${k}="${v}"`)
  let n = 0
  for (const [key, v] of s) {
    const brace = key.indexOf('{')
    if ((brace < 0 ? key : key.slice(0, brace)) !== name) continue
    if (want.every((w) => key.includes(w))) n += v
  }
  return n
}

/**
 * The `q` quantile (0..1) of a histogram's observations between two scrapes, read off its
 * cumulative buckets as Prometheus's histogram_quantile does (the upper bound of the bucket it
 * falls in); null when a scrape failed or nothing was observed.
 */
export function quantile(before: Samples | null, after: Samples | null, name: string, q: number): number | null {
  return quantileWhere(before, after, name, q, {})
}

/** `quantile` of the label sets that include every `label="value"` in `where`. */
export function quantileWhere(before: Samples | null, after: Samples | null, name: string, q: number, where: Record<string, string>): number | null {
  if (!before || !after) return null
  const want = Object.entries(where).map(([k, v]) => `${k}="${v}"`)
  // Summed by bound over every label set, as `sum by (le)` does.
  const byLe = new Map<number, number>()
  for (const [key, v] of after) {
    if (!key.startsWith(`${name}_bucket{`) || !want.every((w) => key.includes(w))) continue
    const le = /le="([^"]+)"/.exec(key)?.[1]
    if (le === undefined) continue
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le)
    byLe.set(bound, (byLe.get(bound) ?? 0) + v - (before.get(key) ?? 0))
  }
  const bounds = [...byLe].map(([le, n]) => ({ le, n })).sort((a, b) => a.le - b.le)
  const all = bounds.at(-1)?.n ?? 0
  if (!all) return null
  return bounds.find((b) => b.n >= q * all)?.le ?? null
}

/** `after − before` of `total(...)`; null when either scrape failed. */
export function delta(before: Samples | null, after: Samples | null, name: string, where: Record<string, string> = {}): number | null {
  const a = total(before, name, where)
  const b = total(after, name, where)
  return a === null || b === null ? null : b - a
}
