/**
 * Specs of the embedded nats-server launcher and of the `useNatsServer` test helper: finding the
 * binary, starting on a free port with JetStream, failing clearly, stopping cleanly, and never
 * leaving a server behind when the parent dies.
 *
 * Must never use the system nats-server on 4222 or leave a process or temp directory behind.
 */

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { connect } from '@nats-io/transport-node'
import { Kvm } from '@nats-io/kv'
import { ShoalError } from '../../lib/errors.ts'
import { findNatsServer, startNatsServer, type RunningNatsServer } from '../../lib/nats-server/launcher.ts'
import { useNatsServer } from '../support/nats.ts'
import { expectShoalError, isGone, tcpAccepts } from '../support/processes.ts'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
const launcherPath = fileURLToPath(new URL('../../lib/nats-server/launcher.ts', import.meta.url))


/**
 * Polls until `cond` holds. Only for processes that are not our children (a server orphaned by a
 * dead parent): there is no event to wait on for those.
 */
async function eventually(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await cond()) return true
    await new Promise((r) => setTimeout(r, 25))
  }
  return cond()
}


describe('nats-server launcher', function () {
  let scratch: string
  before(function () {
    scratch = mkdtempSync(join(tmpdir(), 'shoal-launcher-spec-'))
  })
  after(function () {
    rmSync(scratch, { recursive: true, force: true })
  })

  function fakeBin(name: string, body: string): string {
    const p = join(scratch, name)
    writeFileSync(p, body)
    chmodSync(p, 0o755)
    return p
  }

  describe('findNatsServer', function () {
    it('explains in one paragraph where it looked and how to install nats-server when there is none', async function () {
      const err = await expectShoalError(
        () => findNatsServer({ PATH: '/nonexistent:/also/nonexistent' }, { fallbackPaths: ['/nowhere/nats-server'] }),
        'E_NATS_SERVER_MISSING',
      )
      expect(err.message).to.not.include('\n')
      expect(err.message).to.include('NATS_SERVER_BIN (not set)')
      expect(err.message).to.include('/nonexistent, /also/nonexistent')
      expect(err.message).to.include('/nowhere/nats-server')
      expect(err.message).to.include('sudo apt-get install nats-server')
      expect(err.message).to.include('NATS_SERVER_BIN=/path/to/nats-server')
      expect(err.details?.searched).to.deep.equal([
        '/nonexistent/nats-server',
        '/also/nonexistent/nats-server',
        '/nowhere/nats-server',
      ])
    })

    it('searches /usr/sbin and /usr/local/bin after PATH by default', function () {
      // Debian's package installs to /usr/sbin, which is not on a normal user's PATH.
      try {
        const found = findNatsServer({ PATH: '/nonexistent' })
        expect(['/usr/sbin/nats-server', '/usr/local/bin/nats-server']).to.include(found)
      } catch (err) {
        expect((err as ShoalError).details?.searched).to.include.members(['/usr/sbin/nats-server', '/usr/local/bin/nats-server'])
      }
    })

    it('finds nats-server in the first PATH directory that holds an executable one', function () {
      const dirA = mkdtempSync(join(scratch, 'a-'))
      const dirB = mkdtempSync(join(scratch, 'b-'))
      writeFileSync(join(dirA, 'nats-server'), '#!/bin/sh\n') // not executable: skipped
      writeFileSync(join(dirB, 'nats-server'), '#!/bin/sh\n')
      chmodSync(join(dirB, 'nats-server'), 0o755)
      expect(findNatsServer({ PATH: `/nonexistent:${dirA}:${dirB}` }, { fallbackPaths: [] })).to.equal(join(dirB, 'nats-server'))
    })

    it('prefers NATS_SERVER_BIN over PATH', function () {
      const chosen = fakeBin('my-nats-server', '#!/bin/sh\n')
      expect(findNatsServer({ PATH: '/usr/sbin:/usr/bin', NATS_SERVER_BIN: chosen })).to.equal(chosen)
    })

    it('rejects a NATS_SERVER_BIN that is not an executable file rather than silently using another binary', async function () {
      const err = await expectShoalError(
        () => findNatsServer({ PATH: '/usr/sbin:/usr/bin', NATS_SERVER_BIN: '/nonexistent/nats-server' }),
        'E_NATS_SERVER_MISSING',
      )
      expect(err.message).to.include('NATS_SERVER_BIN is set to /nonexistent/nats-server')
      expect(err.message).to.include('sudo apt-get install nats-server')
    })

    it('ignores empty and relative PATH entries, which would mean "the current directory"', async function () {
      const err = await expectShoalError(
        () => findNatsServer({ PATH: ':.:relative/dir' }, { fallbackPaths: [] }),
        'E_NATS_SERVER_MISSING',
      )
      expect(err.details?.searched).to.deep.equal([])
    })
  })

  describe('startNatsServer', function () {
    it('starts JetStream on a free port, serves publish/subscribe and KV, and on stop closes the port and removes the temp store', async function () {
      const s = await startNatsServer()
      let stopped = false
      try {
        expect(s.port).to.be.a('number').and.not.equal(4222)
        expect(s.url).to.equal(`nats://127.0.0.1:${s.port}`)
        expect(s.pid).to.be.a('number')
        expect(existsSync(s.storeDir)).to.equal(true)

        const nc = await connect({ servers: s.url })
        try {
          const sub = nc.subscribe('shoal.spec.echo', { max: 1 })
          const got = (async () => {
            for await (const m of sub) return m.string()
            return undefined
          })()
          nc.publish('shoal.spec.echo', 'hello')
          expect(await got).to.equal('hello')

          const kv = await new Kvm(nc).create('t')
          await kv.put('k', 'v1')
          expect((await kv.get('k'))?.string()).to.equal('v1')
          // The KV bucket lives in our store, not in some other server's.
          expect(existsSync(join(s.storeDir, 'jetstream'))).to.equal(true)
        } finally {
          await nc.close()
        }

        await s.stop()
        stopped = true
        expect(await tcpAccepts(s.port)).to.equal(false)
        expect(existsSync(s.storeDir)).to.equal(false)
        expect(isGone(s.pid)).to.equal(true)
      } finally {
        if (!stopped) await s.stop()
      }
    })

    it('gives two servers started at once different ports', async function () {
      const servers = await Promise.all([startNatsServer(), startNatsServer()])
      try {
        const [a, b] = servers as [RunningNatsServer, RunningNatsServer]
        expect(a.port).to.not.equal(b.port)
        expect(a.storeDir).to.not.equal(b.storeDir)
        expect(await tcpAccepts(a.port)).to.equal(true)
        expect(await tcpAccepts(b.port)).to.equal(true)
      } finally {
        await Promise.all(servers.map((s) => s.stop()))
      }
    })

    it('makes stop idempotent: concurrent and repeated calls all resolve', async function () {
      const s = await startNatsServer({ jetstream: false })
      expect(s.storeDir).to.equal('')
      await Promise.all([s.stop(), s.stop()])
      await s.stop()
      expect(await tcpAccepts(s.port)).to.equal(false)
    })

    it('keeps a store directory it was given and appends the server log to logFile', async function () {
      const dir = mkdtempSync(join(scratch, 'store-'))
      const logFile = join(scratch, 'nats.log')
      const s = await startNatsServer({ storeDir: dir, logFile })
      expect(s.storeDir).to.equal(dir)
      await s.stop()
      expect(existsSync(join(dir, 'jetstream'))).to.equal(true)
      const log = readFileSync(logFile, 'utf8')
      expect(log).to.include(`Listening for client connections on 127.0.0.1:${s.port}`)
      expect(log).to.include('Server is ready')
    })

    it('fails with E_CONFIG naming logFile when the log file cannot be opened', async function () {
      const err = await expectShoalError(startNatsServer({ logFile: '/nonexistent/dir/nats.log' }), 'E_CONFIG')
      expect(err.message).to.include('logFile')
      expect(err.message).to.include('/nonexistent/dir/nats.log')
    })

    it('fails with E_NATS_SERVER_MISSING naming an explicit bin that does not exist', async function () {
      const err = await expectShoalError(startNatsServer({ bin: '/nonexistent/nats-server' }), 'E_NATS_SERVER_MISSING')
      expect(err.message).to.include('/nonexistent/nats-server')
      expect(err.message).to.include('sudo apt-get install nats-server')
    })

    it('fails fast with E_NATS_SERVER_START and the server output when nats-server exits early, removing the temp store', async function () {
      const started = performance.now()
      const err = await expectShoalError(
        startNatsServer({ args: ['--no-such-flag'], startTimeoutMs: 10_000 }),
        'E_NATS_SERVER_START',
      )
      expect(performance.now() - started).to.be.below(5_000)
      // 2.9.10 exits with code 0 after printing its usage: the early exit, not the code, is the failure.
      expect(err.message).to.match(/exited with code \d+ before it was ready/)
      expect(err.message).to.include('flag provided but not defined')
      const storeDir = err.details?.storeDir as string
      expect(storeDir).to.match(/shoal-nats-/)
      expect(existsSync(storeDir)).to.equal(false)
    })

    it('fails with E_NATS_SERVER_START when the requested port is taken, rather than reporting the other listener as ready', async function () {
      const squatter = createServer((c) => c.destroy())
      squatter.listen(0, '127.0.0.1')
      await once(squatter, 'listening')
      try {
        const port = (squatter.address() as AddressInfo).port
        const err = await expectShoalError(startNatsServer({ port, jetstream: false }), 'E_NATS_SERVER_START')
        expect(err.message).to.match(/address already in use/i)
      } finally {
        squatter.close()
      }
    })

    it('times out with E_NATS_SERVER_START, the tail of the output, and kills the process that never became ready', async function () {
      const bin = fakeBin('hung-nats-server', '#!/bin/sh\necho "fake server warming up" >&2\nexec sleep 60\n')
      const err = await expectShoalError(startNatsServer({ bin, startTimeoutMs: 300 }), 'E_NATS_SERVER_START')
      expect(err.message).to.include('not ready within 300 ms')
      expect(err.message).to.include('fake server warming up')
      expect(isGone(err.details?.pid as number)).to.equal(true)
      expect(existsSync(err.details?.storeDir as string)).to.equal(false)
    })

    it('escalates to SIGKILL when the server ignores SIGTERM for 3 s', async function () {
      this.timeout(15_000)
      // A stand-in that speaks the readiness lines and ignores SIGTERM, as a wedged server would.
      const bin = fakeBin(
        'stubborn-nats-server',
        `#!${process.execPath}\n` +
          `process.on('SIGTERM', () => {})\n` +
          `const s = require('net').createServer((c) => c.destroy()).listen(0, '127.0.0.1', () => {\n` +
          `  console.error('Listening for client connections on 127.0.0.1:' + s.address().port)\n` +
          `  console.error('Server is ready')\n` +
          `})\n`,
      )
      const s = await startNatsServer({ bin, jetstream: false })
      const started = performance.now()
      await s.stop()
      expect(performance.now() - started).to.be.within(2_900, 6_000)
      expect(isGone(s.pid)).to.equal(true)
      expect(await tcpAccepts(s.port)).to.equal(false)
    })
  })

  describe('when the parent process dies', function () {
    /** Runs a node child that starts a server, prints it as JSON, then does `then`. */
    async function parentThat(then: string): Promise<{
      parentPid: number
      server: { pid: number; port: number; storeDir: string }
      exit: Promise<[number | null, string | null]>
    }> {
      const code =
        `import { startNatsServer } from ${JSON.stringify(launcherPath)}\n` +
        `const s = await startNatsServer()\n` +
        `process.stdout.write(JSON.stringify({ pid: s.pid, port: s.port, storeDir: s.storeDir }) + '\\n')\n` +
        then
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const exit = once(child, 'close') as Promise<[number | null, string | null]>
      let out = ''
      let err = ''
      child.stderr.on('data', (d: Buffer) => { err += d.toString() })
      const line = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')))
        })
        exit.then(() => reject(new Error(`parent exited before printing its server: ${err}`)), () => undefined)
      })
      return { parentPid: child.pid as number, server: JSON.parse(line), exit }
    }

    it('kills the server when the parent crashes with an uncaught exception', async function () {
      const { server, exit } = await parentThat(`setTimeout(() => { throw new Error('boom') }, 10)\n`)
      expect(await tcpAccepts(server.port)).to.equal(true)
      const [code] = await exit
      expect(code).to.not.equal(0)
      expect(await eventually(() => isGone(server.pid))).to.equal(true)
      expect(await eventually(async () => !(await tcpAccepts(server.port)))).to.equal(true)
      expect(existsSync(server.storeDir)).to.equal(false)
    })

    it('kills the server when the parent is sent SIGTERM, and the parent still dies of SIGTERM', async function () {
      const { parentPid, server, exit } = await parentThat(`setInterval(() => {}, 1000)\n`)
      expect(await tcpAccepts(server.port)).to.equal(true)
      process.kill(parentPid, 'SIGTERM')
      const [, signal] = await exit
      expect(signal).to.equal('SIGTERM')
      expect(await eventually(() => isGone(server.pid))).to.equal(true)
      expect(await eventually(async () => !(await tcpAccepts(server.port)))).to.equal(true)
    })
  })
})

