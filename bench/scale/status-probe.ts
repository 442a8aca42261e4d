/**
 * `status` as users meet it at scale:
 *   - `statusLatency`: round trips of ShoalClient.status() on a warm connection (one unmeasured call
 *     first), one after another, with what the last reply listed (hosts shown, hosts left out to
 *     fit the message limit);
 *   - `statusJson`: the CLI's `shoal status --json` as a child process, and whether its hosts[]
 *     still carries every host's hostId and state (or says how many it left out).
 * A request that fails or times out is counted, never retried into a sample.
 *
 * Must never change anything on the balancer: status is read-only.
 */

import { spawnShoal } from '../../lib/cli/spawn.ts'
import type { ShoalClient } from '../../lib/sdk/client.ts'
import { summarizeMany } from './stats.ts'

export async function statusLatency(client: ShoalClient, samples: number, capMs: number): Promise<Record<string, unknown>> {
  const ms: number[] = []
  let failures = 0
  const errors = new Set<string>()
  let last: Awaited<ReturnType<ShoalClient['status']>> | undefined
  try {
    last = await client.status()
  } catch (e) {
    errors.add(`warm-up: ${(e as Error).message.slice(0, 200)}`)
  }
  const stopAt = Date.now() + capMs
  for (let i = 0; i < samples && Date.now() < stopAt; i++) {
    const t0 = performance.now()
    try {
      last = await client.status()
      ms.push(performance.now() - t0)
    } catch (e) {
      failures++
      errors.add((e as Error).message.slice(0, 200))
    }
  }
  return {
    ms: summarizeMany(ms),
    failures,
    ...(errors.size ? { errors: [...errors] } : {}),
    hostsListed: last?.hosts.length ?? null,
    hostsAlive: last ? last.hosts.filter((h) => h.state === 'alive').length : null,
    omittedHosts: last?.omitted?.hosts ?? 0,
  }
}

/** Runs `shoal status --json` against the cluster and checks its hosts[]. */
export async function statusJson(natsUrl: string, cluster: string, expectedHosts: number, timeoutS: number): Promise<Record<string, unknown>> {
  const t0 = performance.now()
  const child = spawnShoal(['status', '--json', '--timeout', String(timeoutS)], {
    env: { ...process.env, SHOAL_NATS_URL: natsUrl, SHOAL_CLUSTER: cluster },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)))
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)))
  const wallMs = performance.now() - t0
  let doc: { hosts?: Array<{ hostId?: unknown; state?: unknown }>; omitted?: { hosts?: number } }
  try {
    doc = JSON.parse(out) as typeof doc
  } catch {
    return { ok: false, exitCode: code, wallMs: Math.round(wallMs), error: `not one JSON document: ${(err || out).slice(0, 300)}` }
  }
  const hosts = Array.isArray(doc.hosts) ? doc.hosts : []
  const withIdAndState = hosts.filter((h) => typeof h.hostId === 'string' && typeof h.state === 'string').length
  const omitted = doc.omitted?.hosts ?? 0
  return {
    ok: code === 0 && Array.isArray(doc.hosts) && withIdAndState === hosts.length,
    exitCode: code,
    wallMs: Math.round(wallMs),
    hostsListed: hosts.length,
    hostsWithIdAndState: withIdAndState,
    omittedHosts: omitted,
    everyHostAccountedFor: hosts.length + omitted >= expectedHosts,
  }
}
