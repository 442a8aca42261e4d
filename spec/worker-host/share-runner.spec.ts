/**
 * Host-level tests of the share runtime: real piscina worker threads, real processors, no NATS.
 * They check that whatever happens to a share — checkpoint and resume, pause and hand over to
 * another runner, split, drop, failure — every unit is counted exactly once.
 *
 * Must never sleep for a fixed time where an event can be awaited, and must keep each test short
 * (the machine has 2 cores).
 */
import { expect } from 'chai'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { burnUnit } from '../../lib/processors/cpu-burn.ts'
import { loadProcessors, type ProcessorRegistry } from '../../lib/processors/registry.ts'
import {
  checkpointClock,
  mergeResults,
  ShareRunner,
  type Checkpoint,
  type RunningShare,
  type ShareDone,
  type ShareFailed,
  type ShareSpec,
} from '../../lib/worker-host/share-runner.ts'
import { ShoalError } from '../../lib/errors.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/processors/${name}`, import.meta.url))

const PI = { 1e8: 5_761_455, 4e8: 21_336_326, 6e8: 31_324_703 } as const

interface Tracked {
  share: RunningShare
  checkpoints: Checkpoint[]
  /** performance.now() at each checkpoint's arrival on the main thread. */
  arrivals: number[]
  /** Resolves with the n-th checkpoint (1-based) once it has arrived. */
  checkpoint(n: number): Promise<Checkpoint>
  /** Resolves on onDone or onFailed, whichever comes. */
  outcome: Promise<{ done?: ShareDone; failed?: ShareFailed }>
  done: ShareDone | undefined
  failed: ShareFailed | undefined
}

let registry: ProcessorRegistry
let seq = 0

function specFor(name: string, from: number, to: number, extra: Partial<ShareSpec> = {}): ShareSpec {
  const entry = registry.get(name)
  if (!entry) throw new Error(`test bug: processor ${name} not registered`)
  return {
    shareId: `share-${++seq}`,
    epoch: 1,
    processorName: name,
    processorUrl: entry.url,
    input: {},
    from,
    to,
    position: from,
    unitsDone: 0,
    ...extra,
  }
}

function track(runner: ShareRunner, spec: ShareSpec): Tracked {
  const waiters: { n: number; resolve: (cp: Checkpoint) => void }[] = []
  let settle!: (o: { done?: ShareDone; failed?: ShareFailed }) => void
  const t: Tracked = {
    share: undefined as unknown as RunningShare,
    checkpoints: [],
    arrivals: [],
    checkpoint: (n) =>
      new Promise((resolve) => {
        const have = t.checkpoints[n - 1]
        if (have) resolve(have)
        else waiters.push({ n, resolve })
      }),
    outcome: new Promise((resolve) => (settle = resolve)),
    done: undefined,
    failed: undefined,
  }
  t.share = runner.start(spec, {
    onCheckpoint(cp) {
      t.checkpoints.push(cp)
      t.arrivals.push(performance.now())
      for (const w of waiters.filter((w) => w.n === t.checkpoints.length)) w.resolve(cp)
    },
    onDone(d) {
      t.done = d
      settle({ done: d })
    },
    onFailed(f) {
      t.failed = f
      settle({ failed: f })
    },
  })
  return t
}

async function resultOf(t: Tracked): Promise<unknown> {
  const o = await t.outcome
  if (o.failed) throw new Error(`share failed: ${o.failed.error.code} ${o.failed.error.message}`)
  return o.done!.result
}

/** A share resumed from a checkpoint, as the target host of a migration would start it. */
function resumeSpec(from: ShareSpec, cp: Checkpoint, epoch: number): ShareSpec {
  return { ...from, epoch, position: cp.position, to: cp.to, state: cp.state, unitsDone: cp.unitsDone }
}

const OPTS = { checkpointMs: 50, stepTargetMs: 5, maxCheckpointBytes: 1 << 20 }

