/**
 * A local cluster for your own code: `shoal up --processor FILE.ts` (the real CLI, a child process)
 * and the SDK's LocalCluster, each running a processor module from outside Shoal's built-ins.
 */

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { shoalCommand } from '../../lib/cli/spawn.ts'
import { LocalCluster } from '../../lib/sdk/local-cluster.ts'
import flaky from '../fixtures/processors/flaky.ts'
import { tcpAccepts } from '../support/processes.ts'
import { runShoal } from '../support/shoal-cli.ts'

const flakyFixture = fileURLToPath(new URL('../fixtures/processors/flaky.ts', import.meta.url))

/** The environment without any SHOAL_ setting of the caller's shell. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SHOAL_')))
}

describe('a local cluster for your own processors', function () {
  this.timeout(90_000)

  it('shoal up --processor FILE.ts prints the export line once up, serves jobs on that processor, and Ctrl-C stops everything', async () => {
    const [exe, pre] = shoalCommand()
    const child = spawn(exe, [...pre, 'up', '--hosts', '2', '--processor', flakyFixture], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    try {
      const first = await new Promise<string>((resolve, reject) => {
        let out = ''
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d
          if (out.includes('\n')) resolve(out.split('\n')[0]!)
        })
        exited.then((code) => reject(new Error(`shoal up exited (${code}) before printing: ${stderr}`)), () => undefined)
      })
      expect(first).to.match(/^export SHOAL_NATS_URL=nats:\/\/127\.0\.0\.1:\d+$/)
      const url = first.slice('export SHOAL_NATS_URL='.length)
      const r = await runShoal(['submit', 'flaky-count', '--range', '0:50000', '--input', '{"failAt":1000000000}', '--wait', '--json'], { ...cleanEnv(), SHOAL_NATS_URL: url })
      expect(r.code, r.stderr).to.equal(0)
      expect(JSON.parse(r.stdout).result).to.equal(50_000)
      const port = Number(url.split(':').at(-1))
      child.kill('SIGINT')
      expect(await exited).to.equal(0)
      expect(await tcpAccepts(port)).to.equal(false)
      expect(stderr).to.include('Ctrl-C stops everything')
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })

  it('LocalCluster.start runs a typed job on your processor, and stop() stops what it started', async () => {
    const local = await LocalCluster.start({ hosts: 2, slots: 1, processors: [flakyFixture] })
    let stopped = false
    try {
      expect(local.hostIds).to.have.length(2)
      const client = await local.client()
      try {
        const job = await client.submit(flaky, { range: [0, 20_000], input: { failAt: 1e9 }, shares: 2 })
        const n: number = await job.result()
        expect(n).to.equal(20_000)
      } finally {
        await client.close()
      }
      const port = Number(local.url.split(':').at(-1))
      await local.stop()
      stopped = true
      expect(await tcpAccepts(port)).to.equal(false)
    } finally {
      if (!stopped) await local.stop()
    }
  })

  it('says which processor module does not load, instead of waiting for hosts that never join', async () => {
    const err = await LocalCluster.start({ hosts: 1, processors: ['/nonexistent/pi.ts'], startTimeoutMs: 30_000 }).then(
      async (local) => {
        await local.stop()
        return null
      },
      (e: Error & { code?: string }) => e,
    )
    expect(err?.message).to.include('exited while starting')
  })
})
