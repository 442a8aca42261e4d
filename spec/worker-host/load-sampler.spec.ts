/**
 * Tests of the host's load sampler: the pure parsers (CPU lists, /proc/stat), the arithmetic that
 * restricts machine load to the CPUs the host may use, that a failed sample keeps the previous
 * figures, and — for real, in child processes pinned with taskset — that a host pinned to CPU 0
 * finds CPU 0 only and sees a CPU hog on CPU 0 as load that is not its own.
 *
 * Must never sleep for a fixed time where an event can be awaited (samples are awaited through
 * the sampler's onSample, children through their output), and must never leave a child running.
 */
import { expect } from 'chai'
import { ChildLines, pinnedFixture, TASKSET, tasksetUnavailable } from './fixtures/child-lines.ts'
import {
  allowedCpusFromStatus,
  LoadSampler,
  MIN_CPU_WINDOW_MS,
  parseCpuList,
  parseProcStat,
  type CpuTimes,
  type LoadSample,
} from '../../lib/worker-host/load-sampler.ts'

describe('parseCpuList', () => {
  const good: [string, number[]][] = [
    ['0', [0]],
    ['0-3', [0, 1, 2, 3]],
    ['0,2-3,7', [0, 2, 3, 7]],
    ['5-5', [5]],
    ['  1\n', [1]],
    ['7,1-2', [1, 2, 7]],
    ['0-2,1-3', [0, 1, 2, 3]],
    ['64-65', [64, 65]],
  ]
  for (const [text, ids] of good) {
    it(`reads ${JSON.stringify(text)} as CPUs ${ids.join(', ')}`, () => {
      expect(parseCpuList(text)).to.deep.equal(ids)
    })
  }

  const bad = ['', '   ', 'a', '3-1', '1-', '-1', '1,,2', '1,', ',1', '0x1', '1 2', '1.5', '0-3:2', '0-70000', '+1']
  for (const text of bad) {
    it(`refuses ${JSON.stringify(text)} with null`, () => {
      expect(parseCpuList(text)).to.equal(null)
    })
  }
})

describe('allowedCpusFromStatus', () => {
  const status = (line: string) => `Name:\tnode\nState:\tS (sleeping)\nCpus_allowed:\t85\n${line}Mems_allowed_list:\t0\n`

  it('reads the Cpus_allowed_list line of a /proc/<pid>/status text', () => {
    expect(allowedCpusFromStatus(status('Cpus_allowed_list:\t0,2,7\n'))).to.deep.equal([0, 2, 7])
  })

  it('answers null when the line is missing or malformed', () => {
    expect(allowedCpusFromStatus(status(''))).to.equal(null)
    expect(allowedCpusFromStatus(status('Cpus_allowed_list:\t\n'))).to.equal(null)
    expect(allowedCpusFromStatus(status('Cpus_allowed_list:\t2-0\n'))).to.equal(null)
  })
})

describe('parseProcStat', () => {
  // CPU 1 offline: ids must come from the line, not from the order of lines.
  const stat = [
    'cpu  300 0 100 1000 10 0 0 0 0 0',
    'cpu0 100 1 50 500 5 2 3 4 0 0',
    'cpu2 200 0 50 500 5 0 0 0 7 0',
    'intr 12345 0 0',
    'ctxt 999',
  ].join('\n')

  it('keys CPUs by the id in their line, counting steal, irq and softirq as busy and iowait as idle', () => {
    const times = parseProcStat(stat)!
    expect([...times.keys()]).to.deep.equal([0, 2])
    // user + nice + system + irq + softirq + steal; total adds idle + iowait.
    expect(times.get(0)).to.deep.equal({ busy: 100 + 1 + 50 + 2 + 3 + 4, total: 160 + 500 + 5 })
    // Guest time (7) is already inside user: not added again.
    expect(times.get(2)).to.deep.equal({ busy: 250, total: 755 })
  })

  it('reads an old kernel line with only user, nice, system and idle', () => {
    expect(parseProcStat('cpu0 10 0 5 85\n')!.get(0)).to.deep.equal({ busy: 15, total: 100 })
  })

  it('answers null when no line is a well-formed per-CPU line', () => {
    expect(parseProcStat('')).to.equal(null)
    expect(parseProcStat('cpu  1 2 3 4\nintr 5\n')).to.equal(null)
    expect(parseProcStat('cpu0 1 2 x 4\ncpu1 1 2\n')).to.equal(null)
  })
})

/**
 * Fake per-CPU counters: every call advances each CPU by 100 ticks, of which `busyPerCall[id]` busy.
 * `failFrom` makes every call from that one on throw.
 */
