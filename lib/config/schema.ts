/**
 * The configuration schema of Shoal: every key with its type, range, default, unit and meaning, in
 * one table — the zod schema below, where each leaf carries a `KeyMeta` record. Everything else in
 * lib/config is derived from that table (key list, env var names, string parsing, error messages,
 * docs/CONFIG.md), so adding a key here and to docs/CONFIG.md is the whole job.
 *
 * Must never read files, the environment or the clock: loading lives in load.ts, and this module
 * stays importable from the pure balancer core.
 */
import path from 'node:path'
import { z } from 'zod'

/** How a string (an env var, a `setConfigValue` argument) is turned into a value for a key. */
export type ParseKind = 'int' | 'number' | 'string' | 'enum' | 'intOrAuto' | 'tags' | 'paths' | 'path'

/** What the rest of lib/config knows about a leaf key beyond its zod type. */
export interface KeyMeta {
  parse: ParseKind
  /** Completes "<key> must be …" in error messages; also the "expected" column of the docs. */
  expected: string
  /** What a string must look like when this key comes from an env var, if not `expected`. */
  expectedAsString?: string
  /** Base unit of the value ('ms', 'bytes', 'units', ...); '' when it has none. */
  unit: string
  doc: string
  /** Relative entries are resolved against the config file's directory (or cwd) by the loader. */
  resolvePaths?: boolean
}

// Metadata lives in a registry rather than in `.meta()` so it stays typed and never leaks into
// anything that reads zod's global registry (JSON schema export, say).
const META = z.registry<KeyMeta>()

interface Doc {
  unit?: string
  doc: string
}

function rangeText(what: string, min: number, max: number | undefined): string {
  return max === undefined ? `${what} >= ${min}` : `${what} from ${min} to ${max}`
}

function int(min: number, max: number | undefined, d: Doc) {
  const atLeast = z.number().int().min(min)
  const s = max === undefined ? atLeast : atLeast.max(max)
  return s.register(META, { parse: 'int', expected: rangeText('an integer', min, max), unit: d.unit ?? '', doc: d.doc })
}

function num(min: number, max: number, d: Doc) {
  return z.number().min(min).max(max)
    .register(META, { parse: 'number', expected: rangeText('a number', min, max), unit: d.unit ?? '', doc: d.doc })
}

function str(re: RegExp, expected: string, d: Doc) {
  return z.string().regex(re).register(META, { parse: 'string', expected, unit: d.unit ?? '', doc: d.doc })
}

/** Cluster names become a NATS subject token, so no dots, spaces or wildcards. */
export const CLUSTER_RE = /^[A-Za-z0-9_-]{1,32}$/
/** Host ids appear in subjects and metric labels. */
export const HOST_ID_RE = /^[A-Za-z0-9_-]{1,64}$/
/** Tag names and values are matched by job constraints and become metric labels. */
export const TAG_RE = /^[A-Za-z0-9_.-]{1,64}$/
// One or more URLs separated by commas; whitespace around commas is tolerated, empty entries are not.
const NATS_URL_RE = /^\s*[^\s,]+(\s*,\s*[^\s,]+)*\s*$/

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const MIB = 1024 * 1024

// A tag named __proto__ matches TAG_RE but zod drops it silently; load.ts refuses it instead.
const tags = z.record(z.string().regex(TAG_RE), z.string().regex(TAG_RE)).register(META, {
  parse: 'tags',
  expected: 'a map of tag names to values, each 1 to 64 characters from A-Z a-z 0-9 _ . -',
  expectedAsString: 'comma-separated name=value pairs, each name and value 1 to 64 characters from A-Z a-z 0-9 _ . -',
  unit: '',
  doc: 'Tags the host advertises; jobs may require tags.',
})

const processors = z.array(z.string().min(1).refine((p) => path.isAbsolute(p))).register(META, {
  parse: 'paths',
  expected: 'a list of module paths',
  expectedAsString: 'comma-separated module paths',
  unit: '',
  doc: 'Processor modules this host loads. Relative paths are resolved against the config file\'s directory (cwd when not from a file) and stored absolute.',
  resolvePaths: true,
})

