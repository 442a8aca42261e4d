/**
 * The chaos benchmark's fault schedule (`bench/chaos.ts`): a pure function of a seed and a few
 * options that says which fault starts when, on what, and for how long, so that a run can be
 * repeated with `--seed N`.
 *
 * Faults run in three lanes, one fault at a time per lane, and lanes run side by side:
 *   host      `host-kill` (SIGKILL, then a new host process with a new id takes its place) and
 *             `host-stop` (SIGSTOP past pool.hostDeadMs, then SIGCONT). One host fault at a time
 *             keeps all hosts but one alive.
 *   balancer  `leader-kill` (SIGKILL of the leading balancer, restarted later as a standby) and
 *             `leader-stop` (SIGSTOP past its lease, then SIGCONT). One at a time, each ending with
 *             the victim back as a standby, so a standby exists before every balancer fault.
 *   nats      `nats-kill` / `nats-term` (SIGKILL / SIGTERM of one NATS node, restarted later). One
 *             node down at a time keeps a majority of a 3-node cluster.
 * Within a lane the next fault is scheduled after the previous one's hold, an allowance for its
 * recovery and a seeded gap; the runner still waits for the recovery itself before starting it.
 *
 * Must never read a clock, a random source other than the seed, or the cluster: what actually
 * happens (who leads, which NATS node leads a stream) is resolved when the fault runs.
 */

import { ShoalError } from '../../lib/errors.ts'
import { pick, seededRng } from '../sim/rng.ts'

export const FAULT_KINDS = ['host-kill', 'host-stop', 'leader-kill', 'leader-stop', 'nats-kill', 'nats-term'] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

export type Lane = 'host' | 'balancer' | 'nats'

/** The lane each kind runs in. */
export const LANE_OF: Record<FaultKind, Lane> = {
  'host-kill': 'host',
  'host-stop': 'host',
  'leader-kill': 'balancer',
  'leader-stop': 'balancer',
  'nats-kill': 'nats',
  'nats-term': 'nats',
}

interface FaultBase {
  /** When the fault starts, from the start of the chaos phase. */
  atMs: number
  lane: Lane
  /** How long the fault is held before recovery starts (kill → replace/restart, stop → cont). */
  holdMs: number
}

export type Fault = FaultBase &
  (
    | { kind: 'host-kill'; host: string; replacement: string }
    | { kind: 'host-stop'; host: string }
    | { kind: 'leader-kill' }
    | { kind: 'leader-stop' }
    /** `node`: an index into the NATS nodes, or whichever node leads the shares stream then. */
    | { kind: 'nats-kill' | 'nats-term'; node: number | 'shares-leader' }
  )

export interface ScheduleOptions {
  /** Faults start within [0, windowMs); mandatory ones (see `min`) may start later. */
  windowMs: number
  /** Ids of the hosts at the start, e.g. h1..h4. */
  hosts: readonly string[]
  /** Replacement hosts are named `${hostPrefix}${n}` from this n on (default: hosts.length + 1). */
  firstReplacement?: number
  hostPrefix?: string
  /** NATS nodes that may be faulted; 0 (a single server) schedules no NATS fault. */
  natsNodes: number
  hostDeadMs: number
  leaseMs: number
  /** Minimum number of faults of a kind (scheduled first, in a seeded order). */
  min?: Partial<Record<FaultKind, number>>
  /** Quiet time between two faults of one lane, [min, max] ms; also the first fault's offset. */
  gapMs: readonly [number, number]
}

/**
 * Time a lane leaves after a fault's hold for its recovery before the next fault (what starting a
 * process, a takeover or a NATS node's catch-up usually takes here); the runner waits for the
 * recovery itself, this only spaces the schedule.
 */
export const SETTLE_MS: Record<FaultKind, number> = {
  'host-kill': 3000,
  'host-stop': 1000,
  'leader-kill': 3000,
  'leader-stop': 1500,
  'nats-kill': 3000,
  'nats-term': 3000,
}

/** Hold ranges: stops last past the limit they must cross, with margin for a heartbeat and a tick. */
export function holdRange(kind: FaultKind, o: Pick<ScheduleOptions, 'hostDeadMs' | 'leaseMs'>): [number, number] {
  switch (kind) {
    case 'host-kill':
      return [500, 2000] // kill → replacement started
    case 'host-stop':
      return [o.hostDeadMs + 500, o.hostDeadMs + 2000]
    case 'leader-kill':
      return [2000, 4000] // kill → the victim restarted as a standby (after the takeover, whatever comes later)
    case 'leader-stop':
      return [o.leaseMs + 1000, o.leaseMs + 2500]
    case 'nats-kill':
    case 'nats-term':
      return [1000, 4000] // node down before its restart
  }
}

const LANE_KINDS: Record<Lane, FaultKind[]> = {
  host: ['host-kill', 'host-stop'],
  balancer: ['leader-kill', 'leader-stop'],
  nats: ['nats-kill', 'nats-term'],
}

