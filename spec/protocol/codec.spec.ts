/**
 * Behaviour of lib/protocol/codec.ts against the schemas of lib/protocol/messages.ts: one valid
 * example of every message type survives encode → decode unchanged (large integers, nested
 * processor state and byte arrays included); bytes that are not msgpack, messages of the wrong
 * shape and oversized data are rejected with the right cause and never thrown; encoding past the
 * size limit throws E_MSG_TOO_LARGE; RejectCounter counts by subject and cause.
 *
 * Must never do I/O: the codec is pure and so are these tests.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { Codec, MAX_REJECT_SUBJECTS, OTHER_SUBJECT, RejectCounter, type RejectCause } from '../../lib/protocol/codec.ts'
import { ShoalError, type WireError } from '../../lib/errors.ts'
import {
  apiReplySchema,
  apiRequestSchema,
  checkpointSchema,
  heartbeatSchema,
  hostCommandSchema,
  hostReplySchema,
  jobEventSchema,
  leaveSchema,
  presenceSchema,
  reportReplySchema,
  reportSchema,
  type CheckpointMsg,
  type Heartbeat,
  type JobSummary,
} from '../../lib/protocol/messages.ts'
import type { z } from 'zod'

const MAX = Number.MAX_SAFE_INTEGER
const codec = new Codec(1 << 20)

/** Processor-owned state with everything a processor may legitimately keep in it. */
const nestedState = {
  primes: [2, 3, 5, 7, 11],
  cursor: { at: MAX - 1, lo: -(2 ** 40), ratio: 0.125, label: 'sieve ✓ 素数' },
  flags: [true, false, null],
  deep: { a: { b: { c: [{ d: [1, [2, [3]]] }] } } },
  bitmap: new Uint8Array([0, 1, 127, 128, 255]),
  empty: { list: [], map: {}, text: '' },
}

const wireError: WireError = {
  code: 'E_JOB_FAILED',
  message: 'job failed',
  retryable: false,
  details: { shareId: 'job-1-s3', attempts: 2 },
  cause: { code: 'E_PROCESSOR_THREW', message: 'TypeError: boom', retryable: false, details: { stack: 'at step' } },
}

const checkpoint: CheckpointMsg = {
  shareId: 'job-1-s3',
  epoch: 7,
  position: MAX - 10,
  to: MAX,
  state: nestedState,
  unitsDone: 2 ** 52,
  stateBytes: 1234,
}

const heartbeat: Heartbeat = {
  v: 1,
  t: 'hb',
  hostId: 'host_A-1',
  seq: 2 ** 40,
  startedAt: 1_700_000_000_123.5,
  capacity: { slots: 8, cores: 16, memoryBytes: 64 * 2 ** 30 },
  tags: { zone: 'eu-1', gpu: 'none' },
  processors: ['count-primes', 'cpu-burn'],
  load: { cpuMachine: 0.75, cpuShoal: 0.5, memFreeBytes: 2 ** 35, busySlots: 4, utilisation: 0.5 },
  shares: [
    { shareId: 'job-1-s0', epoch: 1, position: MAX - 1, to: MAX, unitsDone: 2 ** 53 - 2, unitsPerSec: 1e6 },
    { shareId: 'job-2-s10', epoch: 0, position: 0, to: 10, unitsDone: 0, unitsPerSec: 0 },
  ],
}

const jobSummary: JobSummary = {
  jobId: 'job-1',
  processor: 'count-primes',
  state: 'completed',
  from: 0,
  to: MAX,
  unitsTotal: MAX,
  unitsDone: MAX,
  sharesTotal: 2,
  sharesDone: 2,
  submittedAt: 1_700_000_000_000,
  finishedAt: 1_700_000_009_000,
  elapsedMs: 9000,
  reason: 'waiting for a free slot',
  result: { count: 2 ** 50, sample: [2, 3, 5] },
  error: wireError,
  shares: [
    {
      shareId: 'job-1-s0',
      jobId: 'job-1',
      from: 0,
      to: 2 ** 52,
      position: 2 ** 52,
      unitsDone: 2 ** 52,
      state: 'done',
      epoch: 3,
      host: null,
      hosts: ['host-a', 'host-b'],
    },
  ],
}

