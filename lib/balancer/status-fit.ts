/**
 * Keeps a `status` reply under the message limit whatever the pool looks like: thousands of hosts
 * (real, or forged heartbeats on an open cluster), jobs with thousands of shares. It drops detail
 * in the order a reader misses least — share lists, then old history, then hosts and jobs past
 * what fits, the larger list first — and says what it left out, so the CLI can print "N more
 * hosts not shown".
 *
 * Pure: the caller passes the encoder's size function. Must never do I/O.
 */

/** What was left out of a status reply to fit it (all zero: nothing). */
export interface Omitted {
  hosts: number
  jobs: number
  /** Share lists dropped from unfinished jobs (the jobs stay, with their counts). */
  shares: number
  /** Migrations and failovers beyond the newest HISTORY_KEPT of each. */
  history: number
}

interface StatusLike {
  hosts: unknown[]
  jobs: Array<{ shares?: unknown[] | undefined }>
  migrations: unknown[]
  failovers: unknown[]
  omitted?: Omitted | undefined
}

/** History kept once a reply has to shrink. */
export const HISTORY_KEPT = 10

/**
 * `reply` itself when `size(reply) <= limit`, else a smaller copy with `omitted` set. Hosts and
 * jobs keep their order (callers put the most useful first) and are cut by halves, so the number
 * of encodings stays logarithmic.
 */
export function fitStatus<T extends StatusLike>(reply: T, size: (r: T) => number, limit: number): T & { omitted?: Omitted } {
  if (size(reply) <= limit) return reply
  const omitted: Omitted = { hosts: 0, jobs: 0, shares: 0, history: 0 }
  let r: T = { ...reply, omitted }
  omitted.shares = r.jobs.reduce((n, j) => n + (j.shares?.length ?? 0), 0)
  r = { ...r, jobs: r.jobs.map(({ shares: _dropped, ...j }) => j) }
  if (size(r) <= limit) return r
  omitted.history = Math.max(0, r.migrations.length - HISTORY_KEPT) + Math.max(0, r.failovers.length - HISTORY_KEPT)
  r = { ...r, migrations: r.migrations.slice(-HISTORY_KEPT), failovers: r.failovers.slice(-HISTORY_KEPT) }
  const all = { hosts: r.hosts, jobs: r.jobs }
  const keep = { hosts: all.hosts.length, jobs: all.jobs.length }
  while (size(r) > limit && keep.hosts + keep.jobs > 0) {
    // Halve whichever list weighs more now: a few jobs with large results must not cost every host.
    const key = keep.jobs === 0 || (keep.hosts > 0 && size({ ...r, jobs: [] } as T) >= size({ ...r, hosts: [] } as T)) ? 'hosts' : 'jobs'
    keep[key] = Math.floor(keep[key] / 2)
    omitted[key] = all[key].length - keep[key]
    r = { ...r, [key]: all[key].slice(0, keep[key]) }
  }
  return r
}