function validate(o: ScheduleOptions): void {
  const bad = (key: string, expectation: string, value: unknown): never => {
    throw new ShoalError('E_CONFIG', `${key} must be ${expectation} (got ${JSON.stringify(value)})`, { details: { key, value } })
  }
  if (!(Number.isFinite(o.windowMs) && o.windowMs > 0)) bad('windowMs', 'a positive number of milliseconds', o.windowMs)
  if (o.hosts.length < 2) bad('hosts', 'at least 2 host ids (a host fault must leave one running)', o.hosts)
  if (new Set(o.hosts).size !== o.hosts.length) bad('hosts', 'distinct ids', o.hosts)
  if (!(Number.isInteger(o.natsNodes) && o.natsNodes >= 0)) bad('natsNodes', 'a non-negative integer', o.natsNodes)
  if (o.natsNodes > 0 && o.natsNodes < 3) bad('natsNodes', '0 (no NATS faults) or at least 3 (a majority survives one node)', o.natsNodes)
  for (const k of ['hostDeadMs', 'leaseMs'] as const) if (!(Number.isFinite(o[k]) && o[k] > 0)) bad(k, 'a positive number of milliseconds', o[k])
  const [gMin, gMax] = o.gapMs
  if (!(gMin >= 0 && gMax >= gMin)) bad('gapMs', '[min, max] with 0 <= min <= max', o.gapMs)
  for (const [k, n] of Object.entries(o.min ?? {})) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) bad(`min.${k}`, `one of ${FAULT_KINDS.join(', ')}`, k)
    if (!(Number.isInteger(n) && n >= 0)) bad(`min.${k}`, 'a non-negative integer', n)
    if (n > 0 && LANE_OF[k as FaultKind] === 'nats' && o.natsNodes === 0) bad(`min.${k}`, '0 when there are no NATS nodes to fault', n)
  }
}

/**
 * The faults for `seed`, sorted by start time. The same seed and options always give the same list.
 * Throws E_CONFIG for options that cannot give a safe schedule.
 */
export function chaosSchedule(seed: number, o: ScheduleOptions): Fault[] {
  validate(o)
  const rng = seededRng(seed)
  const between = (lo: number, hi: number): number => Math.round(lo + rng() * (hi - lo))
  const prefix = o.hostPrefix ?? 'h'
  let nextHost = o.firstReplacement ?? o.hosts.length + 1
  // Hosts alive as far as the schedule goes: a killed host never comes back, its replacement does.
  const live = [...o.hosts]
  const out: Fault[] = []
  const lanes: Lane[] = o.natsNodes > 0 ? ['host', 'balancer', 'nats'] : ['host', 'balancer']
  for (const lane of lanes) {
    const mandatory: FaultKind[] = []
    for (const k of LANE_KINDS[lane]) for (let i = 0; i < (o.min?.[k] ?? 0); i++) mandatory.push(k)
    // Seeded Fisher-Yates, so mandatory faults do not always come in the same order.
    for (let i = mandatory.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1))
      ;[mandatory[i], mandatory[j]] = [mandatory[j]!, mandatory[i]!]
    }
    let t = between(o.gapMs[0], o.gapMs[1])
    for (;;) {
      const kind = mandatory.shift() ?? (t < o.windowMs ? pick(rng, LANE_KINDS[lane]) : undefined)
      if (kind === undefined) break
      const [lo, hi] = holdRange(kind, o)
      const holdMs = between(lo, hi)
      const base = { atMs: t, lane, holdMs }
      switch (kind) {
        case 'host-kill': {
          const host = pick(rng, live)
          const replacement = `${prefix}${nextHost++}`
          live.splice(live.indexOf(host), 1, replacement)
          out.push({ ...base, kind, host, replacement })
          break
        }
        case 'host-stop':
          out.push({ ...base, kind, host: pick(rng, live) })
          break
        case 'leader-kill':
        case 'leader-stop':
          out.push({ ...base, kind })
          break
        case 'nats-kill':
        case 'nats-term': {
          // Half the time the node that leads the shares stream (the costly case: an election).
          const node = rng() < 0.5 ? 'shares-leader' : Math.floor(rng() * o.natsNodes)
          out.push({ ...base, kind, node })
          break
        }
      }
      t += holdMs + SETTLE_MS[kind] + between(o.gapMs[0], o.gapMs[1])
    }
  }
  // Stable sort: lanes were generated in a fixed order, so ties keep a deterministic order too.
  return out.sort((a, b) => a.atMs - b.atMs)
}

/** Faults counted by kind (every kind present, 0 when none). */
export function countByKind(faults: ReadonlyArray<{ kind: FaultKind }>): Record<FaultKind, number> {
  const counts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>
  for (const f of faults) counts[f.kind]++
  return counts
}

/** One line describing a fault, for logs and the timeline figure. */
export function describeFault(f: Fault): string {
  const hold = `${(f.holdMs / 1000).toFixed(1)} s`
  switch (f.kind) {
    case 'host-kill':
      return `host-kill ${f.host} (replaced by ${f.replacement} after ${hold})`
    case 'host-stop':
      return `host-stop ${f.host} for ${hold}`
    case 'leader-kill':
      return `leader-kill (restarted as a standby after ${hold})`
    case 'leader-stop':
      return `leader-stop for ${hold}`
    case 'nats-kill':
    case 'nats-term':
      return `${f.kind} ${typeof f.node === 'number' ? `node ${f.node + 1}` : 'the shares-stream leader'} (down ${hold})`
  }
}
