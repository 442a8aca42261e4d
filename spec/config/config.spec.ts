/**
 * Behaviour of lib/config: precedence of defaults, file, env and overrides; the exact wording of
 * errors (key, expectation, value, source); unknown keys; cross-field rules; live changes.
 *
 * Must never read the real process.env or write outside its own temp dirs: every test passes `env`.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { expect } from 'chai'
import { ShoalError } from '../../lib/errors.ts'
import {
  CONFIG_KEYS,
  ConfigSchema,
  configKeys,
  defaultConfig,
  envVarName,
  loadConfig,
  setConfigValue,
  type Config,
} from '../../lib/config/mod.ts'

function configError(fn: () => unknown): ShoalError {
  try {
    fn()
  } catch (err) {
    expect(err).to.be.instanceOf(ShoalError)
    expect((err as ShoalError).code).to.equal('E_CONFIG')
    return err as ShoalError
  }
  expect.fail('expected an E_CONFIG error')
}

describe('config', () => {
  let dir: string
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-config-'))
  })
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const write = (name: string, text: string): string => {
    const file = path.join(dir, name)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, text)
    return file
  }

  describe('defaults', () => {
    it('fills every key with the documented default and passes its own validation', () => {
      const c = defaultConfig()
      expect(ConfigSchema.safeParse(c).success).to.equal(true)
      expect(c).to.deep.equal({
        cluster: 'default',
        nats: { url: 'nats://127.0.0.1:4222', tls: {} },
        pool: { heartbeatMs: 250, suspectAfterMs: 600, hostDeadMs: 1000, maxHeartbeatsPerSec: 2000 },
        balancer: {
          intervalMs: 1000,
          migrationThreshold: 3,
          minResidencyMs: 10_000,
          loadWindowMs: 1000,
          maxMovesPerCycle: 8,
          maxConcurrentMigrationsPerHost: 2,
          splitMinUnits: 1000,
          leaseMs: 1000,
        },
        shares: {
          checkpointMs: 1000,
          reportLingerMs: 500,
          stepTargetMs: 5,
          maxCheckpointBytes: 8 * 1024 * 1024,
          maxAttempts: 3,
          perJob: 'auto',
          maxPerJob: 1024,
          minUnitsPerShare: 1,
        },
        jobs: { retainMs: 300_000 },
        host: { tags: {}, processors: [] },
        client: { identity: 'operator' },
        protocol: { maxMessageBytes: 1_048_576 - 4096 },
        log: { level: 'info' },
      })
    })

    it('loads the defaults when nothing is given, and returns a deeply frozen object', () => {
      const c = loadConfig({ env: {} })
      expect(c).to.deep.equal(defaultConfig())
      expect(Object.isFrozen(c)).to.equal(true)
      expect(Object.isFrozen(c.balancer)).to.equal(true)
      expect(Object.isFrozen(c.host.processors)).to.equal(true)
      expect(() => {
        ;(c.balancer as { migrationThreshold: number }).migrationThreshold = 5
      }).to.throw(TypeError)
    })

    it('lists every leaf key, and maps each to a distinct SHOAL_ env var', () => {
      const keys = configKeys()
      expect(keys).to.have.length(44)
      expect(keys).to.include.members([
        'cluster', 'nats.url', 'nats.token', 'pool.heartbeatMs', 'balancer.migrationThreshold',
        'balancer.metricsPort', 'shares.perJob', 'host.tags', 'host.processors', 'protocol.maxMessageBytes', 'log.level',
      ])
      const envs = CONFIG_KEYS.map((k) => k.env)
      expect(new Set(envs).size).to.equal(envs.length)
      expect(envs).not.to.include('SHOAL_CONFIG')
      expect(envVarName('pool.heartbeatMs')).to.equal('SHOAL_POOL_HEARTBEAT_MS')
      expect(envVarName('balancer.migrationThreshold')).to.equal('SHOAL_BALANCER_MIGRATION_THRESHOLD')
      expect(envVarName('balancer.maxConcurrentMigrationsPerHost')).to.equal('SHOAL_BALANCER_MAX_CONCURRENT_MIGRATIONS_PER_HOST')
      expect(envVarName('nats.url')).to.equal('SHOAL_NATS_URL')
      expect(envVarName('cluster')).to.equal('SHOAL_CLUSTER')
    })
  })

  describe('sources and precedence', () => {
    it('reads a YAML file', () => {
      const file = write('shoal.yaml', [
        'cluster: lab',
        'pool:',
        '  heartbeatMs: 100',
        'balancer:',
        '  migrationThreshold: 5',
        'host:',
        '  tags: { zone: eu-1, gpu: "no" }',
        'log:',
        '  level: debug',
        '',
      ].join('\n'))
      const c = loadConfig({ file, env: {} })
      expect(c.cluster).to.equal('lab')
      expect(c.pool.heartbeatMs).to.equal(100)
      expect(c.balancer.migrationThreshold).to.equal(5)
      expect(c.host.tags).to.deep.equal({ zone: 'eu-1', gpu: 'no' })
      expect(c.log.level).to.equal('debug')
      expect(c.balancer.intervalMs).to.equal(1000)
    })

    it('reads a JSON file', () => {
      const file = write('shoal.json', JSON.stringify({ shares: { perJob: 12, stepTargetMs: 2.5 }, nats: { url: 'nats://a:4222,nats://b:4222' } }))
      const c = loadConfig({ file, env: {} })
      expect(c.shares.perJob).to.equal(12)
      expect(c.shares.stepTargetMs).to.equal(2.5)
      expect(c.nats.url).to.equal('nats://a:4222,nats://b:4222')
    })

    it('reads a JSON file that starts with a byte-order mark', () => {
      const file = write('bom.json', '\uFEFF{"cluster": "bom"}')
      expect(loadConfig({ file, env: {} }).cluster).to.equal('bom')
    })

    it('treats an empty YAML file and an empty YAML section as nothing set', () => {
      expect(loadConfig({ file: write('empty.yaml', '# nothing yet\n'), env: {} })).to.deep.equal(defaultConfig())
      expect(loadConfig({ file: write('sect.yaml', 'pool:\n  # heartbeatMs: 100\n'), env: {} }).pool.heartbeatMs).to.equal(250)
    })

    it('reads the file named by SHOAL_CONFIG when no file is given', () => {
      const file = write('from-env.yaml', 'balancer:\n  maxMovesPerCycle: 2\n')
      expect(loadConfig({ env: { SHOAL_CONFIG: file } }).balancer.maxMovesPerCycle).to.equal(2)
    })

    it('prefers the file option over SHOAL_CONFIG', () => {
      const a = write('a.yaml', 'cluster: a\n')
      const b = write('b.yaml', 'cluster: b\n')
      expect(loadConfig({ file: a, env: { SHOAL_CONFIG: b } }).cluster).to.equal('a')
    })

    it('lets env override the file, key by key', () => {
      const file = write('shoal.yaml', 'balancer:\n  migrationThreshold: 2\n  intervalMs: 500\n')
      const c = loadConfig({ file, env: { SHOAL_BALANCER_MIGRATION_THRESHOLD: '4' } })
      expect(c.balancer.migrationThreshold).to.equal(4)
      expect(c.balancer.intervalMs).to.equal(500)
    })

    it('lets overrides beat env, and ignores undefined overrides', () => {
      const c = loadConfig({
        env: { SHOAL_BALANCER_MIGRATION_THRESHOLD: '4', SHOAL_POOL_HEARTBEAT_MS: '100' },
        overrides: { balancer: { migrationThreshold: 1 }, pool: { heartbeatMs: undefined } },
      })
      expect(c.balancer.migrationThreshold).to.equal(1)
      expect(c.pool.heartbeatMs).to.equal(100)
    })

    it('parses env values of every kind', () => {
      const c = loadConfig({
        env: {
          SHOAL_SHARES_STEP_TARGET_MS: ' 0.5 ',
          SHOAL_SHARES_PER_JOB: '16',
          SHOAL_HOST_TAGS: 'zone=eu-1, rack=r7',
          SHOAL_HOST_PROCESSORS: '/opt/p/a.js,/opt/p/b.js',
          SHOAL_LOG_LEVEL: 'WARN',
          SHOAL_NATS_TOKEN: 's3cret',
          SHOAL_HOST_METRICS_PORT: '9101',
        },
      })
      expect(c.shares.stepTargetMs).to.equal(0.5)
      expect(c.shares.perJob).to.equal(16)
      expect(c.host.tags).to.deep.equal({ zone: 'eu-1', rack: 'r7' })
      expect(c.host.processors).to.deep.equal([path.resolve('/opt/p/a.js'), path.resolve('/opt/p/b.js')])
      expect(c.log.level).to.equal('warn')
      expect(c.nats.token).to.equal('s3cret')
      expect(c.host.metricsPort).to.equal(9101)
      expect(loadConfig({ env: { SHOAL_SHARES_PER_JOB: 'auto' }, overrides: {} }).shares.perJob).to.equal('auto')
    })

    it('treats an empty env var as unset for a scalar key', () => {
      const file = write('shoal.yaml', 'pool:\n  heartbeatMs: 100\n')
      expect(loadConfig({ file, env: { SHOAL_POOL_HEARTBEAT_MS: '' } }).pool.heartbeatMs).to.equal(100)
    })

    it('ignores SHOAL_ variables that name no key, warning only about near misspellings', () => {
      const warnings: string[] = []
      const c = loadConfig({
        env: { SHOAL_SOMETHING_ELSE: 'x', SHOAL_BALANCER_MIGRATION_TRESHOLD: '1' },
        onWarning: (m) => warnings.push(m),
      })
      expect(c.balancer.migrationThreshold).to.equal(3)
      expect(warnings).to.deep.equal([
        'SHOAL_BALANCER_MIGRATION_TRESHOLD is not a Shoal setting and is ignored (did you mean SHOAL_BALANCER_MIGRATION_THRESHOLD?)',
      ])
    })
  })

  describe('bad values', () => {
    it('rejects a migrationThreshold outside 1..5 naming the key and the value', () => {
      const err = configError(() => loadConfig({ env: {}, overrides: { balancer: { migrationThreshold: 9 } } }))
      expect(err.message).to.equal('balancer.migrationThreshold must be an integer from 1 to 5 (got 9)')
      expect(err.details).to.include({ key: 'balancer.migrationThreshold', expected: 'an integer from 1 to 5', got: 9 })
    })

    it('accepts nats.replicas of 1, 3 or 5 and refuses 2, naming the key and the choices', () => {
      for (const n of [1, 3, 5]) expect(loadConfig({ env: { SHOAL_NATS_REPLICAS: String(n) } }).nats.replicas).to.equal(n)
      const err = configError(() => loadConfig({ env: { SHOAL_NATS_REPLICAS: '2' } }))
      expect(err.message).to.equal('nats.replicas (from SHOAL_NATS_REPLICAS) must be 1, 3 or 5 (got "2")')
    })

    it('refuses a lease shorter than 200 ms, naming balancer.leaseMs', () => {
      const err = configError(() => loadConfig({ env: {}, overrides: { balancer: { leaseMs: 50 } } }))
      expect(err.message).to.equal('balancer.leaseMs must be an integer from 200 to 60000 (got 50)')
    })

    it('names the env var and quotes its raw text when the value came from the environment', () => {
      const err = configError(() => loadConfig({ env: { SHOAL_BALANCER_MIGRATION_THRESHOLD: 'nine' } }))
      expect(err.message).to.equal(
        'balancer.migrationThreshold (from SHOAL_BALANCER_MIGRATION_THRESHOLD) must be an integer from 1 to 5 (got "nine")',
      )
      expect(err.details).to.include({ key: 'balancer.migrationThreshold', got: 'nine' })
    })

    it('parses env numbers strictly', () => {
      for (const raw of ['12abc', '0x10', '1_000', '--3', '1 000']) {
        const err = configError(() => loadConfig({ env: { SHOAL_POOL_HEARTBEAT_MS: raw } }))
        expect(err.message).to.equal(
          `pool.heartbeatMs (from SHOAL_POOL_HEARTBEAT_MS) must be an integer from 20 to 60000 (got ${JSON.stringify(raw)})`,
        )
      }
    })

    it('prefixes the file path when the value came from a file', () => {
      const file = write('shoal.yaml', 'pool:\n  heartbeatMs: fast\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.equal(`${file}: pool.heartbeatMs must be an integer from 20 to 60000 (got "fast")`)
    })

    it('rejects a value of the wrong type', () => {
      const err = configError(() => loadConfig({ env: {}, overrides: { balancer: { intervalMs: '1000' as unknown as number } } }))
      expect(err.message).to.equal('balancer.intervalMs must be an integer from 50 to 600000 (got "1000")')
    })

    it('rejects a fraction where an integer is required', () => {
      const err = configError(() => loadConfig({ env: { SHOAL_SHARES_MAX_ATTEMPTS: '2.5' } }))
      expect(err.message).to.equal('shares.maxAttempts (from SHOAL_SHARES_MAX_ATTEMPTS) must be an integer >= 1 (got "2.5")')
    })

    it('rejects a value outside a number range', () => {
      const err = configError(() => loadConfig({ env: {}, overrides: { shares: { stepTargetMs: 0.01 } } }))
      expect(err.message).to.equal('shares.stepTargetMs must be a number from 0.1 to 1000 (got 0.01)')
    })

    it('rejects a value that is neither auto nor an integer for shares.perJob', () => {
      const err = configError(() => loadConfig({ env: { SHOAL_SHARES_PER_JOB: 'many' } }))
      expect(err.message).to.equal('shares.perJob (from SHOAL_SHARES_PER_JOB) must be "auto" or an integer >= 1 (got "many")')
      const err0 = configError(() => loadConfig({ env: {}, overrides: { shares: { perJob: 0 } } }))
      expect(err0.message).to.equal('shares.perJob must be "auto" or an integer >= 1 (got 0)')
    })

    it('rejects a log level outside the enum, listing the choices', () => {
      const err = configError(() => loadConfig({ env: { SHOAL_LOG_LEVEL: 'loud' } }))
      expect(err.message).to.equal(
        'log.level (from SHOAL_LOG_LEVEL) must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
      )
    })

    it('rejects a cluster name that could not be a NATS subject token', () => {
      const err = configError(() => loadConfig({ env: { SHOAL_CLUSTER: 'a.b' } }))
      expect(err.message).to.equal(
        'cluster (from SHOAL_CLUSTER) must be a name of 1 to 32 characters from A-Z a-z 0-9 _ - (got "a.b")',
      )
      expect(configError(() => loadConfig({ env: {}, overrides: { cluster: 'x'.repeat(33) } })).details).to.include({ key: 'cluster' })
    })

    it('rejects a host id that does not match its pattern', () => {
      const err = configError(() => loadConfig({ env: {}, overrides: { host: { id: 'web 1' } } }))
      expect(err.message).to.equal('host.id must be an id of 1 to 64 characters from A-Z a-z 0-9 _ - (got "web 1")')
    })

    it('rejects a malformed tag string from the environment', () => {
      for (const raw of ['zone', 'zone=eu,zone=us']) {
        const err = configError(() => loadConfig({ env: { SHOAL_HOST_TAGS: raw } }))
        expect(err.message).to.match(/^host\.tags \(from SHOAL_HOST_TAGS\) must be comma-separated name=value pairs/)
        expect(err.message).to.contain(`(got ${JSON.stringify(raw)})`)
      }
      const bad = configError(() => loadConfig({ env: { SHOAL_HOST_TAGS: 'zone=eu west' } }))
      expect(bad.message).to.contain('host.tags (from SHOAL_HOST_TAGS) must be')
      expect(bad.message).to.contain('(got "zone=eu west")')
    })

    it('names the offending tag name or value from a file', () => {
      const file = write('shoal.yaml', 'host:\n  tags:\n    zone: "eu west"\n    "bad name": x\n    __proto__: y\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      const lines = err.message.split('\n')
      expect(lines).to.have.length(3)
      expect(lines).to.include(`${file}: host.tags must be a map of tag names to values, each 1 to 64 characters from A-Z a-z 0-9 _ . - (got "eu west" at tag zone)`)
      expect(lines).to.include(`${file}: host.tags must be a map of tag names to values, each 1 to 64 characters from A-Z a-z 0-9 _ . - (got "bad name" as a name)`)
      expect(lines).to.include(`${file}: host.tags must be a map of tag names to values, each 1 to 64 characters from A-Z a-z 0-9 _ . - (got "__proto__" as a name)`)
    })

    it('rejects maxCheckpointBytes above its own range', () => {
      const err = configError(() => loadConfig({ env: { SHOAL_SHARES_MAX_CHECKPOINT_BYTES: String(65 * 1024 * 1024) } }))
      expect(err.message).to.contain('shares.maxCheckpointBytes (from SHOAL_SHARES_MAX_CHECKPOINT_BYTES) must be an integer from 1024 to 67108864')
    })

    it('reports every problem, one line each, naming its key', () => {
      const err = configError(() => loadConfig({
        env: { SHOAL_POOL_HEARTBEAT_MS: 'x' },
        overrides: { balancer: { migrationThreshold: 0 }, log: { level: 'loud' as 'info' } },
      }))
      const lines = err.message.split('\n')
      expect(lines).to.have.length(3)
      expect(lines[0]).to.match(/^pool\.heartbeatMs /)
      expect(lines.slice(1).sort()).to.deep.equal([
        'balancer.migrationThreshold must be an integer from 1 to 5 (got 0)',
        'log.level must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
      ])
      expect((err.details?.problems as unknown[]).length).to.equal(3)
    })

    it('rejects a key left empty in YAML instead of treating it as unset', () => {
      const file = write('shoal.yaml', 'pool:\n  heartbeatMs:\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.equal(`${file}: pool.heartbeatMs must be an integer from 20 to 60000 (got null)`)
    })

    it('rejects a section that is not a mapping', () => {
      const file = write('shoal.yaml', 'pool: 5\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.equal(`${file}: pool must be a mapping of pool.* keys (got 5)`)
    })

    it('rejects a file whose top level is not a mapping', () => {
      const file = write('shoal.yaml', '- a\n- b\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.equal(`${file}: the configuration must be a mapping of keys to values (got ["a","b"])`)
    })
  })

  describe('unknown keys', () => {
    it('refuses a misspelt key in a file with a did-you-mean hint', () => {
      const file = write('shoal.yaml', 'balancer:\n  migrationTreshold: 5\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.equal(`${file}: unknown key balancer.migrationTreshold (did you mean balancer.migrationThreshold?)`)
      expect(err.details).to.include({ key: 'balancer.migrationTreshold', suggestion: 'balancer.migrationThreshold' })
    })

    it('suggests the same key in the section where it lives', () => {
      const err = configError(() => loadConfig({ env: {}, overrides: { pool: { intervalMs: 500 } } as never }))
      expect(err.message).to.equal('unknown key pool.intervalMs (did you mean balancer.intervalMs?)')
    })

    it('refuses an unknown key without a hint when nothing is close', () => {
      const err = configError(() => loadConfig({ env: {}, overrides: { frobnicate: true } as never }))
      expect(err.message).to.equal('unknown key frobnicate')
    })

    it('refuses an unknown section with a hint', () => {
      const file = write('shoal.json', '{"balancr": {"intervalMs": 10}}')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.equal(`${file}: unknown key balancr (did you mean balancer?)`)
    })

    it('refuses unknown keys when the schema is used directly', () => {
      expect(ConfigSchema.safeParse({ pool: { heartbeatMS: 100 } }).success).to.equal(false)
    })
  })

  describe('cross-field rules', () => {
    it('requires pool.hostDeadMs above pool.heartbeatMs, naming both keys and where each came from', () => {
      const file = write('shoal.yaml', 'pool:\n  heartbeatMs: 500\n  suspectAfterMs: 500\n')
      const err = configError(() => loadConfig({ file, env: { SHOAL_POOL_HOST_DEAD_MS: '400' } }))
      const lines = err.message.split('\n')
      expect(lines).to.include(
        `pool.hostDeadMs must be greater than pool.heartbeatMs (got pool.hostDeadMs=400 from SHOAL_POOL_HOST_DEAD_MS, pool.heartbeatMs=500 from ${file})`,
      )
      expect(err.details).to.include({ key: 'pool.hostDeadMs' })
    })

    it('requires jobs.recordRetainMs, when set, at least jobs.retainMs', () => {
      const err = configError(() => loadConfig({ env: { SHOAL_JOBS_RECORD_RETAIN_MS: '60000' }, overrides: { jobs: { retainMs: 120_000 } } }))
      expect(err.message).to.equal(
        'jobs.recordRetainMs must be at least jobs.retainMs (got jobs.recordRetainMs=60000 from SHOAL_JOBS_RECORD_RETAIN_MS, jobs.retainMs=120000 from overrides)',
      )
      expect(loadConfig({ env: { SHOAL_JOBS_RETAIN_MS: '172800000' } }).jobs.recordRetainMs).to.equal(undefined)
    })

    it('requires pool.suspectAfterMs in [heartbeatMs, hostDeadMs)', () => {
      const low = configError(() => loadConfig({ env: {}, overrides: { pool: { suspectAfterMs: 100 } } }))
      expect(low.message).to.equal(
        'pool.suspectAfterMs must be at least pool.heartbeatMs (got pool.suspectAfterMs=100 from overrides, pool.heartbeatMs=250 by default)',
      )
      const high = configError(() => loadConfig({ env: {}, overrides: { pool: { suspectAfterMs: 1000 } } }))
      expect(high.message).to.equal(
        'pool.suspectAfterMs must be less than pool.hostDeadMs (got pool.suspectAfterMs=1000 from overrides, pool.hostDeadMs=1000 by default)',
      )
      expect(loadConfig({ env: {}, overrides: { pool: { suspectAfterMs: 250 } } }).pool.suspectAfterMs).to.equal(250)
    })

    it('accepts a checkpoint limit above the message size, since large states go through the Object Store', () => {
      const cfg = loadConfig({ env: { SHOAL_PROTOCOL_MAX_MESSAGE_BYTES: '65536', SHOAL_SHARES_MAX_CHECKPOINT_BYTES: '4194304' } })
      expect(cfg.shares.maxCheckpointBytes).to.equal(4 * 1024 * 1024)
    })
  })

  describe('file errors', () => {
    it('names a missing file', () => {
      const file = path.join(dir, 'nope.yaml')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.equal(`config file ${file} does not exist`)
      expect(err.details).to.include({ got: file })
    })

    it('says when the missing file was named by SHOAL_CONFIG', () => {
      const file = path.join(dir, 'nope.yaml')
      const err = configError(() => loadConfig({ env: { SHOAL_CONFIG: file } }))
      expect(err.message).to.equal(`config file ${file} does not exist (named by SHOAL_CONFIG)`)
    })

    it('names the file and line of a YAML syntax error', () => {
      const file = write('shoal.yaml', 'pool:\n  heartbeatMs: 100\nbalancer: [1, 2\nlog: {}\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message.split('\n')[0]).to.match(new RegExp(`^${escapeRe(file)}:\\d+:\\d+: invalid YAML: `))
      expect(err.message).to.match(new RegExp(`^${escapeRe(file)}:(3|4):`))
    })

    it('names the file and line of a duplicate YAML key', () => {
      const file = write('shoal.yaml', 'cluster: a\ncluster: b\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.match(new RegExp(`^${escapeRe(file)}:2:1: invalid YAML: Map keys must be unique`))
    })

    it('names the file and line of a JSON syntax error', () => {
      const file = write('shoal.json', '{\n  "cluster": "a",\n}\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.match(new RegExp(`^${escapeRe(file)}:3:1: invalid JSON: `))
    })

    it('refuses a file that is neither YAML nor JSON by its extension', () => {
      const file = write('shoal.toml', 'cluster = "a"\n')
      expect(configError(() => loadConfig({ file, env: {} })).message).to.equal(
        `${file}: a config file must end in .yaml, .yml or .json`,
      )
    })
  })

  describe('host.processors', () => {
    it('resolves relative paths against the config file\'s directory', () => {
      const file = write('etc/shoal/shoal.yaml', 'host:\n  processors:\n    - ./procs/primes.js\n    - ../lib/burn.js\n    - /abs/x.js\n')
      const c = loadConfig({ file, env: {} })
      expect(c.host.processors).to.deep.equal([
        path.join(dir, 'etc/shoal/procs/primes.js'),
        path.join(dir, 'etc/lib/burn.js'),
        path.resolve('/abs/x.js'),
      ])
    })

    it('resolves a relative config file path before taking its directory', () => {
      const file = write('conf/shoal.json', '{"host": {"processors": ["p.js"]}}')
      const rel = path.relative(process.cwd(), file)
      expect(loadConfig({ file: rel, env: {} }).host.processors).to.deep.equal([path.join(dir, 'conf/p.js')])
    })

    it('resolves relative paths from env and overrides against cwd', () => {
      expect(loadConfig({ env: { SHOAL_HOST_PROCESSORS: 'a.js, b/c.js' } }).host.processors)
        .to.deep.equal([path.resolve('a.js'), path.resolve('b/c.js')])
      expect(loadConfig({ env: {}, overrides: { host: { processors: ['./d.js'] } } }).host.processors)
        .to.deep.equal([path.resolve('d.js')])
    })

    it('accepts file: URLs and stores them as paths', () => {
      const url = pathToFileURL(path.join(dir, 'u.js')).href
      expect(loadConfig({ env: { SHOAL_HOST_PROCESSORS: url } }).host.processors).to.deep.equal([path.join(dir, 'u.js')])
    })

    it('rejects a processor entry that is not a string, naming its index', () => {
      const file = write('shoal.yaml', 'host:\n  processors: [a.js, 5]\n')
      const err = configError(() => loadConfig({ file, env: {} }))
      expect(err.message).to.equal(`${file}: host.processors must be a list of module paths (got 5 at index 1)`)
    })
  })

  describe('setConfigValue', () => {
    let base: Config
    beforeEach(() => {
      base = loadConfig({ env: {} })
    })

    it('refuses an out-of-range value naming the key and leaves the original untouched', () => {
      const err = configError(() => setConfigValue(base, 'balancer.migrationThreshold', '9'))
      expect(err.message).to.equal('balancer.migrationThreshold must be an integer from 1 to 5 (got "9")')
      expect(err.details).to.include({ key: 'balancer.migrationThreshold' })
      expect(base.balancer.migrationThreshold).to.equal(3)
    })

    it('returns a new config with the value set and the original unchanged', () => {
      const next = setConfigValue(base, 'balancer.migrationThreshold', '1')
      expect(next.balancer.migrationThreshold).to.equal(1)
      expect(next).not.to.equal(base)
      expect(base.balancer.migrationThreshold).to.equal(3)
      expect(Object.isFrozen(next.balancer)).to.equal(true)
      expect({ ...next, balancer: { ...next.balancer, migrationThreshold: 3 } }).to.deep.equal(base)
    })

    it('refuses an unknown key with a hint', () => {
      const err = configError(() => setConfigValue(base, 'balancer.migrationTreshold', '1'))
      expect(err.message).to.equal('unknown key balancer.migrationTreshold (did you mean balancer.migrationThreshold?)')
    })

    it('refuses a value that is not a number', () => {
      const err = configError(() => setConfigValue(base, 'balancer.intervalMs', 'soon'))
      expect(err.message).to.equal('balancer.intervalMs must be an integer from 50 to 600000 (got "soon")')
    })

    it('refuses a change that breaks a cross-field rule, naming both keys', () => {
      const err = configError(() => setConfigValue(base, 'pool.heartbeatMs', '2000'))
      expect(err.message).to.contain('pool.hostDeadMs must be greater than pool.heartbeatMs')
      expect(err.message).to.contain('pool.heartbeatMs=2000 as set')
      expect(base.pool.heartbeatMs).to.equal(250)
    })

    it('sets and clears an optional key', () => {
      const withPort = setConfigValue(base, 'balancer.metricsPort', '9100')
      expect(withPort.balancer.metricsPort).to.equal(9100)
      const cleared = setConfigValue(withPort, 'balancer.metricsPort', '')
      expect(cleared.balancer).not.to.have.property('metricsPort')
      expect(withPort.balancer.metricsPort).to.equal(9100)
    })

    it('refuses an empty value for a required key', () => {
      const err = configError(() => setConfigValue(base, 'balancer.intervalMs', ''))
      expect(err.message).to.equal('balancer.intervalMs must be an integer from 50 to 600000 (got "")')
    })

    it('refuses a tag named __proto__ rather than dropping it silently', () => {
      const err = configError(() => setConfigValue(base, 'host.tags', '__proto__=x,a=b'))
      expect(err.message).to.match(/^host\.tags must be .* \(got "__proto__=x,a=b"\)$/)
    })

    it('parses tags and perJob like env values', () => {
      expect(setConfigValue(base, 'host.tags', 'zone=eu-1').host.tags).to.deep.equal({ zone: 'eu-1' })
      expect(setConfigValue(base, 'shares.perJob', '8').shares.perJob).to.equal(8)
      expect(setConfigValue(setConfigValue(base, 'shares.perJob', '8'), 'shares.perJob', 'auto').shares.perJob).to.equal('auto')
    })

    it('keeps values that came from a file', () => {
      const file = write('shoal.yaml', 'cluster: lab\nhost:\n  processors: [./p.js]\n')
      const fromFile = loadConfig({ file, env: {} })
      const next = setConfigValue(fromFile, 'balancer.maxMovesPerCycle', '0')
      expect(next.balancer.maxMovesPerCycle).to.equal(0)
      expect(next.cluster).to.equal('lab')
      expect(next.host.processors).to.deep.equal([path.join(dir, 'p.js')])
    })
  })
})

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
