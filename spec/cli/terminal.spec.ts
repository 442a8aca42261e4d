/**
 * What a person sees in a real terminal (tmux, at 80 and 120 columns): `shoal job wait`'s progress
 * line is redrawn in place, cut to the width, and leaves no fragments of longer lines.
 */

import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { expect } from 'chai'
import { shoalCommand } from '../../lib/cli/spawn.ts'
import { useNatsServer } from '../support/nats.ts'
import { startCluster, type TestCluster } from '../support/cluster.ts'

const run = promisify(execFile)
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

describe('progress in a real terminal (tmux)', function () {
  this.timeout(60_000)
  const nats = useNatsServer()
  let c: TestCluster
  const socket = `shoal-test-${process.pid}`
  const tmux = (...args: string[]) => run('tmux', ['-L', socket, '-f', '/dev/null', ...args])

  before(async function () {
    if (!(await run('tmux', ['-V']).then(() => true, () => false))) this.skip() // tmux not installed (apt-get install tmux)
    c = await startCluster(nats.url, { hosts: [{ id: 'h1' }] })
  })
  after(async () => {
    await tmux('kill-server').catch(() => undefined)
    await c?.stop()
  })

  for (const columns of [80, 120]) {
    it(`keeps shoal job wait's progress on one line at ${columns} columns`, async () => {
      const job = await c.client.submit({ processor: 'count-primes', range: [0, 3_000_000_000], shares: 1 })
      try {
        const [exe, pre] = shoalCommand()
        const env = `SHOAL_NATS_URL=${quote(c.url)} SHOAL_CLUSTER=${quote(c.cluster)}`
        const cmd = `env ${env} ${[exe, ...pre, 'job', 'wait', job.id].map(quote).join(' ')}; sleep 30`
        await tmux('new-session', '-d', '-s', `w${columns}`, '-x', String(columns), '-y', '12', cmd)
        // Several redraws: the line changes (its rate and ETA do) while staying one line.
        let screens: string[] = []
        await c.waitFor(async () => {
          const { stdout } = await tmux('capture-pane', '-p', '-t', `w${columns}`)
          const lines = stdout.split('\n').filter((l) => l.trim() !== '')
          if (lines.length && lines[0]!.includes(job.id) && screens.at(-1) !== lines.join('\n')) screens.push(lines.join('\n'))
          return screens.length >= 3
        }, 30_000, 'three different progress redraws', 200)
        for (const screen of screens) {
          const lines = screen.split('\n')
          expect(lines, screen).to.have.length(1)
          expect([...lines[0]!].length).to.be.at.most(columns)
        }
        const last = screens.at(-1)!
        if (columns === 80) expect(last.trimEnd().endsWith('…'), last).to.equal(true)
        else expect(last).to.include('running')
      } finally {
        await tmux('kill-session', '-t', `w${columns}`).catch(() => undefined)
        await c.client.cancel(job.id).catch(() => undefined)
      }
    })
  }
})