const perJob = z.union([z.literal('auto'), z.number().int().min(1)]).register(META, {
  parse: 'intOrAuto',
  expected: '"auto" or an integer >= 1',
  unit: 'shares',
  doc: 'Number of shares a job is split into when the submitter does not say; auto fills the pool\'s slots.',
})

/** One file, resolved against the config file's directory (cwd when not from a file) and stored absolute. */
const filePath = (doc: string) =>
  z.string().min(1).refine((p) => path.isAbsolute(p)).register(META, {
    parse: 'path',
    expected: 'a file path',
    unit: '',
    doc: `${doc} A relative path is resolved against the config file's directory (cwd when not from a file).`,
    resolvePaths: true,
  })

/**
 * Who a client acts as: `operator`, `operator-<name>`, `submitter` or `submitter-<name>`. It is
 * carried in the subjects the client publishes on, so that NATS permissions (from `shoal auth
 * init`) can tie each subject to one identity.
 */
export const IDENTITY_RE = /^(operator|submitter)(-[A-Za-z0-9_]{1,48})?$/

const secret = (doc: string) =>
  z.string().min(1).register(META, { parse: 'string', expected: 'a non-empty string', unit: '', doc })

/**
 * The schema of a complete configuration. Parsing `{}` yields the defaults. Sections use
 * `prefault({})` rather than `default({})` because zod 4 returns a default as-is, while a prefault
 * is parsed, which is what fills in the sections' own defaults.
 */
