/**
 * A real run for the dashboards: a real Prometheus scraping a real cluster (a balancer and three
 * one-slot hosts serving metrics) while the cluster finishes jobs, rejects malformed messages,
 * drains, fails a migration, fails over a lost host, takes a live setting change and splits a
 * running share. prometheus-live.spec.ts runs every dashboard query against it;
 * scripts/dashboards/render.ts draws the panels of docs/DASHBOARDS.md from it. One scenario for
 * both, so the pictures show the data the test checks.
 *
 * Must never use a Prometheus or nats-server it did not start (the caller hands it the URL of its
 * own nats-server), and must leave nothing running after `stop()`; a failed start stops what it
 * started. Waits on events, never on fixed sleeps.
 */

import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { Packr } from 'msgpackr'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { replyAs } from '../support/nats.ts'
import { killAndWait, TestCluster } from '../support/cluster.ts'
import { freePort, startPrometheus, type RunningPrometheus } from '../support/prometheus.ts'
import { SCRAPE_MS } from './panel-queries.ts'

export const HOSTS = ['a', 'b', 'c'] as const

/** What `play` leaves for the queries: the host to pick as `$host`, and the host it killed. */
export interface Played { host: string, victim: string }

export interface LiveRun {
  readonly cluster: TestCluster
  readonly prom: RunningPrometheus
  /** Metrics ports by process: `balancer` and each host id. */
  readonly ports: Readonly<Record<string, number>>
  /** When the cluster and Prometheus began to start (ms since the epoch): the dashboards' range starts here. */
  readonly startedMs: number
  /**
   * Runs the scenario; `step` hears a line as each step begins and is awaited before the step
   * runs (the pictures space the events out this way; the test passes nothing).
   */
  play(step?: (what: string) => void | Promise<void>): Promise<Played>
  /** Stops the cluster and Prometheus (the nats-server is the caller's). Idempotent. */
  stop(): Promise<void>
}

/**
 * Starts the cluster on `natsUrl` and a Prometheus scraping it, in parallel (Prometheus scrapes
 * first about 5 s after its start).
 */
