/**
 * Benchmark dispatcher: `npm run bench -- NAME [--smoke] [--json] [--seed N] [--dense] [--background CORES] [--hosts N]`.
 * Options are parsed by Node's own `util.parseArgs` (strict: an unknown option is bad usage).
 *
 * Runs the module `bench/NAME.ts`, prints human progress to stderr, a readable table of the figures
 * to stdout and, with `--json`, one JSON object as the last line of stdout. Exit codes: 0 the
 * benchmark ran (whether or not its targets were met: benchmarks report, they do not judge), 1 the
 * benchmark failed (a wrong job result, a process that died, a timeout), 2 bad usage (unknown
 * benchmark or option).
 *
 * Must never turn a missed target into a failure or a failure into a figure, and must never leave
 * a process running: benchmarks stop what they start, and this process exits when they return.
 */

import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { BenchError, machine, type BenchContext, type BenchModule, type Figures } from './support/bench.ts'

/** Benchmarks by name; each is a module `bench/<name>.ts`. */
const BENCHMARKS: Record<string, () => Promise<BenchModule>> = {
  chaos: async () => (await import('./chaos.ts')) as BenchModule,
  'cli-startup': async () => (await import('./cli-startup.ts')) as BenchModule,
  failover: async () => (await import('./failover.ts')) as BenchModule,
  migration: async () => (await import('./migration.ts')) as BenchModule,
  scale: async () => (await import('./scale.ts')) as BenchModule,
  simulator: async () => (await import('./simulator.ts')) as BenchModule,
  tiny: async () => (await import('./tiny.ts')) as BenchModule,
  uneven: async () => (await import('./uneven.ts')) as BenchModule,
}

const DESCRIPTIONS: Record<string, string> = {
  chaos: 'seeded host, leader and NATS-node faults (3 NATS nodes, 2 balancers, 4 hosts): exact results, exits, false host deaths, makespan vs undisturbed; takeover time; shares-stream leader loss',
  failover: 'makespan with no failure, with a host SIGKILLed mid-job (checkpointed failover), and restart-from-zero; detection and redispatch times, units redone',
  migration: 'live-migration stun time p50/p99 for 1 KiB, 64 KiB and 1 MiB checkpoints, against a raw NATS request/reply of the same size',
  scale: 'N synthetic hosts (default 2,000) against a real balancer: CPU per heartbeat with 100,000 finished shares vs none, per report and per share; report answer p50/p99; false suspect/dead; status latency; recovery after SIGKILL; shares/s and KV writes per share',
  simulator: 'the balancing policy in a deterministic model of uneven hosts: makespan / ideal against static placement, migrations per share, decide() time at 1,000 hosts × 100,000 shares',
  tiny: 'one-unit shares end to end with 2 real hosts × 2 slots (target 2,000/s) and 100 synthetic instant hosts (target 10,000/s): shares/s by jobs in flight, KV writes and balancer CPU per share, submit → result p50/p99, against the raw KV put rate of the same nats-server',
  uneven: 'real uneven hosts (taskset-pinned, a CPU hog mid-job): makespan / ideal with balancing and splits against static placement, checksum checked; hog → first migration time',
}

function usage(): string {
  const names = Object.keys(BENCHMARKS)
  const width = Math.max(...names.map((n) => n.length))
  return [
    'usage: npm run bench -- NAME [--smoke] [--json] [--seed N] [--dense] [--background CORES] [--hosts N]',
    '',
    'benchmarks:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${DESCRIPTIONS[n] ?? ''}`),
    '',
    'options:',
    '  --smoke  a short run that only shows the benchmark works (figures not meaningful)',
    '  --json   also print the figures as one JSON object, the last line of stdout',
    '  --seed N seed of a benchmark\'s random choices, to repeat a run (chaos: its fault schedule;',
    '           benchmarks without random choices ignore it)',
    '  --dense  chaos: faults about every 3-4 s instead of every 6 (bug hunting; figures in bench/RESULTS.md)',
    '  --background CORES',
    '           uneven, failover, migration: stray load the benchmark starts itself, CORES (0 < CORES <= 1)',
    '           of busy time on each CPU the hosts run on, pinned, with what it really used reported',
    '  --hosts N scale: synthetic hosts to simulate (default 2000; 50 with --smoke)',
    '  --help   this text',
    '',
    'Progress goes to stderr, figures to stdout. Exit 0: ran (targets are reported, not enforced);',
    '1: the benchmark failed (e.g. a job result that is not exact); 2: bad usage.',
  ].join('\n')
}

/** Flattens nested figures into `a.b.c` rows for the table (arrays of scalars are joined). */
function rows(figures: Figures, prefix = ''): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const [k, v] of Object.entries(figures)) {
    if (k === 'notes') continue
    const key = prefix ? `${prefix}.${k}` : k
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) out.push(...rows(v as Figures, key))
    else if (Array.isArray(v) && v.some((x) => x !== null && typeof x === 'object')) {
      v.forEach((x, i) => {
        if (x !== null && typeof x === 'object') out.push(...rows(x as Figures, `${key}[${i}]`))
        else out.push([`${key}[${i}]`, show(x)])
      })
    } else out.push([key, Array.isArray(v) ? v.map(show).join(', ') : show(v)])
  }
  return out
}

function show(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-US') : String(Math.round(v * 1000) / 1000)
  if (typeof v === 'string') return v
  return JSON.stringify(v)
}

