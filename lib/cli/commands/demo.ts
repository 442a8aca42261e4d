/**
 * `shoal demo`: the whole product on one machine in a few seconds. Starts its own nats-server
 * (JetStream, free port, temporary store), a balancer, and N host processes; runs count-primes
 * over [0, 10⁷); shows where the shares ran; checks the result (664,579); stops everything.
 * The balancer and every host serve Prometheus metrics on free ports while it runs.
 *
 * The cluster is open (no authentication), and the demo says so; `--secure` runs the same on a
 * secured cluster made by `shoal auth init --tls` in a temporary directory: TLS, one nkey identity
 * per process, the generated least-privilege permissions.
 */

import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Command } from 'commander'
import type { BalancerNode } from '../../balancer/node.ts'
import { ShoalError } from '../../errors.ts'
import type { RunningNatsServer } from '../../nats-server/launcher.ts'
import type { ShoalClient } from '../../sdk/client.ts'
import { spawnShoal, stopChild } from '../spawn.ts'
import { formatDuration, parseIntArg, printJson, progressLine, reportError } from '../output.ts'

interface DemoFlags {
  hosts: string
  secure?: boolean
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
    .option('--secure', 'run on a secured cluster: TLS, one nkey identity per process, least-privilege permissions (shoal auth init)')
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
      let authDir: string | undefined
      try {
        // Loaded when the demo runs, not when the CLI starts (`--help` stays fast).
        const [{ authInit }, { BalancerNode }, { authOptions }, { Subjects, hostIdentity }, { loadConfig }, { createLogger }, { startNatsServer }, { ShoalClient }, { freePort }] = await Promise.all([
          import('../../auth/generate.ts'),
          import('../../balancer/node.ts'),
          import('../../nats-connect.ts'),
          import('../../protocol/subjects.ts'),
          import('../../config/mod.ts'),
          import('../../log.ts'),
          import('../../nats-server/launcher.ts'),
          import('../../sdk/client.ts'),
          import('../../free-port.ts'),
        ])
        const hostCount = parseIntArg('--hosts', o.hosts)
        const to = parseIntArg('--to', o.to)
        const cluster = `demo${process.pid}`
        const hostIds = Array.from({ length: hostCount }, (_, i) => `demo-h${i + 1}`)
        // Secured: every process reads its own generated config (its seed, the CA).
        const configOf = (identity: string) => (authDir === undefined ? undefined : path.join(authDir, `${identity}.yaml`))
        if (o.secure) {
          authDir = mkdtempSync(path.join(tmpdir(), 'shoal-demo-auth-'))
          const port = await freePort()
          await authInit({ dir: authDir, cluster, hosts: hostIds, tls: true, port })
          nats = await startNatsServer({ port, jetstream: false, args: ['-c', path.join(authDir, 'server.conf')] })
          say(`nats-server listening on ${nats.url}, secured: TLS with a CA made just now, one nkey identity per process and least-privilege permissions (shoal auth init ${authDir} --tls; see docs/SECURITY.md)`)
        } else {
          nats = await startNatsServer()
          say(`nats-server listening on ${nats.url} (JetStream store ${nats.storeDir})`)
          say('this demo cluster is open: no authentication, anyone who reaches its port may act (try --secure, and see docs/SECURITY.md)')
        }
        const balancerFile = configOf('balancer')
        const config = loadConfig({ ...(balancerFile ? { file: balancerFile } : {}), overrides: { cluster, nats: { url: nats.url }, log: { level: 'warn' }, balancer: { metricsPort: 0 } } as never })
        balancer = await BalancerNode.start({ config, logger: createLogger('shoal-balancer', 'warn') })
        const hostPorts: number[] = []
        for (const id of hostIds) {
          const port = await freePort()
          hostPorts.push(port)
          const file = configOf(hostIdentity(id))
          const env = { ...process.env, SHOAL_CLUSTER: cluster, SHOAL_NATS_URL: nats.url, SHOAL_LOG_LEVEL: 'warn', ...(file ? { SHOAL_CONFIG: file } : {}) }
          const child = spawnShoal(['host', '--id', id, '--metrics-port', String(port)], { env, stdio: ['ignore', 'ignore', 'inherit'] })
          children.push(child)
        }
        say(`metrics: balancer ${balancer.metricsUrl}, hosts ${hostPorts.map((p) => `http://127.0.0.1:${p}/metrics`).join(', ')}`)
        const submitterFile = configOf('submitter')
        if (submitterFile) {
          const sub = loadConfig({ file: submitterFile, env: {} })
          client = await ShoalClient.connect({ servers: nats.url, cluster, identity: sub.client.identity, nats: authOptions({ ...sub.nats, inboxPrefix: new Subjects(cluster).inbox(sub.client.identity) }) })
        } else {
          client = await ShoalClient.connect({ servers: nats.url, cluster })
        }
        const hosts = await waitForHosts(client, hostCount, 20_000)
        say(`started a balancer and ${hosts.length} hosts: ${hosts.map((h) => `${h.hostId} (${h.capacity.slots} slots)`).join(', ')}`)

        const job = await client.submit<number>({ processor: 'count-primes', range: [0, to] })
        say(`submitted count-primes over [0, ${to}) as job ${job.id} in ${job.summary?.sharesTotal} shares`)
        const progress = json ? undefined : await progressLine()
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
        if (authDir !== undefined) rmSync(authDir, { recursive: true, force: true })
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
