/**
 * Loads Shoal's configuration: defaults < file (YAML or JSON) < SHOAL_* env vars < overrides (CLI
 * flags), validated against the schema, with errors that name the key, what it must be, what it got
 * and where that came from. Also `setConfigValue` for changing one key of a running process.
 *
 * Must never fall back to a default when a value is wrong or a key is unknown: a typo in a
 * threshold name that silently runs with the default is the failure this module exists to prevent.
 * Must never mutate a Config it was given.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import YAML from 'yaml'
import type { z } from 'zod'
import { ShoalError } from '../errors.ts'
import {
  ConfigSchema,
  CROSS_FIELD_RULES,
  KEYS,
  KEY_BY_NAME,
  SECTIONS,
  deepFreeze,
  getPath,
  ruleExpected,
  ruleText,
  type Config,
  type ConfigInput,
  type DeepPartial,
  type KeyInfo,
} from './schema.ts'

export interface LoadConfigOptions {
  /** Path to a .yaml, .yml or .json file. When absent, the file named by SHOAL_CONFIG, if any. */
  file?: string
  /** Where SHOAL_* variables are read from; default process.env. */
  env?: Record<string, string | undefined>
  /** Highest precedence, typically from CLI flags. Undefined values are ignored. */
  overrides?: DeepPartial<ConfigInput>
  /**
   * Told about SHOAL_* variables that map to no key but look like a misspelt one. Unrelated SHOAL_*
   * variables are ignored silently because other tools may set them.
   */
  onWarning?: (message: string) => void
}

/** Where a value came from; error messages say so, because a wrong value is fixed at its source. */
type Source =
  | { kind: 'file'; file: string }
  | { kind: 'env'; name: string; raw: string }
  | { kind: 'override' }
  | { kind: 'set'; raw: string }
  | { kind: 'current' }

/** One thing wrong with the configuration; the first one's fields become the error's details. */
interface Problem {
  key: string
  expected: string
  got: unknown
  message: string
  suggestion?: string
}

const UNSET = Symbol('unset')
type Parsed = { ok: true; value: unknown } | { ok: false } | typeof UNSET

const NUMBER_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/

/**
 * Turns a string into a value for `info`, the way env vars and `setConfigValue` spell values.
 * Only syntax is checked here; ranges and patterns are the schema's job. An empty string means
 * "not set" for scalar keys and "empty" for lists and tag maps.
 */
function parseString(info: KeyInfo, raw: string, baseDir: string): Parsed {
  const s = raw.trim()
  switch (info.meta.parse) {
    case 'int':
    case 'number':
      if (s === '') return UNSET
      return NUMBER_RE.test(s) ? { ok: true, value: Number(s) } : { ok: false }
    case 'intOrAuto':
      if (s === '') return UNSET
      if (s.toLowerCase() === 'auto') return { ok: true, value: 'auto' }
      return NUMBER_RE.test(s) ? { ok: true, value: Number(s) } : { ok: false }
    case 'enum':
      return s === '' ? UNSET : { ok: true, value: s.toLowerCase() }
    case 'string':
      // Not trimmed: a password may legitimately start or end with a space.
      return raw === '' ? UNSET : { ok: true, value: raw }
    case 'tags': {
      // A Map, so that a name like __proto__ reaches the schema (and is refused) instead of
      // silently becoming a prototype.
      const out = new Map<string, string>()
      for (const pair of s.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
        const eq = pair.indexOf('=')
        if (eq < 0) return { ok: false }
        const name = pair.slice(0, eq).trim()
        // A repeated name is ambiguous, most likely a paste error; refuse rather than pick one.
        if (out.has(name)) return { ok: false }
        out.set(name, pair.slice(eq + 1).trim())
      }
      return { ok: true, value: Object.fromEntries(out) }
    }
    case 'path':
      return s === '' ? UNSET : { ok: true, value: resolveOne(s, baseDir) }
    case 'paths':
      return { ok: true, value: resolvePaths(s.split(',').map((p) => p.trim()).filter((p) => p !== ''), baseDir) }
  }
}

function resolveOne(p: string, baseDir: string): string {
  if (p.startsWith('file:')) return fileURLToPath(p)
  return path.resolve(baseDir, p)
}

/** Leaves non-strings alone so the schema reports them with the user's own value. */
function resolvePaths(value: unknown, baseDir: string): unknown {
  if (typeof value === 'string' && value !== '') return resolveOne(value, baseDir)
  if (!Array.isArray(value)) return value
  return value.map((p: unknown) => (typeof p === 'string' && p !== '' ? resolveOne(p, baseDir) : p))
}

