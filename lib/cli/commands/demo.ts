/**
 * `shoal demo`: the whole product on one machine in a few seconds. Starts its own nats-server
 * (JetStream, free port, temporary store), a balancer, and N host processes; runs count-primes
 * over [0, 10⁷); shows where the shares ran; checks the result (664,579); stops everything.
 * The balancer and every host serve Prometheus metrics on free ports while it runs.
 */

import type { ChildProcess } from 'node:child_process'
import { Command } from 'commander'
import { BalancerNode } from '../../balancer/node.ts'
import { loadConfig } from '../../config/mod.ts'
import { ShoalError } from '../../errors.ts'
import { createLogger } from '../../log.ts'
import { startNatsServer, type RunningNatsServer } from '../../nats-server/launcher.ts'
import { ShoalClient } from '../../sdk/client.ts'
import { freePort } from '../../free-port.ts'
import { spawnShoal, stopChild } from '../spawn.ts'
import { formatDuration, parseIntArg, printJson, reportError } from '../output.ts'
import { ProgressLine } from '../progress.ts'

interface DemoFlags {
  hosts: string
  json?: boolean
  to: string
}

/** Known values of π(n), to check the demo's answer. */
const PI: Record<number, number> = { 1e6: 78498, 2e6: 148933, 1e7: 664579, 1e8: 5761455 }

export function demoCommand(): Command {
  return new Command('demo')
    .description('start nats-server, a balancer and N hosts, count primes below 10^7 across them, stop')
    .option('--hosts <n>', 'number of host processes', '3')
    .option('--to <n>', 'count primes in [0, n)', '10000000')
    .option('--json', 'print one JSON document on stdout')
    .action(async (o: DemoFlags) => {
      const json = o.json === true
      const say = (s: string) => {
        if (!json) process.stderr.write(`${s}\n`)
      }
      let nats: RunningNatsServer | undefined
      let balancer: BalancerNode | undefined
      let client: ShoalClient | undefined
      const children: ChildProcess[] = []
      try {
        const hostCount = parseIntArg('--hosts', o.hosts)
        const to = parseIntArg('--to', o.to)
        nats = await startNatsServer()
        say(`nats-server listening on ${nats.url} (JetStream store ${nats.storeDir})`)
        const cluster = `demo${process.pid}`
        const config = loadConfig({ overrides: { cluster, nats: { url: nats.url }, log: { level: 'warn' }, balancer: { metricsPort: 0 } } as never })
        balancer = await BalancerNode.start({ config, logger: createLogger('shoal-balancer', 'warn') })
        const env = { ...process.env, SHOAL_CLUSTER: cluster, SHOAL_NATS_URL: nats.url, SHOAL_LOG_LEVEL: 'warn' }
        const hostPorts: number[] = []
        for (let i = 1; i <= hostCount; i++) {
          const port = await freePort()
          hostPorts.push(port)
          const child = spawnShoal(['host', '--id', `demo-h${i}`, '--metrics-port', String(port)], { env, stdio: ['ignore', 'ignore', 'inherit'] })
          children.push(child)
        }
        say(`metrics: balancer ${balancer.metricsUrl}, hosts ${hostPorts.map((p) => `http://127.0.0.1:${p}/metrics`).join(', ')}`)
        client = await ShoalClient.connect({ servers: nats.url, cluster })
        const hosts = await waitForHosts(client, hostCount, 20_000)
        say(`started a balancer and ${hosts.length} hosts: ${hosts.map((h) => `${h.hostId} (${h.capacity.slots} slots)`).join(', ')}`)

        const job = await client.submit<number>({ processor: 'count-primes', range: [0, to] })
        say(`submitted count-primes over [0, ${to}) as job ${job.id} in ${job.summary?.sharesTotal} shares`)
        const progress = json ? undefined : new ProgressLine(process.stderr)
        if (progress) job.on('progress', (s) => progress.update(s))
        const result = await job.result()
        progress?.finish()
        const detail = await client.fetchJob(job.id, true)
        const expected = PI[to]
        const byHost = new Map<string, string[]>()
        for (const s of detail.shares ?? []) {
          for (const h of s.hosts) byHost.set(h, [...(byHost.get(h) ?? []), `${s.shareId.replace(`${job.id}-`, '')} [${s.from}, ${s.to})`])
        }
        if (json) {
          printJson({ jobId: job.id, result, expected: expected ?? null, correct: expected === undefined ? null : result === expected, elapsedMs: detail.elapsedMs, hosts: hosts.map((h) => h.hostId), shares: detail.shares })
        } else {
          say('shares ran on:')
          for (const [h, list] of [...byHost].sort()) say(`  ${h}: ${list.join(', ')}`)
          say(`result: ${result}${expected === undefined ? '' : result === expected ? ' (correct)' : ` (WRONG, expected ${expected})`} in ${formatDuration(detail.elapsedMs ?? 0)}`)
          process.stdout.write(`${result}\n`)
        }
        if (expected !== undefined && result !== expected) {
          throw new ShoalError('E_INTERNAL', `demo counted ${result} primes below ${to}, expected ${expected}`)
        }
      } catch (e) {
        reportError(e, json)
      } finally {
        say('stopping hosts, balancer and nats-server')
        await client?.close()
        await Promise.all(children.map((c) => stopChild(c)))
        await balancer?.stop()
        await nats?.stop()
      }
    })
}

async function waitForHosts(client: ShoalClient, n: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const hosts = (await client.hosts().catch(() => [])).filter((h) => h.state === 'alive')
    if (hosts.length >= n) return hosts
    if (Date.now() > deadline) throw new ShoalError('E_TIMEOUT', `only ${hosts.length} of ${n} hosts joined within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
