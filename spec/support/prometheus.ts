/**
 * A real Prometheus for tests and for the pictures of docs/DASHBOARDS.md: `startPrometheus` writes
 * a config that scrapes the given targets, runs the `prometheus` binary on a free loopback port
 * with a temporary storage folder, waits until it is ready, and answers queries through its HTTP
 * API.
 *
 * Must never touch a Prometheus it did not start (Debian's service may listen on 9090), never
 * write outside its temporary folder, and never let its child outlive the test process: a running
 * child is SIGKILLed on the parent's `exit`, and its temporary folder removed.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { freePort } from '../../lib/free-port.ts'
import { tmpdir } from 'node:os'
import { delimiter, isAbsolute, join } from 'node:path'

/** What to run where Prometheus is missing (Debian's package also brings promtool). */
export const PROMETHEUS_INSTALL = 'apt-get install prometheus'

const FALLBACK_PATHS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus']
const STOP_GRACE_MS = 5_000
const OUTPUT_TAIL_CHARS = 4_000

/** The prometheus binary: the first in PATH, else Debian's /usr/bin/prometheus; undefined if none. */
export function findPrometheus(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '' && isAbsolute(d))
  for (const p of [...dirs.map((d) => join(d, 'prometheus')), ...FALLBACK_PATHS]) {
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {
      // not here
    }
  }
  return undefined
}

export interface PrometheusOptions {
  /** Scrape jobs: job name → `host:port` targets. */
  jobs: Record<string, string[]>
  /** scrape_interval and evaluation_interval, in seconds; default 1. */
  scrapeIntervalS?: number
  /** How long to wait for /-/ready; default 15000. */
  startTimeoutMs?: number
}

/** One series of an instant (`value`) or range (`values`) query result. */
export interface PromSeries { metric: Record<string, string>, value?: [number, string], values?: Array<[number, string]> }
export interface PromResult { resultType: 'vector' | 'matrix' | 'scalar' | 'string', result: PromSeries[] | [number, string] }

export interface RunningPrometheus {
  url: string
  port: number
  pid: number
  /** `/api/v1/query` at `timeS` (Unix seconds; default now). Throws with Prometheus's error. */
  query(expr: string, timeS?: number): Promise<PromResult>
  /** `/api/v1/query_range`; `step` as Prometheus takes it ("15s" or seconds). */
  queryRange(expr: string, startS: number, endS: number, step: string): Promise<PromResult>
  /** `/api/v1/label/<label>/values` of the series matching `match` within [startS, endS]. */
  labelValues(label: string, match: string, startS: number, endS: number): Promise<string[]>
  /** Active scrape targets with their health and last scrape time (ms since the epoch). */
  targets(): Promise<Array<{ job: string, instance: string, health: string, lastScrapeMs: number, lastError: string }>>
  /** The tail of Prometheus's own log, for failure messages. */
  output(): string
  /** SIGTERM, SIGKILL after 5 s; removes the temporary folder. Idempotent. */
  stop(): Promise<void>
}

/** Running children and their temporary folders, for the parent's `exit`. */
const running = new Map<ChildProcess, string>()
let guardInstalled = false
function guard(child: ChildProcess, dir: string): void {
  running.set(child, dir)
  child.once('exit', () => running.delete(child))
  if (guardInstalled) return
  guardInstalled = true
  process.on('exit', () => {
    for (const [c, d] of running) {
      c.kill('SIGKILL')
      // A process that exits (Ctrl-C on a script, a crashed run) must not leave the TSDB behind.
      try {
        rmSync(d, { recursive: true, force: true })
      } catch {
        // Prometheus may still be writing as it dies; what remains is in the system's tmp folder.
      }
    }
  })
}

function config(jobs: Record<string, string[]>, intervalS: number): string {
  // JSON is YAML: no YAML writer needed, and every string is quoted.
  return JSON.stringify({
    global: { scrape_interval: `${intervalS}s`, scrape_timeout: `${intervalS}s`, evaluation_interval: `${intervalS}s` },
    scrape_configs: Object.entries(jobs).map(([job, targets]) => ({ job_name: job, static_configs: [{ targets }] })),
  }, null, 2)
}