// ---------------------------------------------------------------------------------------------
// Messages

function formatValue(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v)
  let s: string
  try {
    s = JSON.stringify(v) ?? String(v)
  } catch {
    s = String(v)
  }
  return s.length > 80 ? s.slice(0, 77) + '...' : s
}

function describeSource(src: Source | undefined): string {
  if (src === undefined) return 'by default'
  switch (src.kind) {
    case 'file': return `from ${src.file}`
    case 'env': return `from ${src.name}`
    case 'override': return 'from overrides'
    case 'set': return 'as set'
    case 'current': return 'currently'
  }
}

/**
 * "pool.heartbeatMs must be an integer from 20 to 60000 (got 9)", shaped by where the value came
 * from: a file prefixes its path, an env var is named and its raw text quoted.
 */
function leafProblem(info: KeyInfo, src: Source | undefined, got: unknown, gotText?: string, expected?: string): Problem {
  const exp = expected ?? info.meta.expected
  let message: string
  if (src?.kind === 'env') {
    message = `${info.key} (from ${src.name}) must be ${exp} (got ${JSON.stringify(src.raw)})`
    got = src.raw
  } else if (src?.kind === 'set') {
    message = `${info.key} must be ${exp} (got ${JSON.stringify(src.raw)})`
    got = src.raw
  } else {
    const prefix = src?.kind === 'file' ? `${src.file}: ` : ''
    message = `${prefix}${info.key} must be ${exp} (got ${gotText ?? formatValue(got)})`
  }
  return { key: info.key, expected: exp, got, message }
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, sub))
    }
    prev = cur
  }
  return prev[b.length] ?? 0
}

/** The closest of `candidates` within edit distance 3, ignoring case. */
function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDist = 4
  for (const c of candidates) {
    const d = levenshtein(name.toLowerCase(), c.toLowerCase())
    if (d < bestDist) {
      best = c
      bestDist = d
    }
  }
  return best
}

const ALL_NAMES = [...KEYS.map((k) => k.key), ...SECTIONS]

/** A did-you-mean for an unknown key: a near spelling, or the same name in another section. */
function suggestKey(key: string): string | undefined {
  const near = closest(key, ALL_NAMES)
  if (near !== undefined) return near
  const last = key.split('.').pop()?.toLowerCase()
  return KEYS.find((k) => k.path[k.path.length - 1]?.toLowerCase() === last)?.key
}