describe('useNatsServer', function () {
  let handle: ReturnType<typeof useNatsServer> | undefined
  let earlyError: unknown
  let seenPort: number | undefined

  describe('in the suite that calls it', function () {
    handle = useNatsServer()
    try {
      void handle.url
    } catch (err) {
      earlyError = err
    }

    it('refuses to hand out the server while the suite is only being defined', function () {
      expect(earlyError).to.be.instanceOf(Error)
      expect((earlyError as Error).message).to.include('useNatsServer')
    })

    it('gives the suite a running server that a client can use', async function () {
      const nats = handle!
      seenPort = nats.server.port
      expect(nats.url).to.equal(nats.server.url)
      const nc = await connect({ servers: nats.url })
      try {
        const sub = nc.subscribe('shoal.spec.helper', { max: 1 })
        const got = (async () => {
          for await (const m of sub) return m.string()
          return undefined
        })()
        nc.publish('shoal.spec.helper', 'hi')
        expect(await got).to.equal('hi')
      } finally {
        await nc.close()
      }
    })

    describe('and in its nested suites', function () {
      it('shares the same server', function () {
        expect(handle!.server.port).to.equal(seenPort)
      })
    })
  })

  describe('after that suite', function () {
    it('has stopped the server and refuses to hand it out', async function () {
      expect(seenPort).to.be.a('number')
      expect(await tcpAccepts(seenPort!)).to.equal(false)
      expect(() => handle!.url).to.throw(/useNatsServer/)
    })
  })
})