function fakeCpus(busyPerCall: Record<number, number>, failFrom = Infinity) {
  let calls = 0
  return () => {
    if (++calls >= failFrom) throw new Error('counters unreadable')
    return new Map<number, CpuTimes>(Object.entries(busyPerCall).map(([id, busy]) => [Number(id), { busy: busy * calls, total: 100 * calls }]))
  }
}

/** A period the sampler never skips (just over its shortest CPU window). */
const PERIOD_MS = Math.max(100, MIN_CPU_WINDOW_MS + 20)

/** Starts the sampler and resolves with its first `n` samples. */
function samples(make: (onSample: (s: LoadSample) => void) => LoadSampler, n: number): Promise<LoadSample[]> {
  return new Promise((resolve) => {
    const got: LoadSample[] = []
    const sampler = make((s) => {
      got.push({ ...s })
      if (got.length === n) {
        sampler.stop()
        resolve(got)
      }
    })
    sampler.start()
  })
}

describe('LoadSampler (fake CPU counters)', () => {
  it('counts only the CPUs the process may run on', async () => {
    // CPU 0 is fully busy, CPU 1 idle, CPU 2 a quarter busy.
    const cpus = { 0: 100, 1: 0, 2: 25 }
    const on = (allowed: number[]) =>
      samples((onSample) => new LoadSampler(PERIOD_MS, { onSample, cpuTimes: fakeCpus(cpus), allowedCpus: () => allowed }), 1)
    const [[only0], [only1], [both12]] = await Promise.all([on([0]), on([1]), on([1, 2])])
    expect(only0!.cpuMachine).to.equal(1)
    expect(only1!.cpuMachine).to.equal(0)
    expect(both12!.cpuMachine).to.equal(0.125)
  })

  it('keeps the previous figures when the CPU counters cannot be read, without throwing', async () => {
    // The baseline and the first sample read fine; every later read throws.
    const got = await samples(
      (onSample) => new LoadSampler(PERIOD_MS, { onSample, cpuTimes: fakeCpus({ 0: 60 }, 3), allowedCpus: () => [0] }),
      3,
    )
    expect(got.map((s) => s.cpuMachine)).to.deep.equal([0.6, 0.6, 0.6])
    expect(got[2]!.cpuShoal).to.equal(got[0]!.cpuShoal)
  })

  it('falls back to all CPUs when the allowed list cannot be read', () => {
    const sampler = new LoadSampler(250, {
      allowedCpus: () => {
        throw new Error('no procfs')
      },
    })
    expect(sampler.allowedCpus.length).to.be.at.least(1)
    expect(sampler.allowedCpus).to.deep.equal(sampler.allowedCpus.map((_, i) => i))
  })
})

describe('LoadSampler (real CPUs, pinned with taskset)', function () {
  let children: ChildLines[] = []

  beforeEach(function () {
    const why = tasksetUnavailable()
    if (why) {
      console.log(`      skipped: ${why}`)
      this.skip()
    }
  })

  afterEach(() => {
    for (const c of children) c.kill()
    children = []
  })

  it('finds CPU 0 only when started under taskset -c 0, as many as availableParallelism()', async () => {
    const child = pinnedFixture('0', 'sample-load.ts')
    children.push(child)
    const found = await child.json<{ allowedCpus: number[]; availableParallelism: number }>(5000)
    expect(found.allowedCpus).to.deep.equal([0])
    expect(found.availableParallelism).to.equal(found.allowedCpus.length)
  })

  it('sees a CPU hog on its own CPU as load that is not its own (cpuMachine − cpuShoal above 0.5) within a second', async function () {
    this.timeout(10_000)
    const sampler = pinnedFixture('0', 'sample-load.ts', ['--samples'])
    children.push(sampler)
    await sampler.json(5000) // started: what it found
    // The hog starts after the sampler so it does not slow the sampler's start-up on the same CPU.
    const hog = new ChildLines(TASKSET, ['-c', '0', process.execPath, '-e', 'console.log(Date.now()); for (;;) {}'])
    children.push(hog)
    const hogFrom = Number(await hog.next(5000))
    // Four windows that began after the hog was running: about a second of heartbeats.
    const external: number[] = []
    while (external.length < 4) {
      const s = await sampler.json<{ from: number; to: number; cpuMachine: number; cpuShoal: number }>(2000)
      if (s.from >= hogFrom) external.push(s.cpuMachine - s.cpuShoal)
    }
    console.log(`      external load on CPU 0 with a hog: ${external.map((x) => x.toFixed(2)).join(', ')}`)
    for (const x of external) expect(x).to.be.above(0.5)
    // Whole-machine figures on two cores would read about 0.5 here: the mean shows the restriction.
    expect(external.reduce((a, b) => a + b, 0) / external.length).to.be.above(0.8)
  })
})