export const ConfigSchema = z.strictObject({
  cluster: str(CLUSTER_RE, 'a name of 1 to 32 characters from A-Z a-z 0-9 _ -', {
    doc: 'Cluster name; a NATS subject token, so several clusters can share one NATS.',
  }).default('default'),
  nats: z.strictObject({
    url: str(NATS_URL_RE, 'a NATS server URL, or several separated by commas', {
      doc: 'NATS server(s) to connect to; comma-separated for a cluster.',
    }).default('nats://127.0.0.1:4222'),
    user: secret('NATS user name.').optional(),
    pass: secret('NATS password.').optional(),
    token: secret('NATS auth token.').optional(),
    nkeySeedFile: filePath('File holding this process\'s NATS nkey seed (written by `shoal auth init`, mode 0600).').optional(),
    creds: filePath('NATS credentials file (a JWT and an nkey seed, as `nsc` writes them).').optional(),
    tls: z.strictObject({
      ca: filePath('CA certificate (PEM) that signed the NATS server\'s certificate; setting it turns TLS on.').optional(),
      cert: filePath('Client certificate (PEM), for a server that verifies clients (mutual TLS).').optional(),
      key: filePath('Private key (PEM) of nats.tls.cert.').optional(),
    }).prefault({}),
    replicas: z.number().int().refine((n) => n === 1 || n === 3 || n === 5).register(META, {
      parse: 'int',
      expected: '1, 3 or 5',
      unit: 'replicas',
      doc: 'Replicas of every JetStream bucket Shoal creates (KV and the checkpoint object store). Unset: 3 when the server is part of a NATS cluster, else 1. Existing buckets keep theirs; `shoal store replicas N` moves them.',
    }).optional(),
  }).prefault({}),
  pool: z.strictObject({
    heartbeatMs: int(20, 60_000, { unit: 'ms', doc: 'How often each host publishes a heartbeat.' }).default(250),
    suspectAfterMs: int(1, undefined, {
      unit: 'ms',
      doc: 'Silence after which the balancer marks a host suspect. Must be >= pool.heartbeatMs and < pool.hostDeadMs.',
    }).default(600),
    hostDeadMs: int(1, undefined, {
      unit: 'ms',
      doc: 'Silence after which a host is dead and its shares are re-dispatched. Must be > pool.heartbeatMs.',
    }).default(1000),
    maxHeartbeatsPerSec: int(1, 10_000_000, {
      unit: 'heartbeats/s',
      doc: 'Most heartbeats per second the balancer asks of the whole pool. A pool that would send more beats less often: the period doubles (up to 64 × pool.heartbeatMs), and each host\'s suspect and dead times grow with its period. With the defaults the period stays pool.heartbeatMs up to 500 hosts.',
    }).default(2000),
  }).prefault({}),
  balancer: z.strictObject({
    intervalMs: int(50, 600_000, { unit: 'ms', doc: 'How often the balancer runs a balancing pass.' }).default(1000),
    migrationThreshold: int(1, 5, {
      doc: 'DRS-style threshold: 1 = only mandatory moves (drain, constraints), 5 = act on slight imbalance.',
    }).default(3),
    minResidencyMs: int(0, undefined, {
      unit: 'ms',
      doc: 'A share live-migrated is not moved for balance again until it has stayed this long on its new host (against thrash). A share that was only placed may move as soon as its load shows it should.',
    }).default(10_000),
    loadWindowMs: int(0, 60_000, {
      unit: 'ms',
      doc: 'Window over which each host\'s external CPU load and each share\'s CPU demand are smoothed (the median of the heartbeats in it) before the policy acts on them; their noise is estimated over five windows. 0 = act on the last heartbeat alone.',
    }).default(1000),
    maxMovesPerCycle: int(0, undefined, { unit: 'moves', doc: 'Most migrations started in one balancing pass.' }).default(8),
    maxConcurrentMigrationsPerHost: int(1, undefined, {
      unit: 'migrations',
      doc: 'Most migrations in flight into or out of one host.',
    }).default(2),
    splitMinUnits: int(1, undefined, {
      unit: 'units',
      doc: 'A dynamic split leaves each part at least this many units, so a share with fewer than twice this many left is never split. Set it very large (e.g. 1000000000000) to turn dynamic splitting off.',
    }).default(1000),
    metricsPort: int(0, 65_535, { unit: 'port', doc: 'Port of the balancer\'s Prometheus metrics endpoint.' }).optional(),
    id: str(HOST_ID_RE, 'an id of 1 to 64 characters from A-Z a-z 0-9 _ -', {
      doc: 'Balancer id, shown by `shoal status` as leader or standby; unset means hostname-pid.',
    }).optional(),
    leaseMs: int(200, 60_000, {
      unit: 'ms',
      doc: 'Leadership lease: a standby takes over after the leader has not renewed for this long (the leader renews every fifth of it). With the default, a standby leads and places pending work about 1-1.5 s after the leader dies.',
    }).default(1000),
  }).prefault({}),
  shares: z.strictObject({
    checkpointMs: int(10, 3_600_000, { unit: 'ms', doc: 'How often a running share sends a checkpoint.' }).default(1000),
    reportLingerMs: int(0, 60_000, {
      unit: 'ms',
      doc: 'How long a host holds a checkpoint so that its other shares\' reports go in the same message (one message and one store write per host, not per share). At most half of shares.checkpointMs is used; results never wait.',
    }).default(500),
    stepTargetMs: num(0.1, 1000, {
      unit: 'ms',
      doc: 'How long one processor step should take; bounds how long a pause, checkpoint or migration waits for a safe point.',
    }).default(5),
    maxCheckpointBytes: int(1024, 64 * MIB, {
      unit: 'bytes',
      doc: 'Largest encoded checkpoint state. States over half of protocol.maxMessageBytes travel through the JetStream Object Store instead of inline.',
    }).default(8 * MIB),
    maxAttempts: int(1, undefined, {
      unit: 'attempts',
      doc: 'Most times a share is attempted before its job fails.',
    }).default(3),
    perJob: perJob.default('auto'),
    maxPerJob: int(1, undefined, { unit: 'shares', doc: 'Most shares one job is split into.' }).default(1024),
    minUnitsPerShare: int(1, undefined, { unit: 'units', doc: 'Fewest units a share is created with; bounds how finely a job is split.' }).default(1),
  }).prefault({}),
  jobs: z.strictObject({
    retainMs: int(1000, undefined, {
      unit: 'ms',
      doc: 'How long a finished (completed, failed or cancelled) job stays in the balancer\'s memory after it finished: listed by `shoal status` and `job list`, answered without a store read. Then it leaves memory (its records stay for jobs.recordRetainMs). The balancer\'s memory grows with the shares finished within this time.',
    }).default(300_000),
    recordRetainMs: int(1000, undefined, {
      unit: 'ms',
      doc: 'How long a finished job stays queryable with `shoal job get`, `job result` and the SDK after it finished (read from its records once it left memory). Then the balancer deletes its job and share records, and its id may be used again. Unset means a day, or jobs.retainMs when that is longer.',
    }).optional(),
  }).prefault({}),
  host: z.strictObject({
    id: str(HOST_ID_RE, 'an id of 1 to 64 characters from A-Z a-z 0-9 _ -', {
      doc: 'Host id; unset means the host picks hostname-pid.',
    }).optional(),
    slots: int(1, 1024, { unit: 'slots', doc: 'Worker slots (shares run at once); unset means the number of cores.' }).optional(),
    tags: tags.default({}),
    processors: processors.default([]),
    memoryBytes: int(1, undefined, { unit: 'bytes', doc: 'Memory the host advertises; unset means the machine\'s.' }).optional(),
    metricsPort: int(0, 65_535, { unit: 'port', doc: 'Port of the host\'s Prometheus metrics endpoint.' }).optional(),
  }).prefault({}),
  client: z.strictObject({
    identity: z.string().regex(IDENTITY_RE).register(META, {
      parse: 'string',
      expected: 'operator, submitter, operator-<name> or submitter-<name> (name: 1 to 48 of A-Z a-z 0-9 _)',
      unit: '',
      doc: 'Who client commands and the SDK act as. It is part of the subjects they publish on, which a secured cluster\'s permissions tie to one identity; the balancer lets a submitter see and cancel only its own jobs. `shoal auth init` writes it into each client\'s config.',
    }).default('operator'),
  }).prefault({}),
  protocol: z.strictObject({
    maxMessageBytes: int(1024, MIB, {
      unit: 'bytes',
      doc: 'Largest message Shoal sends; keep it under the NATS server\'s max_payload (1 MiB by default).',
    }).default(MIB - 4096),
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(LOG_LEVELS).register(META, {
      parse: 'enum',
      expected: `one of ${LOG_LEVELS.join(', ')}`,
      unit: '',
      doc: 'Log level (pino).',
    }).default('info'),
  }).prefault({}),
}).superRefine((c, ctx) => {
  // Runs only once every key is individually valid (zod skips refinements after type errors).
  CROSS_FIELD_RULES.forEach((rule, index) => {
    const a = getPath(c, keyPath(rule.key))
    const b = getPath(c, keyPath(rule.other))
    if (typeof a === 'number' && typeof b === 'number' && !holds(rule.relation, a, b)) {
      ctx.addIssue({ code: 'custom', path: keyPath(rule.key), message: ruleText(rule), params: { crossFieldRule: index } })
    }
  })
})