/**
 * Starts Prometheus scraping `opts.jobs` and resolves once `/-/ready` answers. Rejects with the
 * tail of its log when it exits early or is not ready in time; a port taken between choosing and
 * binding it is retried on another. Nothing is left running or on disk after a failed start.
 *
 * Prometheus 2.42 applies new targets on a 5 s tick, so the first scrape comes about 5 s after the
 * start: wait on `targets()` or a query, not on the start alone.
 */
export async function startPrometheus(opts: PrometheusOptions): Promise<RunningPrometheus> {
  const bin = findPrometheus()
  if (bin === undefined) throw new Error(`prometheus not found in PATH or at ${FALLBACK_PATHS.join(', ')}: ${PROMETHEUS_INSTALL}`)
  const dir = mkdtempSync(join(tmpdir(), 'shoal-prometheus-'))
  const configFile = join(dir, 'prometheus.yml')
  writeFileSync(configFile, config(opts.jobs, opts.scrapeIntervalS ?? 1))
  let lastError: Error | undefined
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort()
      const args = [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`]
      try {
        return await run(bin, args, port, dir, opts.startTimeoutMs ?? 15_000)
      } catch (e) {
        lastError = e as Error
        if (!/address already in use/.test(lastError.message)) break
        rmSync(join(dir, 'data'), { recursive: true, force: true })
      }
    }
  } catch (e) {
    lastError = e as Error
  }
  rmSync(dir, { recursive: true, force: true })
  throw lastError
}

async function run(bin: string, args: string[], port: number, dir: string, startTimeoutMs: number): Promise<RunningPrometheus> {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  guard(child, dir)
  let output = ''
  const keep = (d: Buffer): void => {
    output = (output + d.toString('utf8')).slice(-OUTPUT_TAIL_CHARS)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  let spawnError: Error | undefined
  child.on('error', (e) => {
    spawnError = e
  })
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()))
  const url = `http://127.0.0.1:${port}`
  const alive = (): boolean => child.exitCode === null && child.signalCode === null && spawnError === undefined

  const deadline = Date.now() + startTimeoutMs
  for (;;) {
    if (!alive()) {
      await closed
      throw new Error(`prometheus (${bin}) ${spawnError ? `could not run: ${spawnError.message}` : `exited with code ${child.exitCode}`} before it was ready:\n${output}`)
    }
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)
    if (ready) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      await closed
      throw new Error(`prometheus was not ready on ${url} within ${startTimeoutMs} ms:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }

  // Queries go as POST forms (long expressions); the label values endpoint takes GET only.
  const api = async <T>(path: string, params: Record<string, string>, method: 'GET' | 'POST' = 'POST'): Promise<T> => {
    const form = new URLSearchParams(params)
    const res = method === 'POST' ? await fetch(`${url}/api/v1/${path}`, { method, body: form }) : await fetch(`${url}/api/v1/${path}?${form}`)
    const body = (await res.json()) as { status: string, data: T, errorType?: string, error?: string }
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.errorType ?? res.status}: ${body.error ?? ''}`)
    return body.data
  }

  let stopping: Promise<void> | undefined
  return {
    url,
    port,
    pid: child.pid as number,
    query: (expr, timeS = Date.now() / 1000) => api<PromResult>('query', { query: expr, time: String(timeS) }),
    queryRange: (expr, startS, endS, step) => api<PromResult>('query_range', { query: expr, start: String(startS), end: String(endS), step }),
    labelValues: (label, match, startS, endS) => api<string[]>(`label/${encodeURIComponent(label)}/values`, { 'match[]': match, start: String(startS), end: String(endS) }, 'GET'),
    targets: async () => {
      const res = await fetch(`${url}/api/v1/targets?state=active`)
      const body = (await res.json()) as { data: { activeTargets: Array<{ labels: Record<string, string>, health: string, lastScrape: string, lastError: string }> } }
      return body.data.activeTargets.map((t) => ({ job: t.labels.job ?? '', instance: t.labels.instance ?? '', health: t.health, lastScrapeMs: Date.parse(t.lastScrape), lastError: t.lastError }))
    },
    output: () => output,
    stop: () => {
      stopping ??= (async () => {
        if (alive()) {
          child.kill('SIGTERM')
          const t = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
          await closed
          clearTimeout(t)
        }
        await rm(dir, { recursive: true, force: true })
      })()
      return stopping
    },
  }
}

export { freePort }
