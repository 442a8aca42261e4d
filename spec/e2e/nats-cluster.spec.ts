/**
 * Shoal on a real 3-node NATS cluster with every bucket at 3 replicas: the balancer and the hosts
 * are spread over the nodes (each given only its own node's URL; the cluster tells the clients
 * about the others), and the node leading the shares stream is SIGKILLed mid-job. The job must be
 * exact, no Shoal process may exit, and no host may be declared dead for NATS's fault.
 */

import { expect } from 'chai'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import { useNatsCluster } from '../support/nats-cluster.ts'
import { startCluster, type TestCluster } from '../support/cluster.ts'
import { runShoal } from '../support/shoal-cli.ts'

/** π(2·10⁹). */
const PI_2E9 = 98_222_287

describe('Shoal on a 3-node NATS cluster with replicated buckets', function () {
  this.timeout(180_000)
  const nats = useNatsCluster()
  let c: TestCluster | undefined

  afterEach(async () => {
    await c?.stop()
    c = undefined
    // Bring every node back for the next test.
    for (let i = 0; i < nats.cluster.nodes.length; i++) if (!nats.cluster.nodes[i]!.running) await nats.cluster.restart(i)
  })

  it('creates every bucket with 3 replicas on the cluster', async () => {
    c = await startCluster(nats.url, { hosts: [{ id: 'a', env: { SHOAL_NATS_URL: nats.urls[1]! } }], balancers: [{ id: 'b1', nats: nats.urls[0]! }], env: { SHOAL_NATS_REPLICAS: '3' } })
    const nc = await connect({ servers: nats.urls })
    try {
      const jsm = await jetstreamManager(nc)
      for (const kind of ['jobs', 'shares', 'hosts', 'journal', 'leader']) {
        const si = await jsm.streams.info(`KV_shoal_${c.cluster}_${kind}`)
        expect(si.config.num_replicas, kind).to.equal(3)
      }
      expect((await jsm.streams.info(`OBJ_shoal_${c.cluster}_ckpt`)).config.num_replicas).to.equal(3)
    } finally {
      await nc.close()
    }
  })

  it('warns about buckets of 1 replica on a cluster, naming the command, and `shoal store replicas 3` moves them', async () => {
    c = await startCluster(nats.url, { hosts: [{ id: 'a' }], env: { SHOAL_NATS_REPLICAS: '1' } })
    await c.waitFor(() => /has 1 replica\(s\) on a NATS cluster.*shoal store replicas 3/.test(c!.log('balancer')), 10_000, 'the replica warning')
    const env = { ...c.env }
    const moved = await runShoal(['store', 'replicas', '3', '--json'], env)
    expect(moved.code, moved.stderr).to.equal(0)
    const changed = (JSON.parse(moved.stdout) as { changed: Array<{ stream: string; from: number; to: number }> }).changed
    expect(changed.map((x) => `${x.stream} ${x.from}->${x.to}`).sort()).to.deep.equal(
      ['jobs', 'shares', 'hosts', 'journal', 'leader'].map((k) => `KV_shoal_${c!.cluster}_${k} 1->3`).concat(`OBJ_shoal_${c!.cluster}_ckpt 1->3`).sort(),
    )
    const st = await runShoal(['store', 'status', '--json'], env)
    const streams = (JSON.parse(st.stdout) as { streams: Array<{ replicas: number }> }).streams
    expect(streams).to.have.length(6)
    expect(streams.every((x) => x.replicas === 3)).to.equal(true)
    // The running balancer keeps working on the moved buckets.
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 2_000_000], shares: 2 })
    expect(await job.result()).to.equal(148_933)
  })

  it('survives SIGKILL of the node leading the shares stream mid-job: exact result, no process exits, no host declared dead', async () => {
    const urls = nats.urls
    c = await startCluster(nats.url, {
      balancers: [{ id: 'b1', nats: urls[0]! }],
      hosts: [
        { id: 'a', env: { SHOAL_NATS_URL: urls[1]! } },
        { id: 'b', env: { SHOAL_NATS_URL: urls[2]! } },
        { id: 'c', env: { SHOAL_NATS_URL: urls[0]! } },
      ],
      env: { SHOAL_NATS_REPLICAS: '3', SHOAL_SHARES_CHECKPOINT_MS: '200', SHOAL_BALANCER_MIGRATION_THRESHOLD: '1', SHOAL_BALANCER_SPLIT_MIN_UNITS: '1000000000000' },
    })
    const job = await c.client.submit<number>({ processor: 'count-primes', range: [0, 2e9], shares: 12 })
    await c.waitFor(async () => (await job.fetch(true)).shares!.some((s) => s.state === 'running' && s.unitsDone > 0), 30_000, 'progress')
    const stream = `KV_shoal_${c.cluster}_shares`
    const victim = await nats.cluster.leaderIndex(stream)
    expect(victim, 'the shares stream has a leader').to.not.equal(undefined)
    await nats.cluster.kill(victim!, 'SIGKILL')
    const newLeader = await nats.cluster.waitForStreamLeader(stream, { not: nats.cluster.nodes[victim!]!.name, timeoutMs: 30_000 })
    expect(newLeader).to.not.equal(nats.cluster.nodes[victim!]!.name)
    const result = await job.result()
    expect(result).to.equal(PI_2E9)
    for (const [name, p] of [...c.balancers, ...c.hosts]) expect(p.exitCode, `${name} exited`).to.equal(null)
    const st = await c.client.status()
    expect(st.hosts.map((h) => `${h.hostId} ${h.state}`).sort()).to.deep.equal(['a alive', 'b alive', 'c alive'])
    const warnings = () => c!.log('balancer').split('\n').filter((l) => /"level":[45]0/.test(l)).join('\n').slice(-4000)
    expect(st.failovers, `no share re-dispatched for a lost host; balancer warnings:\n${warnings()}`).to.deep.equal([])
    expect(c.log('balancer')).to.not.match(/"to":"dead"/)
  })
})