function table(name: string, figures: Figures): string {
  const r = rows(figures)
  const width = Math.min(60, Math.max(...r.map(([k]) => k.length)))
  const lines = [`${name}`, '-'.repeat(name.length), ...r.map(([k, v]) => `${k.padEnd(width)}  ${v}`)]
  const notes = figures.notes
  if (Array.isArray(notes) && notes.length) {
    lines.push('', 'notes:')
    for (const n of notes) lines.push(`  - ${String(n)}`)
  }
  return lines.join('\n')
}

/**
 * What a benchmark is given: the common context, plus `--seed` for those that make random choices,
 * `--dense` (chaos), `--background` (uneven, failover, migration) and `--hosts` (scale).
 */
export type RunContext = BenchContext & { seed?: number; dense?: boolean; background?: number; hosts?: number }

const OPTIONS = {
  smoke: { type: 'boolean' },
  json: { type: 'boolean' },
  dense: { type: 'boolean' },
  seed: { type: 'string' },
  background: { type: 'string' },
  hosts: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

export async function main(args: string[]): Promise<number> {
  const bad = (msg: string): number => {
    process.stderr.write(`bench: ${msg}\n\n${usage()}\n`)
    return 2
  }
  const parsed = (() => {
    try {
      return parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true })
    } catch (e) {
      return e as Error
    }
  })()
  if (parsed instanceof Error) return bad(parsed.message)
  const opts = parsed.values
  const names = parsed.positionals
  if (opts.help || args.length === 0) {
    process.stdout.write(usage() + '\n')
    return 0
  }
  let seed: number | undefined
  if (opts.seed !== undefined) {
    if (!/^\d+$/.test(opts.seed) || !Number.isSafeInteger(Number(opts.seed))) return bad(`--seed must be a non-negative integer (got '${opts.seed}')`)
    seed = Number(opts.seed)
  }
  let background: number | undefined
  if (opts.background !== undefined) {
    background = Number(opts.background)
    if (!/^\d*\.?\d+$/.test(opts.background) || !(background >= 0 && background <= 1)) return bad(`--background must be a number of cores per CPU from 0 to 1 (got '${opts.background}')`)
  }
  let hosts: number | undefined
  if (opts.hosts !== undefined) {
    hosts = Number(opts.hosts)
    if (!/^\d+$/.test(opts.hosts) || hosts < 1 || hosts > 99_999) return bad(`--hosts must be a number of hosts from 1 to 99999 (got '${opts.hosts}')`)
  }
  if (names.length !== 1) {
    process.stderr.write(`bench: give exactly one benchmark name (got ${names.length ? names.join(', ') : 'none'})\n\n${usage()}\n`)
    return 2
  }
  const name = names[0]!
  const load = BENCHMARKS[name]
  if (!load) {
    process.stderr.write(`bench: unknown benchmark '${name}'; known: ${Object.keys(BENCHMARKS).join(', ')}\n`)
    return 2
  }
  if (background !== undefined && !['uneven', 'failover', 'migration'].includes(name)) return bad(`--background is for uneven, failover and migration, not ${name}`)
  if (hosts !== undefined && name !== 'scale') return bad(`--hosts is for scale, not ${name}`)
  const smoke = opts.smoke === true
  const json = opts.json === true
  const t0 = Date.now()
  const log = (line: string): void => {
    process.stderr.write(`[${name} ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`)
  }
  const startedAt = new Date(t0).toISOString()
  const host = machine()
  log(`${smoke ? 'smoke' : 'full'} run on ${String(host.cores)} cores (load average ${String(host.loadAverage1m)})`)
  let figures: Figures
  try {
    const mod = await load()
    const ctx: RunContext = { smoke, json, log, ...(opts.dense ? { dense: true } : {}), ...(seed === undefined ? {} : { seed }), ...(background === undefined ? {} : { background }), ...(hosts === undefined ? {} : { hosts }) }
    figures = await mod.run(ctx)
  } catch (e) {
    const err = e as Error
    process.stderr.write(`bench ${name}: FAILED: ${err instanceof BenchError ? err.message : (err.stack ?? String(err))}\n`)
    if (json) process.stdout.write(JSON.stringify({ benchmark: name, mode: smoke ? 'smoke' : 'full', startedAt, ok: false, error: err.message }) + '\n')
    return 1
  }
  const durationMs = Date.now() - t0
  log(`done in ${(durationMs / 1000).toFixed(1)} s`)
  process.stdout.write(table(`${name} (${smoke ? 'smoke' : 'full'} run, ${startedAt})`, figures) + '\n')
  process.stdout.write(`\nmachine: ${String(host.cores)} cores, ${String(host.cpuModel)}, node ${String(host.node)}, load average at start ${String(host.loadAverage1m)} — ${String(host.note)}\n`)
  if (json) process.stdout.write(JSON.stringify({ benchmark: name, mode: smoke ? 'smoke' : 'full', startedAt, durationMs, ok: true, machine: host, figures }) + '\n')
  return 0
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // Exiting through process.exit runs the 'exit' hooks that SIGKILL the nats-server and the
  // balancer and host processes a benchmark started; dying of the signal would orphan them.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`bench: ${sig}: stopping\n`)
      process.exit(130)
    })
  }
  const code = await main(process.argv.slice(2))
  // Benchmarks stop their processes; exiting here also ends any connection a failure left open.
  process.exit(code)
}
