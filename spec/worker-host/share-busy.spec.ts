/**
 * Tests of the busy fraction a share reports (its CPU demand, from event-loop utilisation in the
 * worker thread): ≈ 1 for a CPU-bound share — also when it only gets half a core, which is the
 * point, since that is how contention shows up as load above 1 — and well below 1 for a share
 * whose steps wait on timers. Real piscina workers and real processors.
 *
 * Must never sleep for a fixed time where an event can be awaited; readings are taken at
 * checkpoints, which come after at least two busy windows.
 */
import { expect } from 'chai'
import { fileURLToPath } from 'node:url'
import { shareLoadSchema } from '../../lib/protocol/messages.ts'
import { loadProcessors, type ProcessorRegistry } from '../../lib/processors/registry.ts'
import { ShareRunner, type Checkpoint, type RunningShare, type ShareSpec } from '../../lib/worker-host/share-runner.ts'
import { pinnedFixture, tasksetUnavailable } from './fixtures/child-lines.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/processors/${name}`, import.meta.url))

let registry: ProcessorRegistry
let seq = 0

function spec(name: string, input: unknown, to: number): ShareSpec {
  return {
    shareId: `busy-s${++seq}`,
    epoch: 1,
    processorName: name,
    processorUrl: registry.get(name)!.url,
    input,
    from: 0,
    to,
    position: 0,
    unitsDone: 0,
  }
}

/** Starts a share and resolves with its handle once its first checkpoint has arrived. */
function startAndCheckpoint(runner: ShareRunner, s: ShareSpec): { share: RunningShare; checkpointed: Promise<Checkpoint> } {
  let share!: RunningShare
  const checkpointed = new Promise<Checkpoint>((resolve, reject) => {
    share = runner.start(s, {
      onCheckpoint: resolve,
      onDone: () => reject(new Error(`share ${s.shareId} finished before its first checkpoint`)),
      onFailed: (f) => reject(new Error(`share ${s.shareId} failed: ${f.error.message}`)),
    })
  })
  return { share, checkpointed }
}

describe('share busy fraction', function () {
  let runner: ShareRunner

  before(async () => {
    registry = await loadProcessors([fixture('sleepy.ts')])
    // Checkpoints after 600 ms: the busy windows (250 ms) before them are past start-up.
    runner = new ShareRunner({ slots: 2, checkpointMs: 600, stepTargetMs: 5, maxCheckpointBytes: 1 << 20 })
  })

  afterEach(async () => {
    await Promise.all(runner.running().map((s) => s.drop()))
  })

  after(() => runner.close())

  it('reads a CPU-bound share (cpu-burn) as busy above 0.8 and a share that waits on a timer as busy below 0.5', async () => {
    const burn = startAndCheckpoint(runner, spec('cpu-burn', { workPerUnit: 2000 }, 1e12))
    // Each unit waits 20 ms on a timer and then does a few additions.
    const sleepy = startAndCheckpoint(runner, spec('sleepy', { msPerUnit: 20 }, 1e6))
    await Promise.all([burn.checkpointed, sleepy.checkpointed])
    const busy = { burn: burn.share.progress().busy, sleepy: sleepy.share.progress().busy }
    console.log(`      busy: cpu-burn ${busy.burn}, sleepy ${busy.sleepy}`)
    expect(busy.burn).to.be.a('number').above(0.8).and.at.most(1)
    expect(busy.sleepy).to.be.a('number').at.least(0).and.below(0.5)
  })

  it('leaves busy unknown (undefined, not 0) until the share has finished its first step', async () => {
    // Units of 150 ms: the first step ends about 150 ms after start.
    const share = runner.start(spec('sleepy', { msPerUnit: 150 }, 3), { onCheckpoint() {}, onDone() {}, onFailed() {} })
    const readings: { position: number; busy: number | undefined }[] = []
    const deadline = Date.now() + 3000
    for (;;) {
      const p = share.progress()
      readings.push({ position: p.position, busy: p.busy })
      if (p.busy !== undefined || Date.now() > deadline) break
      await new Promise((r) => setTimeout(r, 5))
    }
    await share.drop()
    const last = readings.at(-1)!
    expect(last.busy, 'busy is measured after the first step').to.be.a('number').below(0.5)
    expect(last.position).to.be.at.least(1)
    const before = readings.filter((r) => r.position === 0)
    expect(before.length, 'readings before the first step ended').to.be.greaterThan(0)
    for (const r of before) expect(r.busy).to.equal(undefined)
  })

  it('reads two CPU-bound shares that share one CPU as busy above 0.8 each, though each gets about half of it', async function () {
    const why = tasksetUnavailable()
    if (why) {
      console.log(`      skipped: ${why}`)
      this.skip()
    }
    const child = pinnedFixture('0', 'contended-shares.ts')
    try {
      const r = await child.json<{ busy: (number | undefined)[]; cpuPerWall: number; availableParallelism: number }>(8000)
      console.log(`      busy under contention: ${r.busy.join(', ')} (process CPU / wall ${r.cpuPerWall.toFixed(2)})`)
      // The premise: two busy threads really had one CPU between them.
      expect(r.availableParallelism).to.equal(1)
      expect(r.cpuPerWall).to.be.below(1.15)
      for (const b of r.busy) expect(b).to.be.a('number').above(0.8)
    } finally {
      child.kill()
    }
  })
})

describe('heartbeat share entry', () => {
  const entry = { shareId: 'job1-s1', epoch: 2, position: 10, to: 100, unitsDone: 10, unitsPerSec: 5 }

  it('carries busy as an optional fraction, so heartbeats of hosts that do not measure it still validate', () => {
    expect(shareLoadSchema.safeParse(entry).success).to.equal(true)
    expect(shareLoadSchema.safeParse({ ...entry, busy: 0 }).success).to.equal(true)
    expect(shareLoadSchema.parse({ ...entry, busy: 0.97 }).busy).to.equal(0.97)
  })

  it('refuses a busy outside 0..1', () => {
    for (const busy of [-0.1, 1.01, Number.NaN, '0.5']) {
      expect(shareLoadSchema.safeParse({ ...entry, busy }).success, `busy ${String(busy)}`).to.equal(false)
    }
  })
})