type Example = { name: string; schema: z.ZodType; msg: unknown }

/** One valid example of every message type in messages.ts. */
const migration = {
  shareId: 'job-1-s3',
  jobId: 'job-1',
  fromHost: 'host-a',
  toHost: 'host-b',
  reason: 'manual',
  epoch: 4,
  at: 1_700_000_000_000,
  ok: true,
  stunMs: 3.25,
  pauseMs: 1.5,
  checkpointBytes: 65536,
}

const examples: Example[] = [
  { name: 'heartbeat', schema: heartbeatSchema, msg: heartbeat },
  { name: 'leave', schema: leaveSchema, msg: { v: 1, t: 'leave', hostId: 'host-a' } },
  {
    name: 'host command assign',
    schema: hostCommandSchema,
    msg: {
      v: 1,
      t: 'assign',
      term: 3,
      share: {
        shareId: 'job-1-s3',
        jobId: 'job-1',
        epoch: 2,
        processor: 'count-primes',
        input: { limit: MAX, options: { wheel: [2, 3, 5] } },
        from: 0,
        to: MAX,
        position: MAX - 100,
        state: nestedState,
        unitsDone: MAX - 100,
      },
    },
  },
  {
    name: 'host command assign without state',
    schema: hostCommandSchema,
    msg: {
      v: 1,
      t: 'assign',
      term: 3,
      share: { shareId: 'j-s0', jobId: 'j', epoch: 0, processor: 'p', input: null, from: 5, to: 6, position: 5, unitsDone: 0 },
    },
  },
  {
    name: 'host command assign-batch',
    schema: hostCommandSchema,
    msg: {
      v: 1,
      t: 'assign-batch',
      term: 3,
      shares: [
        { shareId: 'j-s0', jobId: 'j', epoch: 1, processor: 'p', input: null, from: 0, to: 5, position: 0, unitsDone: 0 },
        { shareId: 'j-s1', jobId: 'j', epoch: 1, processor: 'p', input: null, from: 5, to: 6, position: 5, state: nestedState, unitsDone: 0 },
      ],
    },
  },
  { name: 'host command pause', schema: hostCommandSchema, msg: { v: 1, t: 'pause', term: 2, shareId: 'job-1-s3', epoch: 4 } },
  {
    name: 'host command split',
    schema: hostCommandSchema,
    msg: { v: 1, t: 'split', term: 2, shareId: 'job-1-s3', epoch: 4, fraction: 0.5 },
  },
  { name: 'host command drop', schema: hostCommandSchema, msg: { v: 1, t: 'drop', term: 2, shareId: 'job-1-s3', epoch: 4 } },
  {
    name: 'host command merge',
    schema: hostCommandSchema,
    msg: { v: 1, t: 'merge', term: 2, processor: 'count-primes', input: { limit: 100 }, results: [{ count: 25 }, 3, 'x', null] },
  },
  {
    name: 'host command validate',
    schema: hostCommandSchema,
    msg: { v: 1, t: 'validate', term: 2, processor: 'count-primes', input: { limit: MAX, raw: new Uint8Array([9, 8, 7]) } },
  },
  { name: 'host reply ok', schema: hostReplySchema, msg: { v: 1, t: 'ok' } },
  { name: 'host reply assigned', schema: hostReplySchema, msg: { v: 1, t: 'assigned', answers: [{ v: 1, t: 'ok' }, { v: 1, t: 'err', error: wireError }] } },
  { name: 'host reply paused', schema: hostReplySchema, msg: { v: 1, t: 'paused', checkpoint } },
  { name: 'host reply split with a tail', schema: hostReplySchema, msg: { v: 1, t: 'split', keptTo: MAX - 5, tail: [MAX - 5, MAX] } },
  { name: 'host reply split without a tail', schema: hostReplySchema, msg: { v: 1, t: 'split', keptTo: 10, tail: null } },
  { name: 'host reply merged', schema: hostReplySchema, msg: { v: 1, t: 'merged', result: { count: 2 ** 51, parts: [1, 2] } } },
  { name: 'host reply err', schema: hostReplySchema, msg: { v: 1, t: 'err', error: wireError } },
  { name: 'report checkpoint', schema: reportSchema, msg: { v: 1, t: 'checkpoint', hostId: 'host-a', checkpoint } },
  {
    name: 'report done',
    schema: reportSchema,
    msg: {
      v: 1,
      t: 'done',
      hostId: 'host-a',
      shareId: 'job-1-s3',
      epoch: 4,
      to: MAX,
      result: { count: MAX, nested: nestedState },
      unitsDone: MAX,
      elapsedMs: 12.5,
    },
  },
  {
    name: 'report failed with a checkpoint',
    schema: reportSchema,
    msg: { v: 1, t: 'failed', hostId: 'host-a', shareId: 'job-1-s3', epoch: 4, error: wireError, checkpoint },
  },
  {
    name: 'report failed without a checkpoint',
    schema: reportSchema,
    msg: { v: 1, t: 'failed', hostId: 'host-a', shareId: 'job-1-s3', epoch: 4, error: { code: 'E_INTERNAL', message: 'x', retryable: false } },
  },
  { name: 'report reply ack', schema: reportReplySchema, msg: { v: 1, t: 'ack', term: 7 } },
  { name: 'report reply nack', schema: reportReplySchema, msg: { v: 1, t: 'nack', term: 7, error: { code: 'E_STALE_EPOCH', message: 'old', retryable: false } } },
  {
    name: 'api request submit with every option',
    schema: apiRequestSchema,
    msg: {
      v: 1,
      t: 'submit',
      jobId: 'job-1',
      processor: 'count-primes',
      input: { limit: MAX, state: nestedState },
      from: 0,
      to: MAX,
      shares: 12,
      tags: { zone: 'eu-1' },
      memoryBytesPerShare: 2 ** 33,
    },
  },
  {
    name: 'api request submit with only required fields',
    schema: apiRequestSchema,
    msg: { v: 1, t: 'submit', jobId: 'job-2', processor: 'cpu-burn', input: 42, from: 0, to: 1 },
  },
  { name: 'api request cancel', schema: apiRequestSchema, msg: { v: 1, t: 'cancel', jobId: 'job-1' } },
  { name: 'api request job', schema: apiRequestSchema, msg: { v: 1, t: 'job', jobId: 'job-1', withShares: true } },
  { name: 'api request status', schema: apiRequestSchema, msg: { v: 1, t: 'status' } },
  { name: 'api request migrate', schema: apiRequestSchema, msg: { v: 1, t: 'migrate', shareId: 'job-1-s3', toHost: 'host-b' } },
  { name: 'api request drain', schema: apiRequestSchema, msg: { v: 1, t: 'drain', hostId: 'host-a', drain: true } },
  { name: 'api reply migration', schema: apiReplySchema, msg: { v: 1, t: 'migration', migration: { ...migration, ok: false, error: wireError } } },
  { name: 'api request config read', schema: apiRequestSchema, msg: { v: 1, t: 'config' } },
  { name: 'api request config set', schema: apiRequestSchema, msg: { v: 1, t: 'config', key: 'balancer.migrationThreshold', value: '1' } },
  {
    name: 'api reply config',
    schema: apiReplySchema,
    msg: { v: 1, t: 'config', settings: { 'balancer.migrationThreshold': 1 }, changed: { key: 'balancer.migrationThreshold', from: 3, to: 1 } },
  },
  { name: 'api reply ok', schema: apiReplySchema, msg: { v: 1, t: 'ok' } },
  { name: 'api reply job', schema: apiReplySchema, msg: { v: 1, t: 'job', job: jobSummary } },
  {
    name: 'api reply status',
    schema: apiReplySchema,
    msg: {
      v: 1,
      t: 'status',
      hosts: [
        {
          hostId: 'host-a',
          state: 'suspect',
          lastSeenMsAgo: 1500,
          capacity: heartbeat.capacity,
          load: heartbeat.load,
          tags: { zone: 'eu-1' },
          processors: ['count-primes'],
          shares: 3,
          draining: true,
        },
      ],
      jobs: [jobSummary, { ...jobSummary, jobId: 'job-2', state: 'waiting', shares: undefined, error: undefined }],
      rejected: { 'shoal.c.pool.hb.x invalid': 3 },
      migrations: [migration],
      failovers: [{ shareId: 'job-1-s2', jobId: 'job-1', hostId: 'host-a', at: 1_700_000_000_000, checkpointPosition: 100, lastKnownPosition: 150, unitsRedone: 50, toHost: 'host-b', redispatchedAt: 1_700_000_000_010 }],
    },
  },
  {
    name: 'api reply status with a leader and standbys',
    schema: apiReplySchema,
    msg: { v: 1, t: 'status', hosts: [], jobs: [], rejected: {}, migrations: [], failovers: [], leader: { id: 'b1', pid: 41, term: 3, since: 1_700_000_000_000 }, standbys: [{ id: 'b2', pid: 42 }] },
  },
  { name: 'balancer presence of a leader', schema: presenceSchema, msg: { v: 1, t: 'presence', id: 'b1', pid: 41, role: 'leader', term: 3, since: 1_700_000_000_000 } },
  { name: 'balancer presence of a standby', schema: presenceSchema, msg: { v: 1, t: 'presence', id: 'b2', pid: 42, role: 'standby', term: 3 } },
  { name: 'api reply err', schema: apiReplySchema, msg: { v: 1, t: 'err', error: wireError } },
  { name: 'job event', schema: jobEventSchema, msg: { v: 1, t: 'job', job: jobSummary } },
]

