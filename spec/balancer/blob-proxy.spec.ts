/**
 * BlobProxy with an in-memory store: chunks in order make one object, anything else is refused
 * with the reason, and reads come back in slices.
 */

import { expect } from 'chai'
import { BlobProxy } from '../../lib/balancer/blob-proxy.ts'
import { ShoalError } from '../../lib/errors.ts'

function memoryStore() {
  const objects = new Map<string, Uint8Array>()
  let reads = 0
  return {
    objects,
    reads: () => reads,
    putBytes: async (name: string, data: Uint8Array) => void objects.set(name, data),
    getBytes: async (name: string) => {
      reads++
      const d = objects.get(name)
      if (!d) throw new ShoalError('E_STORE', `checkpoint state ${name} is missing`)
      return d
    },
  }
}

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * seed) % 251)
const code = async (p: Promise<unknown>) => p.then(() => 'none', (e: ShoalError) => e.code)

describe('BlobProxy', () => {
  it('assembles chunks sent in order into one object, stored once the last arrives, and reads it back in slices', async () => {
    const store = memoryStore()
    const proxy = new BlobProxy(store, { maxBytes: 10_000 })
    const data = bytes(2500, 7)
    for (let i = 0; i < 3; i++) {
      await proxy.put('h1', 'a-s0.1.h1.1', i, 3, 2500, data.subarray(i * 1000, (i + 1) * 1000), 0)
      expect(store.objects.has('a-s0.1.h1.1')).to.equal(i === 2)
    }
    expect(store.objects.get('a-s0.1.h1.1')).to.deep.equal(data)
    const parts: number[] = []
    for (let off = 0; off < 2500; off += 1000) {
      const r = await proxy.get('a-s0.1.h1.1', off, 1000)
      expect(r.total).to.equal(2500)
      parts.push(...r.chunk)
    }
    expect(Uint8Array.from(parts)).to.deep.equal(data)
    expect(store.reads(), 'a state just stored is read from the cache').to.equal(0)
    expect(proxy.uploading()).to.equal(0)
  })

  it('refuses a chunk out of order, a state over the limit, and chunks that add up to more than announced', async () => {
    const proxy = new BlobProxy(memoryStore(), { maxBytes: 1000 })
    expect(await code(proxy.put('h1', 'n', 1, 2, 100, bytes(50), 0))).to.equal('E_STORE')
    expect(await code(proxy.put('h1', 'n', 0, 1, 5000, bytes(50), 0))).to.equal('E_CHECKPOINT_TOO_LARGE')
    await proxy.put('h1', 'n', 0, 2, 60, bytes(50), 0)
    expect(await code(proxy.put('h1', 'n', 1, 2, 60, bytes(50), 0))).to.equal('E_MSG_INVALID')
    expect(await code(proxy.put('h1', 'n', 2, 2, 60, bytes(5), 0))).to.equal('E_MSG_INVALID')
  })

  it('keeps uploads of different hosts apart, bounds how many run at once and drops idle ones', async () => {
    const proxy = new BlobProxy(memoryStore(), { maxBytes: 1000, maxUploads: 2, uploadIdleMs: 100 })
    await proxy.put('h1', 'n', 0, 2, 20, bytes(10), 0)
    await proxy.put('h2', 'n', 0, 2, 20, bytes(10), 0)
    expect(await code(proxy.put('h3', 'n', 0, 2, 20, bytes(10), 0))).to.equal('E_STORE')
    // Later than the idle limit: both uploads are gone, a new one may start, the old ones must restart.
    await proxy.put('h3', 'n', 0, 2, 20, bytes(10), 500)
    expect(await code(proxy.put('h1', 'n', 1, 2, 20, bytes(10), 500))).to.equal('E_STORE')
  })

  it('bounds the read cache, and forgets a deleted object', async () => {
    const store = memoryStore()
    store.objects.set('a', bytes(600))
    store.objects.set('b', bytes(600))
    const proxy = new BlobProxy(store, { maxBytes: 10_000, cacheBytes: 1000 })
    await proxy.get('a', 0, 10)
    await proxy.get('b', 0, 10)
    await proxy.get('a', 0, 10)
    expect(store.reads(), 'b pushed a out of a 1000-byte cache').to.equal(3)
    proxy.forget('a')
    store.objects.delete('a')
    expect(await code(proxy.get('a', 0, 10))).to.equal('E_STORE')
  })
})
