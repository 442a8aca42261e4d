/**
 * A pool larger than pool.maxHeartbeatsPerSec allows beats less often (issue 12, point 5), with
 * real processes: the leader announces the longer period, every host takes it and says so in its
 * heartbeats, nobody is suspected for beating slower, and a host that dies is still declared
 * dead, after hostDeadMs scaled by its period. Three hosts stand for a large pool: a cap of 4
 * heartbeats/s makes their period 1 s (12/s at 250 ms, 6 at 500, 3 at 1,000).
 */

import { expect } from 'chai'
import { useNatsServer } from '../support/nats.ts'
import { startCluster, killAndWait, type TestCluster } from '../support/cluster.ts'

describe('heartbeat period that grows with the pool', function () {
  this.timeout(90_000)
  const nats = useNatsServer()
  let c: TestCluster | undefined
  const lines: string[] = []
  afterEach(async () => c?.stop())

  it('slows every host to the announced period, suspects none for it, and still declares a killed one dead after hostDeadMs × 4', async () => {
    c = await startCluster(nats.url, {
      hosts: [{ id: 'p1' }, { id: 'p2' }, { id: 'p3' }],
      env: { SHOAL_POOL_MAX_HEARTBEATS_PER_SEC: '4' },
      onLine: (name, line) => {
        if (name === 'b1') lines.push(line)
      },
    })
    const cl = c
    await cl.waitFor(async () => (await cl.client.hosts()).filter((h) => h.heartbeatMs === 1000).length === 3, 20_000, 'every host to beat every 1000 ms')
    expect(lines.some((l) => l.includes('hosts now beat every 1000 ms')), 'the balancer says why').to.equal(true)
    const suspectsBefore = lines.filter((l) => /"to":"suspect"/.test(l)).length

    const killedAt = Date.now()
    await killAndWait(cl.hosts.get('p3')!, 'SIGKILL')
    await cl.waitFor(async () => (await cl.client.hosts()).some((h) => h.hostId === 'p3' && h.state === 'dead'), 15_000, 'p3 to be declared dead')
    const detectedMs = Date.now() - killedAt
    // Its last beat came at most one period (1 s) before the kill; dead 4 × hostDeadMs after it.
    expect(detectedMs).to.be.within(4000 - 1000 - 100, 4000 + 1500)
    // Four periods and more passed meanwhile: the survivors, beating every second, were never
    // taken for suspect, which a 600 ms suspect time unscaled would have done at every beat.
    const suspects = lines.filter((l) => /"to":"suspect"/.test(l)).slice(suspectsBefore)
    expect(suspects.filter((l) => !l.includes('"host":"p3"')), 'survivors suspected').to.deep.equal([])
    const survivors = (await cl.client.hosts()).filter((h) => h.hostId !== 'p3')
    expect(survivors.map((h) => h.state)).to.deep.equal(['alive', 'alive'])
  })
})