/** A rule between two keys: `key relation other` must hold. */
export interface CrossFieldRule {
  key: string
  relation: '>' | '>=' | '<'
  other: string
}

/** Rules no single key can check. Each names both keys in its error. */
export const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  // A host must get more than one beat before it is declared dead, or one late packet kills it.
  { key: 'pool.hostDeadMs', relation: '>', other: 'pool.heartbeatMs' },
  { key: 'pool.suspectAfterMs', relation: '>=', other: 'pool.heartbeatMs' },
  { key: 'pool.suspectAfterMs', relation: '<', other: 'pool.hostDeadMs' },
  // Records are what a job is read from once it left memory: they cannot go first.
  { key: 'jobs.recordRetainMs', relation: '>=', other: 'jobs.retainMs' },
]

function holds(relation: CrossFieldRule['relation'], a: number, b: number): boolean {
  return relation === '>' ? a > b : relation === '>=' ? a >= b : a < b
}

/** "greater than pool.heartbeatMs": what `rule.key` must be. */
export function ruleExpected(rule: CrossFieldRule): string {
  const words = { '>': 'greater than', '>=': 'at least', '<': 'less than' }[rule.relation]
  return `${words} ${rule.other}`
}

/** "pool.hostDeadMs must be greater than pool.heartbeatMs" */
export function ruleText(rule: CrossFieldRule): string {
  return `${rule.key} must be ${ruleExpected(rule)}`
}