export async function startLiveRun(natsUrl: string): Promise<LiveRun> {
  const startedMs = Date.now()
  const ports: Record<string, number> = {}
  for (const k of ['balancer', ...HOSTS]) ports[k] = await freePort()
  const cl = new TestCluster(natsUrl, {
    hosts: HOSTS.map((id) => ({ id, args: ['--slots', '1', '--metrics-port', String(ports[id])] })),
    balancerArgs: ['--metrics-port', String(ports.balancer)],
    env: {
      SHOAL_SHARES_CHECKPOINT_MS: '150',
      // Threshold 1: no balancing moves, so the shares stay where the scenario puts them.
      SHOAL_BALANCER_MIGRATION_THRESHOLD: '1',
      // Dynamic splits off until a live setting change turns them on (step 6 of the scenario).
      SHOAL_BALANCER_SPLIT_MIN_UNITS: '1000000000000',
    },
  })
  let prom: RunningPrometheus | undefined
  let raw: NatsConnection | undefined
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await raw?.close().catch(() => undefined)
      await cl.stop()
      await prom?.stop()
    })()
    return stopping
  }
  const started = await Promise.allSettled([
    startPrometheus({
      jobs: { 'shoal-balancer': [`127.0.0.1:${ports.balancer}`], 'shoal-hosts': HOSTS.map((h) => `127.0.0.1:${ports[h]}`) },
      scrapeIntervalS: SCRAPE_MS / 1000,
    }).then((p) => {
      prom = p
    }),
    cl.start(),
  ])
  const failed = started.find((s) => s.status === 'rejected')
  if (failed) {
    await stop()
    throw failed.reason
  }
  const p = prom!

  /** Polls `cond` every 50 ms; on timeout fails with `what`, the scrape targets and the balancer's log. */
  async function until(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await cond())) {
      if (Date.now() > deadline) {
        const targets = await p.targets().catch(() => [])
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n--- scrape targets:\n${targets.map((t) => `${t.job} ${t.instance} ${t.health} ${t.lastError}`).join('\n')}\n--- balancer log tail:\n${cl.log('balancer').slice(-3000)}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  /** The value of the first sample of an instant query now, or undefined. */
  async function value(expr: string): Promise<number | undefined> {
    const r = await p.query(expr)
    const first = (r.result as Array<{ value?: [number, string] }>)[0]
    return first?.value ? Number(first.value[1]) : undefined
  }

  async function play(step: (what: string) => void | Promise<void> = () => undefined): Promise<Played> {
    const subjects = new Subjects(cl.cluster)

    // 1. Two finished jobs, the second after Prometheus has seen the first: a finished job creates
    //    its job-duration series at 1, and rate() sees only rises of a series it already has.
    await step('two small jobs')
    const small = { processor: 'count-primes', range: [0, 2_000_000] as [number, number], shares: 1 }
    expect(await (await cl.client.submit<number>(small)).result()).to.equal(148_933)
    // Every target scraped once before any other event: the counters that start at zero are seen at zero.
    await until(async () => (await p.targets()).filter((t) => t.health === 'up').length === 1 + HOSTS.length, 20_000, 'Prometheus to scrape the balancer and every host')
    await until(async () => (await value('shoal_job_duration_seconds_count{state="completed"}')) === 1, 10_000, 'Prometheus to scrape the first job duration')
    expect(await (await cl.client.submit<number>(small)).result()).to.equal(148_933)

    // 2. Malformed messages: a heartbeat the balancer cannot decode, a command no host knows.
    await step('malformed messages')
    raw = await connect({ servers: cl.url })
    const pack = new Packr({ useRecords: false })
    raw.publish(subjects.heartbeat('intruder'), new Uint8Array([0xc1, 0xff, 0x00, 0x13]))
    for (const h of HOSTS) await raw.request(subjects.hostCommand(h), pack.pack({ v: 1, t: 'teleport' }), replyAs(subjects, 'balancer'))

    // 3. A long job, one share (splits are off): it runs until the cluster stops, so "Job progress" has a job.
    await step('a long job')
    const long = await cl.client.submit<number>({ processor: 'count-primes', range: [0, 1e11], shares: 1 })
    await until(async () => ((await long.fetch(true)).shares?.[0]?.unitsDone ?? 0) > 0, 20_000, 'the long job running')
    const shareId = (await long.fetch(true)).shares![0]!.shareId
    const hostOfShare = async (): Promise<string> => {
      const s = (await long.fetch(true)).shares!.find((x) => x.shareId === shareId)
      return s?.state === 'running' && s.host !== null ? s.host : ''
    }
    const drains = async (): Promise<number> => (await cl.client.status()).migrations.filter((m) => m.reason === 'drain' && m.ok).length

    // 4. Two drains of the share's host, the second after Prometheus has seen the first's stun
    //    (a stun series, too, appears at its first observation: quantiles need a second one).
    for (const n of [1, 2]) {
      let from = ''
      await until(async () => (from = await hostOfShare()) !== '', 10_000, 'the long share running on a host')
      await step(`drain ${n} of 2, off ${from}`)
      await cl.client.drain(from)
      await until(async () => (await drains()) >= n, 10_000, `drain migration ${n}, off ${from}`)
      await cl.client.drain(from, false)
      if (n === 1) await until(async () => ((await value('shoal_migration_stun_seconds_count{reason="drain"}')) ?? 0) >= 1, 10_000, 'Prometheus to scrape the first drain\'s stun')
    }

    // 5. A failed migration and a failover: the share's host is stopped (SIGSTOP), so it can
    //    neither answer the pause of a manual migration (which fails at the balancer's pause timeout)
    //    nor heartbeat (it is declared dead and its share fails over). Then it is killed.
    let victim = ''
    await until(async () => (victim = await hostOfShare()) !== '', 10_000, 'the long share running on a host')
    await step(`host ${victim} stopped: a failed migration, a failover, then SIGKILL`)
    const target = HOSTS.find((h) => h !== victim)!
    const stopped = cl.hosts.get(victim)!
    stopped.kill('SIGSTOP')
    const refused = await cl.client.migrate(shareId, target).then(() => undefined, (e: Error) => e)
    expect(refused, `a migration off the stopped host ${victim}`).to.be.instanceOf(Error)
    await until(async () => (await cl.client.status()).failovers.some((f) => f.hostId === victim), 10_000, `a failover off ${victim}`)
    await killAndWait(stopped, 'SIGKILL')
    expect((await cl.client.status()).migrations.some((m) => m.reason === 'manual' && !m.ok), 'a failed manual migration').to.equal(true)

    // 6. A live setting change: splits on. The host left idle by the failover takes a tail.
    await step('a live setting change turns splits on: a dynamic split')
    await cl.client.setSetting('balancer.splitMinUnits', '1000')
    await until(async () => ((await cl.client.status()).balance?.splitsTotal ?? 0) >= 1, 15_000, 'a dynamic split onto the idle host')

    // The host dashboard's $host: the first live host that runs a share now (checkpoint latency, units).
    const alive = (await cl.aliveHosts()).map((h) => h.hostId).sort()
    let host: string | undefined
    await until(async () => {
      const busy = new Set((await long.fetch(true)).shares!.filter((s) => s.state === 'running').map((s) => s.host))
      host = alive.find((h) => busy.has(h))
      return host !== undefined
    }, 10_000, 'a live host running a share')

    // Two scrapes of every live target after the last event, so each rise has a sample on both sides.
    await step('two scrapes after the last event')
    await scrapedAfter(Date.now(), victim)
    return { host: host!, victim }
  }

  /** Waits until every target but `victim`'s was scraped twice after `ms`. */
  async function scrapedAfter(ms: number, victim: string): Promise<void> {
    await until(async () => (await p.targets()).filter((t) => t.instance !== `127.0.0.1:${ports[victim]}`)
      .every((t) => t.health === 'up' && t.lastScrapeMs > ms + SCRAPE_MS), 10_000, 'two scrapes after the last event')
  }

  return { cluster: cl, prom: p, ports, startedMs, play, stop }
}