function unknownKeyProblem(key: string, src: Source | undefined): Problem {
  const suggestion = suggestKey(key)
  const prefix = src?.kind === 'file' ? `${src.file}: ` : ''
  const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`
  const p: Problem = { key, expected: 'a known key', got: key, message: `${prefix}unknown key ${key}${hint}` }
  if (suggestion !== undefined) p.suggestion = suggestion
  return p
}

function configError(problems: Problem[]): ShoalError {
  const first = problems[0]
  if (first === undefined) return new ShoalError('E_CONFIG', 'invalid configuration')
  const details: Record<string, unknown> = {
    key: first.key,
    expected: first.expected,
    got: first.got,
    problems: problems.map(({ key, expected, got, message }) => ({ key, expected, got, message })),
  }
  if (first.suggestion !== undefined) details.suggestion = first.suggestion
  return new ShoalError('E_CONFIG', problems.map((p) => p.message).join('\n'), { details })
}

// ---------------------------------------------------------------------------------------------
// Layers

/** The merged, not yet validated input, and where each leaf's value came from. */
class Layers {
  readonly raw: Record<string, unknown> = {}
  readonly sources = new Map<string, Source>()
  readonly problems: Problem[] = []

  set(info: KeyInfo, value: unknown, src: Source): void {
    // zod skips a record key named __proto__ (it would replace the prototype), so the tag would
    // vanish without a word; refuse it here, where the key is still an own property.
    if (info.meta.parse === 'tags' && typeof value === 'object' && value !== null && Object.hasOwn(value, '__proto__')) {
      this.problems.push(leafProblem(info, src, value, '"__proto__" as a name'))
      // Keep the other tags so the schema still reports what else is wrong with them.
      value = Object.fromEntries(Object.entries(value).filter(([k]) => k !== '__proto__'))
    }
    let obj = this.raw
    for (const seg of info.path.slice(0, -1)) {
      const next = obj[seg]
      if (typeof next === 'object' && next !== null) {
        obj = next as Record<string, unknown>
      } else {
        const created: Record<string, unknown> = {}
        obj[seg] = created
        obj = created
      }
    }
    obj[info.path[info.path.length - 1] ?? info.key] = value
    this.sources.set(info.key, src)
  }

  /** Merges a nested object (a file's contents, overrides), refusing keys the schema lacks. */
  addObject(value: unknown, src: Source, baseDir: string, prefix: string[] = []): void {
    const where = prefix.join('.')
    // `pool:` with every child commented out is YAML null; treat that as an empty section.
    if (value === null && prefix.length > 0) return
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      const what = prefix.length === 0 ? 'the configuration' : where
      const expected = prefix.length === 0 ? 'a mapping of keys to values' : `a mapping of ${where}.* keys`
      const filePrefix = src.kind === 'file' ? `${src.file}: ` : ''
      this.problems.push({
        key: where,
        expected,
        got: value,
        message: `${filePrefix}${what} must be ${expected} (got ${formatValue(value)})`,
      })
      return
    }
    for (const [name, v] of Object.entries(value)) {
      if (v === undefined) continue
      const p = [...prefix, name]
      const key = p.join('.')
      const info = KEY_BY_NAME.get(key)
      if (info) this.set(info, info.meta.resolvePaths ? resolvePaths(v, baseDir) : v, src)
      else if (SECTIONS.includes(key)) this.addObject(v, src, baseDir, p)
      else this.problems.push(unknownKeyProblem(key, src))
    }
  }

  addEnv(env: Record<string, string | undefined>, onWarning?: (message: string) => void): void {
    for (const info of KEYS) {
      const raw = env[info.env]
      if (raw === undefined) continue
      const src: Source = { kind: 'env', name: info.env, raw }
      const parsed = parseString(info, raw, process.cwd())
      if (parsed === UNSET) continue
      if (parsed.ok) this.set(info, parsed.value, src)
      else this.problems.push(leafProblem(info, src, raw, undefined, info.meta.expectedAsString))
    }
    if (onWarning) {
      const known = KEYS.map((k) => k.env)
      for (const name of Object.keys(env)) {
        if (!name.startsWith('SHOAL_') || name === 'SHOAL_CONFIG' || known.includes(name)) continue
        const near = closest(name, known)
        if (near !== undefined) onWarning(`${name} is not a Shoal setting and is ignored (did you mean ${near}?)`)
      }
    }
  }

  /** Validates the merged input; returns the frozen Config or records problems. */
  validate(): Config | undefined {
    const result = ConfigSchema.safeParse(this.raw)
    if (result.success && this.problems.length === 0) return deepFreeze(result.data)
    if (!result.success) {
      for (const issue of result.error.issues) this.problems.push(...this.issueProblems(issue))
    }
    return undefined
  }

  private issueProblems(issue: z.core.$ZodIssue): Problem[] {
    const p = issue.path.map(String)
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => unknownKeyProblem([...p, k].join('.'), undefined))
    }
    const ruleIndex = issue.code === 'custom' ? (issue.params as { crossFieldRule?: number } | undefined)?.crossFieldRule : undefined
    const rule = ruleIndex === undefined ? undefined : CROSS_FIELD_RULES[ruleIndex]
    if (rule) {
      const valueOf = (key: string) => {
        const info = KEY_BY_NAME.get(key)
        return info ? getPath(this.raw, info.path) ?? info.default : undefined
      }
      const part = (key: string) => `${key}=${formatValue(valueOf(key))} ${describeSource(this.sources.get(key))}`
      const values = [valueOf(rule.key), valueOf(rule.other)]
      return [{
        key: rule.key,
        expected: ruleExpected(rule),
        got: values,
        message: `${ruleText(rule)} (got ${part(rule.key)}, ${part(rule.other)})`,
      }]
    }
    // The leaf is the longest prefix of the issue's path that names a key; deeper paths point
    // into a tag map or a processor list.
    for (let n = p.length; n > 0; n--) {
      const info = KEY_BY_NAME.get(p.slice(0, n).join('.'))
      if (!info) continue
      const leafValue = getPath(this.raw, info.path)
      const inner = p.slice(n)
      let gotText: string | undefined
      if (inner.length > 0) {
        const innerValue = getPath(leafValue, inner)
        gotText = issue.code === 'invalid_key'
          ? `${formatValue(inner.join('.'))} as a name`
          : `${formatValue(innerValue)} at ${info.meta.parse === 'tags' ? 'tag' : 'index'} ${inner.join('.')}`
      }
      return [leafProblem(info, this.sources.get(info.key), leafValue, gotText)]
    }
    const key = p.join('.')
    return [{ key, expected: issue.message, got: getPath(this.raw, p), message: `${key || 'configuration'}: ${issue.message}` }]
  }
}

// ---------------------------------------------------------------------------------------------
// Files

function fileError(file: string, message: string, expected: string, cause?: unknown): ShoalError {
  return new ShoalError('E_CONFIG', message, { cause, details: { key: 'file', expected, got: file } })
}

/** Reads and parses a config file; throws E_CONFIG naming the file (and the line, for syntax). */
function readConfigFile(file: string, namedBy: string): unknown {
  const ext = path.extname(file).toLowerCase()
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    throw fileError(file, `${file}: a config file must end in .yaml, .yml or .json`, 'a .yaml, .yml or .json file')
  }
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${(err as Error).message})`
    throw fileError(file, `config file ${file} ${why}${namedBy}`, 'a readable file', err)
  }
  // Editors on Windows add a BOM, which JSON.parse refuses.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  if (ext === '.json') {
    try {
      return JSON.parse(text)
    } catch (err) {
      const msg = (err as Error).message
      const pos = /position (\d+)/.exec(msg)
      let where = ''
      if (pos?.[1] !== undefined) {
        const before = text.slice(0, Number(pos[1]))
        const line = before.split('\n').length
        where = `:${line}:${before.length - before.lastIndexOf('\n')}`
      }
      throw fileError(file, `${file}${where}: invalid JSON: ${msg}`, 'valid JSON', err)
    }
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true })
  const err = doc.errors[0]
  if (err) {
    const start = err.linePos?.[0]
    const where = start ? `:${start.line}:${start.col}` : ''
    // yaml's message is "<what> at line L, column C:\n\n<snippet>"; keep what and the snippet.
    const [what = err.message, ...snippet] = err.message.split('\n')
    const body = what.replace(/ at line \d+, column \d+:$/, '')
    const context = snippet.filter((l) => l.trim() !== '').map((l) => '  ' + l).join('\n')
    throw fileError(file, `${file}${where}: invalid YAML: ${body}${context ? '\n' + context : ''}`, 'valid YAML', err)
  }
  // An empty file (or one with only comments) is an empty configuration.
  return doc.toJS() ?? {}
}

