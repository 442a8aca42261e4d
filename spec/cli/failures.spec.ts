/**
 * Fast, clear CLI failures (issue 11): a port where something other than NATS listens gives a clear
 * error within --timeout and the process exits; a bad --timeout is refused before connecting.
 */

import { createServer, type Server, type Socket } from 'node:net'
import { expect } from 'chai'
import { runShoal } from '../support/shoal-cli.ts'

describe('CLI failures', function () {
  this.timeout(60_000)
  let server: Server
  let port = 0
  const sockets: Socket[] = []

  before(async () => {
    // Accepts connections and never says a word, as an HTTP server waiting for a request does.
    server = createServer((s) => void sockets.push(s))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    port = (server.address() as { port: number }).port
  })
  after(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })

  it('names a server that does not speak NATS within --timeout, and exits', async () => {
    const started = Date.now()
    const r = await runShoal(['status', '--nats', `nats://127.0.0.1:${port}`, '--timeout', '1'], { ...process.env }, 30_000)
    const tookMs = Date.now() - started
    expect(r.code).to.equal(1)
    expect(r.stderr).to.include('did not speak NATS').and.include('within 1.0 s')
    // Under the 20 s the NATS client would wait by default, on a busy machine too.
    expect(tookMs).to.be.below(15_000)
    expect(sockets.length).to.be.at.least(1)
  })

  it('refuses a bad --timeout before connecting anywhere', async () => {
    const r = await runShoal(['job', 'list', '--nats', `nats://127.0.0.1:${port}`, '--timeout', 'soon'], { ...process.env }, 30_000)
    expect(r.code).to.equal(2)
    expect(r.stderr).to.include('--timeout')
  })
})