/** Drops keys whose value is undefined, which zod's optional fields may or may not keep. */
function withoutUndefined(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(withoutUndefined)
  if (x instanceof Uint8Array || x === null || typeof x !== 'object') return x
  return Object.fromEntries(
    Object.entries(x)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, withoutUndefined(v)]),
  )
}

function decodeOk<S extends z.ZodType>(schema: S, bytes: Uint8Array): z.infer<S> {
  const d = codec.decode(schema, bytes)
  if (!d.ok) expect.fail(`expected the message to decode, got ${d.cause}: ${d.detail}`)
  return d.value
}

function rejection(schema: z.ZodType, msg: unknown): { cause: RejectCause; detail: string } {
  const d = codec.decode(schema, codec.encode(msg))
  if (d.ok) expect.fail(`expected ${JSON.stringify(msg)} to be rejected`)
  return d
}

describe('protocol codec', () => {
  describe('round trip', () => {
    it('the examples cover every variant of every message union in messages.ts', () => {
      const unions = { hostCommandSchema, hostReplySchema, reportSchema, reportReplySchema, apiRequestSchema, apiReplySchema }
      for (const [name, union] of Object.entries(unions)) {
        const declared = union.options.map((o) => o.shape.t.value as string).sort()
        const exampled = [...new Set(examples.filter((e) => e.schema === union).map((e) => (e.msg as { t: string }).t))].sort()
        expect(exampled, name).to.deep.equal(declared)
      }
      for (const single of [heartbeatSchema, leaveSchema, jobEventSchema]) {
        expect(examples.some((e) => e.schema === single)).to.equal(true)
      }
    })

    for (const ex of examples) {
      it(`the ${ex.name} message comes out of encode and decode deep-equal to what went in`, () => {
        const back = decodeOk(ex.schema, codec.encode(ex.msg))
        expect(withoutUndefined(back)).to.deep.equal(withoutUndefined(ex.msg))
      })
    }

    it('positions up to 2^53-1 come back as the exact same numbers', () => {
      const back = decodeOk(reportSchema, codec.encode({ v: 1, t: 'checkpoint', hostId: 'h', checkpoint }))
      expect(back.t).to.equal('checkpoint')
      if (back.t !== 'checkpoint') return
      expect(back.checkpoint.to).to.equal(Number.MAX_SAFE_INTEGER)
      expect(back.checkpoint.position).to.equal(Number.MAX_SAFE_INTEGER - 10)
      expect(Number.isSafeInteger(back.checkpoint.position)).to.equal(true)
    })

    it('a Uint8Array inside processor state comes back as bytes with the same content', () => {
      const back = decodeOk(reportSchema, codec.encode({ v: 1, t: 'checkpoint', hostId: 'h', checkpoint }))
      if (back.t !== 'checkpoint') return expect.fail('expected a checkpoint')
      const bitmap = (back.checkpoint.state as typeof nestedState).bitmap
      expect(bitmap).to.be.instanceOf(Uint8Array)
      expect([...bitmap]).to.deep.equal([0, 1, 127, 128, 255])
    })

    it('sizeOf measures the same number of bytes that encode produces', () => {
      expect(codec.sizeOf(heartbeat)).to.equal(codec.encode(heartbeat).length)
    })

    it('any valid checkpoint message survives encode and decode unchanged', () => {
      const key = fc.stringMatching(/^[a-z][a-zA-Z0-9_]{0,7}$/)
      const leaf = fc.oneof(
        fc.maxSafeInteger(),
        fc.integer(),
        // -0 is left out: msgpack has no negative integer zero, so it comes back as 0.
        fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
        fc.string({ unit: 'grapheme', maxLength: 20 }),
        fc.boolean(),
        fc.constant(null),
        fc.uint8Array({ maxLength: 32 }),
      )
      const { state } = fc.letrec((tie) => ({
        state: fc.oneof(
          { depthSize: 'small', withCrossShrink: true },
          leaf,
          fc.array(tie('state'), { maxLength: 5 }),
          fc.dictionary(key, tie('state'), { maxKeys: 5, noNullPrototype: true }),
        ),
      }))
      const shareId = fc
        .tuple(fc.stringMatching(/^[A-Za-z0-9_-]{1,61}$/), fc.integer({ min: 0, max: 999_999_999 }))
        .map(([job, n]) => `${job}-s${n}`)
      const nat = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })
      const checkpointArb = fc.record({
        shareId,
        epoch: nat,
        position: nat,
        to: nat,
        state,
        unitsDone: nat,
        stateBytes: nat,
      })
      const messageArb = fc.record({
        v: fc.constant(1 as const),
        t: fc.constant('checkpoint' as const),
        hostId: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
        checkpoint: checkpointArb,
      })
      fc.assert(
        fc.property(messageArb, (m) => {
          expect(checkpointSchema.safeParse(m.checkpoint).success, 'generator makes valid checkpoints').to.equal(true)
          const back = decodeOk(reportSchema, codec.encode(m))
          expect(back).to.deep.equal(m)
        }),
        { numRuns: 300 },
      )
    })
  })

  describe('rejection', () => {
    for (const [what, bytes] of [
      ['JSON text', new TextEncoder().encode('{"v":1,"t":"leave","hostId":"a"}')],
      ['an empty buffer', new Uint8Array(0)],
      ['a truncated message', codec.encode({ v: 1, t: 'leave', hostId: 'host-a' }).subarray(0, 6)],
      ['a valid message followed by garbage', Uint8Array.from([...codec.encode({ v: 1, t: 'leave', hostId: 'a' }), 0xff, 0xff])],
    ] as const) {
      it(`${what} is rejected as malformed without throwing`, () => {
        const d = codec.decode(leaveSchema, bytes)
        expect(d.ok).to.equal(false)
        if (d.ok) return
        expect(d.cause).to.equal('malformed')
        expect(d.detail).to.match(/^not msgpack: /)
      })
    }

    // msgpackr decodes 0xC1 (reserved, "never used") to a placeholder object instead of throwing.
    it('the reserved msgpack byte 0xC1 is rejected as malformed', () => {
      const d = codec.decode(leaveSchema, Uint8Array.of(0xc1))
      expect(d.ok).to.equal(false)
      if (d.ok) return
      expect(d.cause).to.equal('malformed')
    })

    it('a message missing a required field is invalid, and the detail names the field', () => {
      const { hostId: _drop, ...noHost } = heartbeat
      const r = rejection(heartbeatSchema, noHost)
      expect(r.cause).to.equal('invalid')
      expect(r.detail).to.match(/^hostId: /)
    })

    it('a message missing a nested field is invalid, and the detail names the dotted path', () => {
      const r = rejection(heartbeatSchema, { ...heartbeat, load: { ...heartbeat.load, memFreeBytes: undefined } })
      expect(r.cause).to.equal('invalid')
      expect(r.detail).to.match(/^load\.memFreeBytes: /)
    })

    it('a message of another protocol version is invalid, and the detail names v', () => {
      const r = rejection(leaveSchema, { v: 2, t: 'leave', hostId: 'host-a' })
      expect(r.cause).to.equal('invalid')
      expect(r.detail).to.match(/^v: /)
    })

    it('a message with an unknown t is invalid, and the detail names t', () => {
      const r = rejection(hostCommandSchema, { v: 1, t: 'reboot', shareId: 'j-s0', epoch: 0 })
      expect(r.cause).to.equal('invalid')
      expect(r.detail).to.match(/^t: /)
    })

    it('a negative position is invalid, and the detail names its path', () => {
      const r = rejection(reportSchema, { v: 1, t: 'checkpoint', hostId: 'h', checkpoint: { ...checkpoint, position: -1 } })
      expect(r.cause).to.equal('invalid')
      expect(r.detail).to.match(/^checkpoint\.position: /)
    })

    it('a position past 2^53-1 is invalid, since it can no longer be counted exactly', () => {
      const r = rejection(reportSchema, { v: 1, t: 'checkpoint', hostId: 'h', checkpoint: { ...checkpoint, to: 2 ** 53 } })
      expect(r.cause).to.equal('invalid')
      expect(r.detail).to.match(/^checkpoint\.to: /)
    })

    it('a fractional unit is invalid', () => {
      const r = rejection(hostReplySchema, { v: 1, t: 'split', keptTo: 1.5, tail: null })
      expect(r.cause).to.equal('invalid')
      expect(r.detail).to.match(/^keptTo: /)
    })

    for (const bad of ['job-1', 'job-1-sX', 'job.1-s0', '-s0', 'job-1-s1234567890']) {
      it(`a share id of ${JSON.stringify(bad)} is invalid, and the detail names shareId`, () => {
        const r = rejection(hostCommandSchema, { v: 1, t: 'pause', term: 1, shareId: bad, epoch: 0 })
        expect(r.cause).to.equal('invalid')
        expect(r.detail).to.match(/^shareId: /)
      })
    }

    it('msgpack that is not an object at all is invalid at the root', () => {
      const r = rejection(leaveSchema, [1, 'leave', 'host-a'])
      expect(r.cause).to.equal('invalid')
      expect(r.detail).to.match(/^\(root\): /)
    })

    it('data longer than maxMessageBytes is rejected as oversized before it is unpacked', () => {
      const small = new Codec(16)
      // 17 bytes that are not even msgpack: the size check must come first.
      const d = small.decode(leaveSchema, new Uint8Array(17).fill(0xc1))
      expect(d).to.deep.equal({ ok: false, cause: 'oversized', detail: '17 bytes > 16' })
    })

    it('data of exactly maxMessageBytes is not oversized', () => {
      const bytes = codec.encode({ v: 1, t: 'leave', hostId: 'host-a' })
      const exact = new Codec(bytes.length)
      expect(exact.decode(leaveSchema, bytes).ok).to.equal(true)
    })

    it('encoding a message over the limit throws E_MSG_TOO_LARGE naming the size and the limit', () => {
      const small = new Codec(64)
      const msg = { v: 1, t: 'validate', processor: 'p', input: 'x'.repeat(100) }
      const size = new Codec(1 << 20).encode(msg).length
      let thrown: unknown
      try {
        small.encode(msg)
      } catch (err) {
        thrown = err
      }
      expect(thrown).to.be.instanceOf(ShoalError)
      const e = thrown as ShoalError
      expect(e.code).to.equal('E_MSG_TOO_LARGE')
      expect(e.retryable).to.equal(false)
      expect(e.message).to.include(`${size} bytes`)
      expect(e.message).to.include('64')
      expect(e.message).to.include("'validate'")
      expect(e.details).to.deep.equal({ bytes: size, limit: 64 })
    })

    it('encoding a message of exactly the limit succeeds', () => {
      const msg = { v: 1, t: 'leave', hostId: 'host-a' }
      const size = codec.encode(msg).length
      expect(new Codec(size).encode(msg).length).to.equal(size)
    })
  })

  describe('RejectCounter', () => {
    it('counts by subject and cause', () => {
      const rc = new RejectCounter()
      rc.count('shoal.c.pool.hb.a', 'invalid')
      rc.count('shoal.c.pool.hb.a', 'invalid')
      rc.count('shoal.c.pool.hb.a', 'malformed')
      rc.count('shoal.c.bal.report', 'invalid')
      expect(rc.snapshot()).to.deep.equal({
        'shoal.c.pool.hb.a invalid': 2,
        'shoal.c.pool.hb.a malformed': 1,
        'shoal.c.bal.report invalid': 1,
      })
    })

    it('total(cause) adds up only that cause, and total() adds up everything', () => {
      const rc = new RejectCounter()
      const causes: RejectCause[] = ['invalid', 'invalid', 'malformed', 'oversized', 'stale-epoch', 'stale-epoch', 'stale-epoch']
      causes.forEach((c, i) => rc.count(`shoal.c.s${i % 2}`, c))
      expect(rc.total('invalid')).to.equal(2)
      expect(rc.total('malformed')).to.equal(1)
      expect(rc.total('oversized')).to.equal(1)
      expect(rc.total('stale-epoch')).to.equal(3)
      expect(rc.total()).to.equal(7)
    })

    it('names at most MAX_REJECT_SUBJECTS subjects and counts the rest as other, in its snapshot and to onReject', () => {
      const rc = new RejectCounter()
      const seen = new Set<string>()
      rc.onReject = (s) => seen.add(s)
      for (let i = 0; i < 5000; i++) rc.count(`shoal.c.pool.junk${i}`, 'invalid')
      rc.count('shoal.c.pool.junk0', 'malformed') // a subject named before the cap stays named
      const snap = rc.snapshot()
      expect(Object.keys(snap)).to.have.length(MAX_REJECT_SUBJECTS + 2)
      expect(snap[`${OTHER_SUBJECT} invalid`]).to.equal(5000 - MAX_REJECT_SUBJECTS)
      expect(snap['shoal.c.pool.junk0 malformed']).to.equal(1)
      expect(rc.total()).to.equal(5001)
      expect(seen.size).to.equal(MAX_REJECT_SUBJECTS + 1)
    })

    it('a fresh counter reports nothing', () => {
      const rc = new RejectCounter()
      expect(rc.total()).to.equal(0)
      expect(rc.snapshot()).to.deep.equal({})
    })

    it('calls onReject with the subject and cause of every rejection', () => {
      const rc = new RejectCounter()
      const seen: Array<[string, RejectCause]> = []
      rc.onReject = (s, c) => seen.push([s, c])
      rc.count('shoal.c.api.submit', 'oversized')
      rc.count('shoal.c.api.submit', 'oversized')
      expect(seen).to.deep.equal([
        ['shoal.c.api.submit', 'oversized'],
        ['shoal.c.api.submit', 'oversized'],
      ])
    })
  })
})