// ---------------------------------------------------------------------------------------------
// API

/**
 * Builds the configuration from defaults < file < env < overrides and validates it.
 * Throws ShoalError E_CONFIG listing every problem, one per line, each naming its key.
 */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const env = opts.env ?? process.env
  const layers = new Layers()
  const envFile = env.SHOAL_CONFIG
  const file = opts.file ?? (envFile !== undefined && envFile !== '' ? envFile : undefined)
  if (file !== undefined) {
    const namedBy = opts.file === undefined ? ' (named by SHOAL_CONFIG)' : ''
    const data = readConfigFile(file, namedBy)
    layers.addObject(data, { kind: 'file', file }, path.dirname(path.resolve(file)))
  }
  layers.addEnv(env, opts.onWarning)
  if (opts.overrides !== undefined) layers.addObject(opts.overrides, { kind: 'override' }, process.cwd())
  const config = layers.validate()
  if (config === undefined) throw configError(layers.problems)
  return config
}

/**
 * Returns a new validated Config with `key` set from `value`, parsed the way an env var would be
 * (relative processor paths resolve against cwd). `config` is left untouched. Throws E_CONFIG
 * naming the key for an unknown key, a bad value, or a value that breaks a cross-field rule.
 * An empty string unsets an optional key and empties a list or tag map.
 */
/** Throws E_CONFIG naming an unknown key, with the nearest known one when there is one. */
export function assertKnownKey(key: string): void {
  if (!KEY_BY_NAME.has(key)) throw configError([unknownKeyProblem(key, undefined)])
}

export function setConfigValue(config: Config, key: string, value: string): Config {
  const info = KEY_BY_NAME.get(key)
  if (!info) throw configError([unknownKeyProblem(key, undefined)])
  const src: Source = { kind: 'set', raw: value }
  const parsed = parseString(info, value, process.cwd())
  if (parsed !== UNSET && !parsed.ok) {
    throw configError([leafProblem(info, src, value, undefined, info.meta.expectedAsString)])
  }
  if (parsed === UNSET && !info.optional) throw configError([leafProblem(info, src, value)])

  const layers = new Layers()
  // structuredClone drops the freeze, giving a mutable copy to build the new input from.
  const current = structuredClone(config) as Record<string, unknown>
  for (const k of KEYS) {
    const v = getPath(current, k.path)
    if (v !== undefined && k.key !== key) layers.set(k, v, { kind: 'current' })
  }
  if (parsed !== UNSET) layers.set(info, parsed.value, src)
  const next = layers.validate()
  if (next === undefined) throw configError(layers.problems)
  return next
}