/** What callers pass in: every key optional (defaults fill them). */
export type ConfigInput = z.input<typeof ConfigSchema>

export type DeepReadonly<T> = T extends readonly (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T

export type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> | undefined }
    : T

/** A complete, validated configuration: every default filled in, deeply frozen. */
export type Config = DeepReadonly<z.output<typeof ConfigSchema>>

/** Everything known about one leaf key. */
export interface KeyInfo {
  /** Dotted path, e.g. 'balancer.migrationThreshold'. */
  key: string
  path: readonly string[]
  /** e.g. 'SHOAL_BALANCER_MIGRATION_THRESHOLD'. */
  env: string
  optional: boolean
  /** The default value, or undefined for optional keys without one. */
  default: unknown
  meta: KeyMeta
}

/** `pool.heartbeatMs` → `SHOAL_POOL_HEARTBEAT_MS`. */
export function envVarName(key: string): string {
  return 'SHOAL_' + keyPath(key).map((seg) => seg.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')
}

export function keyPath(key: string): string[] {
  return key.split('.')
}

export function getPath(obj: unknown, p: readonly PropertyKey[]): unknown {
  let cur: unknown = obj
  for (const seg of p) {
    if (typeof cur !== 'object' || cur === null) return undefined
    cur = (cur as Record<PropertyKey, unknown>)[seg]
  }
  return cur
}

/** Recursively freezes a plain object; returns it typed as deeply readonly. */
export function deepFreeze<T>(obj: T): DeepReadonly<T> {
  if (typeof obj === 'object' && obj !== null && !Object.isFrozen(obj)) {
    for (const v of Object.values(obj)) deepFreeze(v)
    Object.freeze(obj)
  }
  return obj as DeepReadonly<T>
}

const DEFAULTS: Config = deepFreeze(ConfigSchema.parse({}))

/** The configuration with nothing set: all defaults. Frozen, so sharing one instance is safe. */
export function defaultConfig(): Config {
  return DEFAULTS
}

// Walks the schema once at load time. Anything that is neither a registered leaf nor an object of
// leaves is a bug in this file, so it throws at import rather than misbehaving later.
function collectLeaves(schema: z.ZodType, prefix: string[], out: KeyInfo[], sections: string[]): void {
  let s: z.ZodType = schema
  let optional = false
  for (;;) {
    const meta = META.get(s)
    if (meta) {
      const key = prefix.join('.')
      out.push({ key, path: prefix, env: envVarName(key), optional, default: getPath(DEFAULTS, prefix), meta })
      return
    }
    if (s instanceof z.ZodOptional) optional = true
    if (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodPrefault) {
      s = s.unwrap() as z.ZodType
    } else if (s instanceof z.ZodObject) {
      if (prefix.length > 0) sections.push(prefix.join('.'))
      for (const [name, child] of Object.entries(s.shape as Record<string, z.ZodType>)) {
        collectLeaves(child, [...prefix, name], out, sections)
      }
      return
    } else {
      throw new Error(`config schema: ${prefix.join('.')} has no KeyMeta`)
    }
  }
}

const leaves: KeyInfo[] = []
const sectionList: string[] = []
collectLeaves(ConfigSchema, [], leaves, sectionList)

/** Every leaf key, in schema order. */
export const KEYS: readonly KeyInfo[] = deepFreeze(leaves)
/** Every section name ('nats', 'pool', ...). */
export const SECTIONS: readonly string[] = deepFreeze(sectionList)
export const KEY_BY_NAME: ReadonlyMap<string, KeyInfo> = new Map(KEYS.map((k) => [k.key, k]))

/** Every leaf key path, e.g. 'balancer.migrationThreshold', in schema order. */
export function configKeys(): string[] {
  return KEYS.map((k) => k.key)
}