describe('share runner', function () {
  let a: ShareRunner
  let b: ShareRunner

  before(async () => {
    registry = await loadProcessors(['throws.ts', 'big-state.ts', 'sleepy.ts', 'several.ts', 'exits.ts'].map(fixture))
    a = new ShareRunner({ slots: 2, ...OPTS })
    b = new ShareRunner({ slots: 1, ...OPTS })
  })

  afterEach(async () => {
    // A failed test must not leave shares burning CPU for the next one.
    await Promise.all([...a.running(), ...b.running()].map((s) => s.drop()))
  })

  after(async () => {
    await Promise.all([a.close(), b.close()])
  })

  it('counts the primes below 2·10⁶ exactly (148,933)', async () => {
    const t = track(a, specFor('count-primes', 0, 2_000_000))
    expect(await resultOf(t)).to.equal(148_933)
    expect(t.done!.unitsDone).to.equal(2_000_000)
    expect(t.done!.to).to.equal(2_000_000)
  })

  it('gives cpu-burn the same checksum as a direct single loop', async () => {
    const work = 2000
    let direct = 0
    for (let i = 0; i < 3000; i++) direct = (direct + burnUnit(i, work)) >>> 0
    const t = track(a, specFor('cpu-burn', 0, 3000, { input: { workPerUnit: work } }))
    expect(await resultOf(t)).to.equal(direct)
  })

  it('runs an async step to the exact result', async () => {
    const t = track(a, specFor('sum-async', 0, 100_000))
    expect(await resultOf(t)).to.equal((100_000 * 99_999) / 2)
  })

  it('posts a checkpoint about every checkpointMs, with increasing positions and live progress', async () => {
    const spec = specFor('count-primes', 0, 4e8)
    const t = track(a, spec)
    await t.checkpoint(5)
    const p = t.share.progress()
    await t.share.drop()
    const cps = t.checkpoints.slice(0, 5)
    for (let i = 1; i < cps.length; i++) expect(cps[i]!.position).to.be.greaterThan(cps[i - 1]!.position)
    for (const cp of cps) {
      expect(cp).to.include({ shareId: spec.shareId, epoch: 1, to: 4e8 })
      expect(cp.unitsDone).to.equal(cp.position)
      expect(cp.stateBytes).to.be.within(1, 100)
      expect(cp.state).to.have.property('count').that.is.a('number')
    }
    const gaps = t.arrivals.slice(1, 5).map((at, i) => at - t.arrivals[i]!)
    const meanGap = gaps.reduce((x, y) => x + y, 0) / gaps.length
    expect(meanGap, `gaps ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`).to.be.within(40, 150)
    expect(p.position).to.be.at.least(cps[4]!.position)
    expect(p.to).to.equal(4e8)
    expect(p.unitsPerSec).to.be.greaterThan(0)
  })

  it('takes checkpoints on a fixed grid from the share\'s start, each the host\'s lead before it is due', async () => {
    const c = new ShareRunner({ slots: 1, ...OPTS, checkpointMs: 100 })
    try {
      c.setCheckpointLead(30)
      const t = track(c, specFor('count-primes', 0, 4e8))
      await t.checkpoint(5)
      await t.share.drop()
      const cps = t.checkpoints.slice(0, 5)
      const due = cps.map((cp) => cp.dueAt!)
      // Due every 100 ms exactly: a late one does not push the next one back.
      for (let i = 1; i < due.length; i++) expect(due[i]! - due[i - 1]!).to.be.closeTo(100, 1e-6)
      // Taken at the first safe point once the lead (30 ms) before it was due had come: never
      // earlier, and mostly within a step or two of it (a busy machine may stretch a step).
      const early = cps.map((cp) => cp.dueAt! - cp.takenAt!).sort((x, y) => x - y)
      expect(early[early.length - 1], `taken ${early.map((e) => e.toFixed(1)).join(', ')} ms early`).to.be.at.most(30.5)
      expect(early[2], `taken ${early.map((e) => e.toFixed(1)).join(', ')} ms early`).to.be.at.least(10)
    } finally {
      await c.close()
    }
  })

  it('puts the checkpoints of every share of a host on the host\'s grid', async () => {
    const anchor = checkpointClock() + 37.5
    const c = new ShareRunner({ slots: 2, ...OPTS, checkpointMs: 100, checkpointAnchor: anchor })
    try {
      const startedAt = checkpointClock()
      const first = track(c, specFor('count-primes', 0, 4e8))
      // The second share starts in the middle of the first one's period.
      await first.checkpoint(1)
      await new Promise((r) => setTimeout(r, 30))
      const second = track(c, specFor('count-primes', 0, 4e8, { shareId: 'grid-2' }))
      await Promise.all([first.checkpoint(3), second.checkpoint(3)])
      await Promise.all([first.share.drop(), second.share.drop()])
      for (const t of [first, second]) {
        const due = t.checkpoints.slice(0, 3).map((cp) => cp.dueAt!)
        for (const d of due) {
          const k = (d - anchor) / 100
          expect(Math.abs(k - Math.round(k)), `due ${due.join(', ')}: on the grid of ${anchor}`).to.be.below(1e-6)
        }
        for (let i = 1; i < due.length; i++) expect(due[i]! - due[i - 1]!).to.be.closeTo(100, 1e-6)
      }
      // Due after the start (how soon after is the pure spec's: the worker's start-up is not ours to time).
      expect(first.checkpoints[0]!.dueAt!).to.be.greaterThan(startedAt)
    } finally {
      await c.close()
    }
  })

  it('refuses a checkpoint anchor that is not a finite number, naming it', () => {
    expect(() => new ShareRunner({ slots: 1, ...OPTS, checkpointAnchor: Number.NaN })).to.throw(/checkpointAnchor must be a finite number/)
  })

  it('continues a share from one of its checkpoints to the exact answer', async () => {
    const spec = specFor('count-primes', 0, 1e8)
    const first = track(a, spec)
    const cp = await first.checkpoint(1)
    await first.share.drop()
    expect(cp.position).to.be.within(1, 1e8 - 1)
    const resumed = track(a, resumeSpec(spec, cp, 2))
    expect(await resultOf(resumed)).to.equal(PI[1e8])
    expect(resumed.done!.unitsDone).to.equal(1e8)
  })

  it('hands a paused share over to another runner within 100 ms, again and again, and the answer stays exact', async function () {
    const spec = specFor('count-primes', 0, 6e8)
    const runners = [a, b]
    const latencies: number[] = []
    let current = track(a, spec)
    for (let hop = 1; hop <= 4; hop++) {
      await current.checkpoint(1)
      const asked = performance.now()
      const cp = await current.share.pause()
      latencies.push(performance.now() - asked)
      expect(await current.share.whenEnded()).to.equal('paused')
      expect(current.done, 'a paused share never reports done').to.equal(undefined)
      expect(cp.position).to.be.at.least(current.checkpoints[0]!.position)
      expect(cp.epoch).to.equal(hop)
      current = track(runners[hop % 2]!, resumeSpec(spec, cp, hop + 1))
    }
    expect(await resultOf(current)).to.equal(PI[6e8])
    expect(current.done!.unitsDone).to.equal(6e8)
    console.log(`      pause latency (request → checkpoint): ${latencies.map((l) => l.toFixed(1)).join(', ')} ms`)
    for (const l of latencies) expect(l).to.be.below(100)
  })

  it('splits a running share so that the kept part plus the tail run elsewhere give the exact total', async () => {
    const spec = specFor('count-primes', 0, 4e8)
    const head = track(a, spec)
    await head.checkpoint(1)
    const split = await head.share.split()
    expect(split).to.not.equal(null)
    const { keptTo, tail } = split!
    expect(tail).to.deep.equal([keptTo, 4e8])
    expect(head.share.progress().to).to.equal(keptTo)
    const rest = track(b, specFor('count-primes', tail[0], tail[1]))
    const [kept, tailCount] = await Promise.all([resultOf(head), resultOf(rest)])
    expect(head.done!.to).to.equal(keptTo)
    expect(head.done!.unitsDone).to.equal(keptTo)
    expect((kept as number) + (tailCount as number)).to.equal(PI[4e8])
  })

  it('gives away the requested fraction of the remaining range', async () => {
    const to = 2e9
    const t = track(a, specFor('cpu-burn', 0, to, { input: { workPerUnit: 200 } }))
    await t.checkpoint(1)
    const before = t.share.progress().position
    const split = await t.share.split(0.25)
    const after = t.share.progress().position
    await t.share.drop()
    const given = to - split!.keptTo
    // The worker cut at a position between the two readings.
    expect(given).to.be.within(Math.floor(0.25 * (to - after)) - 1, Math.ceil(0.25 * (to - before)))
  })

  it('answers a split with null when fewer than 2 units remain, and keeps running', async () => {
    // Resumed with one unit left, which takes 100 ms: the split is answered before it is done.
    const t = track(a, specFor('sleepy', 0, 2, { input: { msPerUnit: 100 }, position: 1, unitsDone: 1, state: { sum: 0 } }))
    const split = await t.share.split()
    expect(split).to.equal(null)
    expect(t.done, 'the share is still running its last unit').to.equal(undefined)
    expect(await resultOf(t)).to.equal(1)
    expect(await t.share.split()).to.equal(null)
  })

  it('drops a share silently and frees its slot', async () => {
    const t = track(a, specFor('count-primes', 0, 1e9))
    await t.checkpoint(1)
    expect(a.utilisation()).to.equal(0.5)
    const seen = t.checkpoints.length
    await t.share.drop()
    expect(await t.share.whenEnded()).to.equal('dropped')
    expect(a.utilisation()).to.equal(0)
    expect(a.running()).to.have.length(0)
    expect(t.done).to.equal(undefined)
    expect(t.failed).to.equal(undefined)
    expect(t.checkpoints.length, 'no checkpoint after the drop').to.equal(seen)
  })

  it('reports a processor that throws with E_PROCESSOR_THREW and its message, and keeps running other shares', async () => {
    const t = track(a, specFor('throws-at', 0, 10_000))
    const { failed } = await t.outcome
    expect(failed!.error.code).to.equal('E_PROCESSOR_THREW')
    expect(failed!.error.message).to.contain('unit 1234 is cursed').and.contain('throws-at').and.contain(t.share.shareId)
    expect(failed!.checkpoint).to.equal(undefined)
    expect(await t.share.whenEnded()).to.equal('failed')
    const next = track(a, specFor('count-primes', 0, 2_000_000))
    expect(await resultOf(next)).to.equal(148_933)
  })

  it('fails the share of a worker thread that dies, and runs the next share on a new thread', async () => {
    const t = track(b, specFor('exits', 0, 10))
    const { failed } = await t.outcome
    expect(failed!.error.code).to.equal('E_PROCESSOR_THREW')
    expect(failed!.error.message).to.contain('worker thread failed').and.contain(t.share.shareId)
    expect(b.utilisation()).to.equal(0)
    const next = track(b, specFor('count-primes', 0, 2_000_000))
    expect(await resultOf(next)).to.equal(148_933)
  })

  it('hands the last good checkpoint to onFailed', async () => {
    // Far enough that several checkpoints come first (about 0.4 s of counting here).
    const t = track(a, specFor('throws-at', 0, 1e10, { input: { cursedUnit: 5e8 } }))
    const { failed } = await t.outcome
    expect(failed!.error.message).to.contain('unit 500000000 is cursed')
    expect(t.checkpoints.length).to.be.greaterThan(0)
    expect(failed!.checkpoint).to.deep.equal(t.checkpoints.at(-1))
    expect(failed!.checkpoint!.position).to.be.below(5e8)
  })

  it('refuses input the processor rejects, with E_BAD_JOB', async () => {
    const t = track(a, specFor('cpu-burn', 0, 10, { input: { workPerUnit: -1 } }))
    const { failed } = await t.outcome
    expect(failed!.error.code).to.equal('E_BAD_JOB')
    expect(failed!.error.message).to.contain('workPerUnit')
  })

  it('fails with E_PROCESSOR_LOAD when the module has no processor of that name', async () => {
    const t = track(a, specFor('count-primes', 0, 10, { processorName: 'no-such-processor' }))
    const { failed } = await t.outcome
    expect(failed!.error.code).to.equal('E_PROCESSOR_LOAD')
    expect(failed!.error.message).to.contain("'no-such-processor'")
  })

  it('rejects a pause with E_NO_SUCH_SHARE once the share has finished', async () => {
    const t = track(a, specFor('count-primes', 0, 1000))
    await t.outcome
    const err = await t.share.pause().then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).to.be.instanceOf(ShoalError)
    expect((err as ShoalError).code).to.equal('E_NO_SUCH_SHARE')
  })

  it('refuses to start a share that is already running here, until the old run is dropped', async () => {
    const spec = specFor('sleepy', 0, 100, { input: { msPerUnit: 200 } })
    const old = track(a, spec)
    expect(() => a.start({ ...spec, epoch: 2 }, { onCheckpoint() {}, onDone() {}, onFailed() {} })).to.throw(/already running/)
    // The old run is mid-unit; the new epoch may start at once and the old one stays silent.
    const dropped = old.share.drop()
    const next = track(a, { ...spec, epoch: 2, from: 0, to: 2, input: { msPerUnit: 1 } })
    expect(await resultOf(next)).to.equal(1)
    await dropped
    expect(old.done).to.equal(undefined)
    expect(a.running()).to.have.length(0)
  })

  describe('with a checkpoint size limit', () => {
    let small: ShareRunner
    before(() => {
      small = new ShareRunner({ slots: 1, checkpointMs: 50, stepTargetMs: 5, maxCheckpointBytes: 16 * 1024 })
    })
    after(() => small.close())

    it('fails a share whose checkpoint state outgrows the limit with E_CHECKPOINT_TOO_LARGE', async () => {
      const t = track(small, specFor('big-state', 0, 1e6))
      const { failed } = await t.outcome
      expect(failed!.error.code).to.equal('E_CHECKPOINT_TOO_LARGE')
      expect(failed!.error.message).to.contain(t.share.shareId).and.contain('16384')
      expect(failed!.error.details!.stateBytes).to.be.greaterThan(16 * 1024)
    })

    it('fails a pause whose state is over the limit, rejecting the pause with the same error', async () => {
      const state = { blobs: Array.from({ length: 20 }, () => 'x'.repeat(1024)) }
      const t = track(small, specFor('big-state', 0, 1e6, { position: 20, unitsDone: 20, state }))
      const err = await t.share.pause().then(
        () => null,
        (e: unknown) => e,
      )
      expect((err as ShoalError).code).to.equal('E_CHECKPOINT_TOO_LARGE')
      const { failed } = await t.outcome
      expect(failed!.error.code).to.equal('E_CHECKPOINT_TOO_LARGE')
      // The share started from a checkpoint, which stays the last good one.
      expect(failed!.checkpoint).to.include({ position: 20, unitsDone: 20 })
    })
  })
})

