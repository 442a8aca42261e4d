/**
 * Specs of the 3-node nats-server test cluster (lib/nats-server/cluster.ts) and of the
 * `useNatsCluster` helper: the nodes form one cluster, R3 KV buckets are replicated, a killed stream
 * leader is replaced and can rejoin, a restarted node keeps its ports and store, and nothing is left
 * behind by `stop()` or by a parent that dies.
 *
 * Must never use the system nats-server on 4222 or leave a process or temp directory behind. Tests
 * that kill or pause a node of the shared cluster bring it back (an afterEach restores it too).
 */

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { startNatsCluster } from '../../lib/nats-server/cluster.ts'
import { useNatsCluster } from '../support/nats-cluster.ts'
import { expectShoalError, isGone, tcpAccepts } from '../support/processes.ts'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
const clusterPath = fileURLToPath(new URL('../../lib/nats-server/cluster.ts', import.meta.url))


/** Polls `cond` until it holds or `timeoutMs` passed; for state with no event to wait on. */
async function eventually<T>(cond: () => Promise<T | undefined | false>, timeoutMs: number, intervalMs = 50): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await cond()
    if (v !== undefined && v !== false) return v
    if (Date.now() >= deadline) return undefined
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}


describe('NATS test cluster', function () {
  describe('a shared 3-node cluster', function () {
    const h = useNatsCluster()
    const opened: NatsConnection[] = []
    async function client(servers: string | string[]): Promise<NatsConnection> {
      const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
      opened.push(nc)
      return nc
    }

    afterEach(async function () {
      this.timeout(60_000)
      await Promise.all(opened.splice(0).map((nc) => nc.close().catch(() => {})))
      // Put the cluster back for the next test even when this one failed half-way.
      for (const [i, n] of h.cluster.nodes.entries()) {
        if (n.paused) await h.cluster.resume(i)
        if (!n.running) await h.cluster.restart(i)
      }
    })

    it('starts 3 nodes on distinct free ports that form one cluster: a message published on n1 reaches a subscriber on n3', async function () {
      const c = h.cluster
      console.log(`      (JetStream of the fresh cluster was ready after ${h.jetStreamReadyMs} ms)`)
      expect(c.nodes.map((n) => n.name)).to.deep.equal(['n1', 'n2', 'n3'])
      expect(c.urls).to.deep.equal(c.nodes.map((n) => `nats://127.0.0.1:${n.port}`))
      expect(c.url).to.equal(c.urls.join(','))
      const ports = c.nodes.flatMap((n) => [n.port, n.clusterPort, n.httpPort])
      expect(new Set(ports).size).to.equal(9)
      expect(ports).to.not.include(4222)
      for (const n of c.nodes) {
        expect(n.running).to.equal(true)
        expect(n.pid).to.be.a('number')
      }

      const nc1 = await client(c.urls[0] as string)
      const nc3 = await client(c.urls[2] as string)
      expect(nc1.info?.server_name).to.equal('n1')
      expect(nc3.info?.server_name).to.equal('n3')
      expect(nc1.info?.cluster).to.equal(c.clusterName)
      // The server tells a client every node's client URL: it learnt them over the routes.
      expect([...(nc1.info?.connect_urls ?? [])].sort()).to.deep.equal(c.nodes.map((n) => `127.0.0.1:${n.port}`).sort())

      const sub = nc3.subscribe('shoal.spec.cluster.hello', { max: 1 })
      const got = (async () => {
        for await (const m of sub) return m.string()
        return undefined
      })()
      await nc3.flush()
      // n3 tells n1 about the subscription over their route a moment after the flush; a message
      // published on n1 before that is dropped, so publish until one arrives.
      let received: string | undefined
      got.then((v) => { received = v }, () => undefined)
      const arrived = await eventually(async () => {
        if (received !== undefined) return true
        nc1.publish('shoal.spec.cluster.hello', 'from n1')
        await nc1.flush()
        return false
      }, 10_000)
      expect(arrived, 'a message published on n1 never reached n3').to.equal(true)
      expect(await got).to.equal('from n1')

      // Each node has a route to both others (the monitoring endpoint counts them).
      for (const n of c.nodes) {
        const routez = (await (await fetch(`http://127.0.0.1:${n.httpPort}/routez`)).json()) as { num_routes: number }
        expect(routez.num_routes, `routes of ${n.name}`).to.equal(2)
      }
    })

    it('keeps a KV bucket created with replicas: 3 on all three nodes and names its leader', async function () {
      const c = h.cluster
      const nc = await client(c.urls)
      const kv = await new Kvm(nc).create('r3', { replicas: 3, history: 1 })
      await kv.put('a', '1')
      const jsm = await jetstreamManager(nc)
      const si = await jsm.streams.info('KV_r3')
      expect(si.config.num_replicas).to.equal(3)
      const leader = await c.streamLeader('KV_r3')
      expect(leader).to.be.oneOf(['n1', 'n2', 'n3'])
      const members = [si.cluster?.leader, ...(si.cluster?.replicas ?? []).map((r) => r.name)].sort()
      expect(members).to.deep.equal(['n1', 'n2', 'n3'])
      const i = await c.leaderIndex('KV_r3')
      expect(c.nodes[i as number]?.name).to.equal(leader)

      // Facts callers rely on: creating an existing bucket with other settings silently binds to the
      // existing one (its replicas and history are kept); an unknown stream is an error, not "no leader".
      const again = await new Kvm(nc).create('r3', { replicas: 1, history: 5 })
      const st = await again.status()
      expect(st.replicas).to.equal(3)
      expect(st.history).to.equal(1)
      await expectShoalError(c.streamLeader('KV_no_such_bucket'), 'E_STORE')
    })

    it('after SIGKILL of the leader of an R3 bucket, fails KV puts only until a new leader is elected, loses no acknowledged write, and takes the node back on restart', async function () {
      this.timeout(90_000)
      const c = h.cluster
      const setup = await client(c.urls)
      await new Kvm(setup).create('failover', { replicas: 3, history: 1 })
      const li = (await c.leaderIndex('KV_failover')) as number
      expect(li).to.be.a('number')
      const killed = c.nodes[li]?.name as string

      // A client on the other two nodes only, so what it sees is the election, not its own reconnect.
      const nc = await client(c.urls.filter((_, i) => i !== li))
      const kv = await new Kvm(nc).open('failover')
      const written = new Map<string, string>()
      for (let k = 0; k < 20; k++) {
        await kv.put(`before.${k}`, `v${k}`)
        written.set(`before.${k}`, `v${k}`)
      }

      await c.kill(li)
      expect(c.nodes[li]?.running).to.equal(false)
      expect(c.nodes[li]?.pid).to.equal(undefined)

      const killedAt = Date.now()
      const errors = new Map<string, number>()
      let failedSince: number | undefined
      let longestFailMs = 0
      let failures = 0
      let recovered = false
      while (Date.now() - killedAt < 45_000) {
        const t = Date.now()
        try {
          await kv.put('after', 'x')
          if (failedSince !== undefined) {
            longestFailMs = Math.max(longestFailMs, Date.now() - failedSince)
            recovered = true
            break
          }
        } catch (err) {
          failures++
          failedSince ??= t
          const what = `${(err as Error).name}: ${(err as Error).message}`
          errors.set(what, (errors.get(what) ?? 0) + 1)
          // Failures come back at once: pace the retries so the loop does not starve the servers.
          await new Promise((r) => setTimeout(r, 25))
        }
      }
      console.log(
        `      (killed leader ${killed}: KV puts failed for ${longestFailMs} ms, ${failures} failed puts: ` +
          `${[...errors].map(([e, n]) => `${e} ×${n}`).join('; ')})`,
      )
      expect(failures, 'puts should fail while the stream has no leader').to.be.greaterThan(0)
      expect(recovered, 'puts never succeeded again').to.equal(true)

      const newLeader = await c.waitForStreamLeader('KV_failover', { not: killed })
      expect(newLeader).to.be.oneOf(c.nodes.filter((_, i) => i !== li).map((n) => n.name))
      for (const [k, v] of written) expect((await kv.get(k))?.string(), k).to.equal(v)

      await c.restart(li)
      expect(c.nodes[li]?.running).to.equal(true)
      // The rejoined node catches up and is a current replica again. Stream info may be answered by
      // a replica that is still catching up (no leader in its answer): poll for the leader's view.
      const jsm = await jetstreamManager(setup)
      const caughtUp = await eventually(async () => {
        const si = await jsm.streams.info('KV_failover').catch(() => undefined)
        const reps = si?.cluster?.replicas ?? []
        const ok = si?.cluster?.leader !== undefined && reps.length === 2 && reps.every((r) => r.current && !r.offline) &&
          reps.some((r) => r.name === killed)
        return ok ? si : undefined
      }, 20_000, 100)
      expect(caughtUp, `${killed} did not become a current replica of KV_failover again`).to.not.equal(undefined)
      // ... and serves reads itself.
      const direct = await client(c.urls[li] as string)
      expect(direct.info?.server_name).to.equal(killed)
      const kvDirect = await new Kvm(direct).open('failover')
      expect((await kvDirect.get('before.19'))?.string()).to.equal('v19')
    })

    it('restarts a node stopped with SIGTERM on the same ports and store: an R1 bucket kept only there is still there', async function () {
      this.timeout(60_000)
      const c = h.cluster
      const setup = await client(c.urls)
      // One replica: the bucket lives in one node's store only, so it survives only if that store does.
      const kv = await new Kvm(setup).create('only-here', { replicas: 1, history: 1 })
      await kv.put('k', 'kept')
      const i = (await c.leaderIndex('KV_only-here')) as number
      expect(i).to.be.a('number')
      const before = { ...c.nodes[i] } as { port: number; clusterPort: number; httpPort: number; storeDir: string; pid: number; url: string }
      await setup.close()

      await c.kill(i, 'SIGTERM')
      expect(c.nodes[i]?.running).to.equal(false)
      expect(isGone(before.pid)).to.equal(true)
      expect(await tcpAccepts(before.port)).to.equal(false)

      await c.restart(i)
      const n = c.nodes[i]
      expect(n?.running).to.equal(true)
      expect(n?.pid).to.be.a('number').and.not.equal(before.pid)
      expect([n?.port, n?.clusterPort, n?.httpPort, n?.storeDir, n?.url]).to.deep.equal([
        before.port, before.clusterPort, before.httpPort, before.storeDir, before.url,
      ])
      const routez = (await (await fetch(`http://127.0.0.1:${n?.httpPort}/routez`)).json()) as { num_routes: number }
      expect(routez.num_routes).to.equal(2)

      const nc = await client(c.urls)
      // The node recovers its streams from its store just after it rejoins: poll briefly.
      const value = await eventually(async () => {
        try {
          return (await (await new Kvm(nc).open('only-here')).get('k'))?.string()
        } catch {
          return undefined
        }
      }, 15_000, 100)
      expect(value).to.equal('kept')
      expect(await c.streamLeader('KV_only-here')).to.equal(n?.name)
    })

    it('pauses a node so that it accepts TCP but answers nothing, and resumes it', async function () {
      const c = h.cluster
      await c.pause(2)
      expect(c.nodes[2]?.paused).to.equal(true)
      expect(await tcpAccepts(c.nodes[2]?.port as number)).to.equal(true)
      const err = await connect({ servers: c.urls[2], timeout: 500, reconnect: false }).then(
        async (nc) => { await nc.close(); return undefined },
        (e: unknown) => e,
      )
      expect(err, 'a paused node should not complete a NATS handshake').to.be.instanceOf(Error)
      await c.resume(2)
      expect(c.nodes[2]?.paused).to.equal(false)
      const nc = await client(c.urls[2] as string)
      expect(nc.info?.server_name).to.equal('n3')
    })
  })

  describe('stop', function () {
    it('leaves no node process running, closes every port and removes the store and config directory; a second stop resolves', async function () {
      this.timeout(60_000)
      const c = await startNatsCluster()
      let stopped = false
      try {
        const pids = c.nodes.map((n) => n.pid as number)
        const ports = c.nodes.flatMap((n) => [n.port, n.clusterPort, n.httpPort])
        const stores = c.nodes.map((n) => n.storeDir)
        const dir = dirname(dirname(stores[0] as string))
        for (const s of stores) expect(existsSync(s)).to.equal(true)
        for (const p of pids) expect(isGone(p)).to.equal(false)

        await Promise.all([c.stop(), c.stop()])
        stopped = true
        await c.stop()
        for (const p of pids) expect(isGone(p), `pid ${p}`).to.equal(true)
        for (const p of ports) expect(await tcpAccepts(p), `port ${p}`).to.equal(false)
        for (const s of stores) expect(existsSync(s)).to.equal(false)
        expect(existsSync(dir)).to.equal(false)
        expect(c.nodes.every((n) => !n.running && n.pid === undefined)).to.equal(true)
        await expectShoalError(c.restart(0), 'E_NATS_SERVER_START')
      } finally {
        if (!stopped) await c.stop()
      }
    })
  })

  describe('options', function () {
    it('rejects a node count or cluster name it cannot use with E_CONFIG naming the option', async function () {
      const e1 = await expectShoalError(startNatsCluster({ nodes: 0 }), 'E_CONFIG')
      expect(e1.message).to.match(/^nodes must be an integer from 1 to 9 \(got 0\)/)
      const e2 = await expectShoalError(startNatsCluster({ clusterName: 'a b' }), 'E_CONFIG')
      expect(e2.message).to.match(/^clusterName must be/)
    })
  })

  describe('when the parent process dies', function () {
    it('kills every node and removes the directory when the parent crashes', async function () {
      this.timeout(60_000)
      const code =
        `import { startNatsCluster } from ${JSON.stringify(clusterPath)}\n` +
        `const c = await startNatsCluster()\n` +
        `process.stdout.write(JSON.stringify({ pids: c.nodes.map((n) => n.pid), ports: c.nodes.map((n) => n.port), store: c.nodes[0].storeDir }) + '\\n')\n` +
        `setTimeout(() => { throw new Error('boom') }, 10)\n`
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const exit = once(child, 'close') as Promise<[number | null, string | null]>
      let out = ''
      let err = ''
      child.stderr.on('data', (d: Buffer) => { err += d.toString() })
      child.stdout.on('data', (d: Buffer) => { out += d.toString() })
      const [status] = await exit
      expect(status).to.not.equal(0)
      const line = out.split('\n')[0] as string
      expect(line, `the parent printed nothing; its stderr: ${err}`).to.not.equal('')
      const info = JSON.parse(line) as { pids: number[]; ports: number[]; store: string }
      expect(info.pids).to.have.length(3)
      // Not our children: no exit event to wait on, so poll with a deadline.
      expect(await eventually(async () => info.pids.every(isGone), 10_000)).to.equal(true)
      for (const p of info.ports) expect(await tcpAccepts(p)).to.equal(false)
      expect(existsSync(dirname(dirname(info.store)))).to.equal(false)
    })
  })

  describe('useNatsCluster', function () {
    let outside: { cluster: unknown } | undefined
    describe('in the suite that calls it', function () {
      const h = useNatsCluster({ waitForJetStream: false })
      outside = h
      it('refuses to hand out the cluster while the suite is only being defined', function () {
        // Checked here because the describe body has run by now; the getter threw there (see below).
        expect(definedTooEarly).to.match(/useNatsCluster: the cluster exists only between/)
      })
      let definedTooEarly = ''
      try {
        void h.url
      } catch (e) {
        definedTooEarly = (e as Error).message
      }
      it('gives the suite a running cluster', function () {
        expect(h.cluster.nodes.every((n) => n.running)).to.equal(true)
        expect(h.urls).to.have.length(3)
        expect(h.url).to.equal(h.urls.join(','))
      })
    })
    describe('after that suite', function () {
      it('has stopped the cluster and refuses to hand it out', function () {
        expect(() => outside?.cluster).to.throw(/useNatsCluster/)
      })
    })
  })
})