describe('share runner close', () => {
  it('ends running shares silently and rejects their pending pauses', async () => {
    registry = await loadProcessors([fixture('sleepy.ts')])
    const runner = new ShareRunner({ slots: 2, ...OPTS })
    const busy = track(runner, specFor('count-primes', 0, 1e9))
    // One 5 s unit: no safe point comes before the close.
    const stuck = track(runner, specFor('sleepy', 0, 1, { input: { msPerUnit: 5000 } }))
    await busy.checkpoint(1)
    const seen = busy.checkpoints.length
    const pause = stuck.share.pause().then(
      () => null,
      (e: unknown) => e,
    )
    await runner.close()
    expect(await busy.share.whenEnded()).to.equal('dropped')
    expect(await stuck.share.whenEnded()).to.equal('dropped')
    expect(((await pause) as ShoalError).code).to.equal('E_NO_SUCH_SHARE')
    for (const t of [busy, stuck]) {
      expect(t.done).to.equal(undefined)
      expect(t.failed).to.equal(undefined)
    }
    expect(busy.checkpoints.length).to.equal(seen)
    expect(runner.running()).to.have.length(0)
    expect(() => runner.start(specFor('count-primes', 0, 10), { onCheckpoint() {}, onDone() {}, onFailed() {} })).to.throw(/closed/)
  })
})

describe('mergeResults', () => {
  before(async () => {
    registry = await loadProcessors([fixture('several.ts')])
  })

  it('merges in the given order', () => {
    const concat = registry.get('concat')!.processor
    expect(mergeResults(concat, ['ab', 'cd', 'ef'], {})).to.equal('abcdef')
    expect(mergeResults(concat, ['ef', 'ab'], {})).to.equal('efab')
    expect(mergeResults(concat, ['only'], {})).to.equal('only')
  })

  it('wraps a merge that throws in E_PROCESSOR_THREW with the original message', () => {
    const p = { ...registry.get('count-primes')!.processor, merge: () => { throw new RangeError('no merging today') } }
    expect(() => mergeResults(p, [1, 2], {}))
      .to.throw(ShoalError, /no merging today/)
      .with.property('code', 'E_PROCESSOR_THREW')
  })

  it('refuses an empty list of results', () => {
    expect(() => mergeResults(registry.get('count-primes')!.processor, [], {})).to.throw(ShoalError, /no results/)
  })
})
