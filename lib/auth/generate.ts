/**
 * `shoal auth init` and `shoal auth add-host`: writes a directory with everything a secured Shoal
 * cluster needs — an nkey seed and a Shoal config per identity, nats-server's auth include with
 * each identity's permissions, a complete server config, and with TLS a CA and a server
 * certificate (made with openssl). `shoal-auth.json` records what the directory holds, so that
 * add-host can regenerate the auth include from the seeds.
 *
 * Must never print or log a seed, and never overwrite one: an existing file is an error.
 */

import { execFile } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { createUser, fromSeed } from '@nats-io/nkeys'
import { stringify } from 'yaml'
import { CLUSTER_RE, HOST_ID_RE } from '../config/schema.ts'
import { ShoalError } from '../errors.ts'
import { BALANCER_IDENTITY, hostIdentity } from '../protocol/subjects.ts'
import { identityOf, permissionsFor } from './permissions.ts'
import { renderAuthConf, renderServerConf } from './server-config.ts'

const run = promisify(execFile)

export const MANIFEST = 'shoal-auth.json'
const NAME_RE = /^[A-Za-z0-9_]{1,48}$/

export interface AuthInitOptions {
  dir: string
  cluster?: string
  hosts?: readonly string[]
  /** Submitter names: each becomes `submitter-<name>`; none gives one identity `submitter`. */
  submitters?: readonly string[]
  tls?: boolean
  port?: number
}

/** What a directory made by `shoal auth init` holds. */
export interface AuthManifest {
  version: 1
  cluster: string
  port: number
  tls: boolean
  /** Every identity, in the order its user appears in auth.conf. */
  identities: string[]
}

export interface AuthResult {
  dir: string
  manifest: AuthManifest
  /** Files written, relative to `dir`. */
  written: string[]
}

export async function authInit(o: AuthInitOptions): Promise<AuthResult> {
  const dir = path.resolve(o.dir)
  const cluster = o.cluster ?? 'default'
  const port = o.port ?? 4222
  if (!CLUSTER_RE.test(cluster)) throw bad('--cluster', `must be 1 to 32 characters from A-Z a-z 0-9 _ - (got ${JSON.stringify(cluster)})`)
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw bad('--port', `must be an integer from 1 to 65535 (got ${port})`)
  const hosts = unique('--hosts', o.hosts ?? [], HOST_ID_RE, 'host ids are 1 to 64 characters from A-Z a-z 0-9 _ -')
  const submitters = unique('--submitters', o.submitters ?? [], NAME_RE, 'submitter names are 1 to 48 characters from A-Z a-z 0-9 _')
  if (existsSync(path.join(dir, MANIFEST))) {
    throw new ShoalError('E_CONFIG', `${dir} already holds a Shoal auth directory (${MANIFEST}): add hosts with 'shoal auth add-host ID ${o.dir}', or init a new directory`)
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const identities = [
    BALANCER_IDENTITY,
    'operator',
    ...(submitters.length ? submitters.map((n) => `submitter-${n}`) : ['submitter']),
    ...hosts.map(hostIdentity),
  ]
  const manifest: AuthManifest = { version: 1, cluster, port, tls: o.tls === true, identities }
  const written: string[] = []
  if (manifest.tls) written.push(...(await makeTls(dir)))
  for (const id of identities) written.push(...writeIdentity(dir, manifest, id))
  written.push(...writeServerFiles(dir, manifest))
  return { dir, manifest, written }
}

/** Adds host `hostId` to the directory `dirArg` made by {@link authInit}, and regenerates auth.conf. */
export function addHost(dirArg: string, hostId: string): AuthResult {
  const dir = path.resolve(dirArg)
  if (!HOST_ID_RE.test(hostId)) throw bad('ID', `host ids are 1 to 64 characters from A-Z a-z 0-9 _ - (got ${JSON.stringify(hostId)})`)
  const manifest = readManifest(dir)
  const id = hostIdentity(hostId)
  if (manifest.identities.includes(id)) throw new ShoalError('E_CONFIG', `host ${hostId} is already in ${dir}`)
  manifest.identities.push(id)
  const written = [...writeIdentity(dir, manifest, id), ...writeServerFiles(dir, manifest)]
  return { dir, manifest, written }
}

export function readManifest(dir: string): AuthManifest {
  const file = path.join(dir, MANIFEST)
  let m: AuthManifest
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as AuthManifest
  } catch (e) {
    throw new ShoalError('E_CONFIG', `${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): is ${dir} a directory made by 'shoal auth init'?`)
  }
  if (m.version !== 1 || typeof m.cluster !== 'string' || !Array.isArray(m.identities)) {
    throw new ShoalError('E_CONFIG', `${file} is not a Shoal auth manifest of version 1`)
  }
  return m
}

/** The seed (0600, never overwritten) and the Shoal config of one identity. */
function writeIdentity(dir: string, m: AuthManifest, identity: string): string[] {
  const seedFile = `${identity}.nk`
  const kp = createUser()
  writeFileSync(path.join(dir, seedFile), new TextDecoder().decode(kp.getSeed()) + '\n', { mode: 0o600, flag: 'wx' })
  chmodSync(path.join(dir, seedFile), 0o600) // the umask may have taken bits away, never added: make it exact
  const id = identityOf(identity)
  const config: Record<string, unknown> = {
    cluster: m.cluster,
    nats: {
      url: `nats://127.0.0.1:${m.port}`,
      nkeySeedFile: seedFile,
      ...(m.tls ? { tls: { ca: 'ca.pem' } } : {}),
    },
    ...(id.role === 'host' ? { host: { id: id.hostId } } : {}),
    ...(id.role === 'submitter' || id.role === 'operator' ? { client: { identity } } : {}),
  }
  const header = `# Shoal config of identity ${identity} (role ${id.role}), made by 'shoal auth init'.\n# Paths are relative to this file. Use it with --config or SHOAL_CONFIG.\n`
  writeFileSync(path.join(dir, `${identity}.yaml`), header + stringify(config), { flag: 'wx' })
  return [seedFile, `${identity}.yaml`]
}

function writeServerFiles(dir: string, m: AuthManifest): string[] {
  const users = m.identities.map((identity) => {
    const seed = readFileSync(path.join(dir, `${identity}.nk`), 'utf8').trim()
    return { identity, nkey: fromSeed(new TextEncoder().encode(seed)).getPublicKey(), permissions: permissionsFor(m.cluster, identityOf(identity)) }
  })
  writeFileSync(path.join(dir, 'auth.conf'), renderAuthConf(m.cluster, users))
  const tls = m.tls ? { cert: path.join(dir, 'server-cert.pem'), key: path.join(dir, 'server-key.pem') } : undefined
  writeFileSync(path.join(dir, 'server.conf'), renderServerConf({ port: m.port, storeDir: path.join(dir, 'jetstream'), tls }))
  writeFileSync(path.join(dir, MANIFEST), JSON.stringify(m, null, 2) + '\n')
  return ['auth.conf', 'server.conf', MANIFEST]
}

/** A CA and a server certificate for 127.0.0.1 and localhost, signed by it (EC P-256). */
async function makeTls(dir: string): Promise<string[]> {
  const f = (name: string) => path.join(dir, name)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  try {
    await run('openssl', ['req', '-x509', ...ec, '-keyout', f('ca-key.pem'), '-out', f('ca.pem'), '-days', '3650', '-subj', '/CN=Shoal CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
    await run('openssl', ['req', ...ec, '-keyout', f('server-key.pem'), '-out', f('server.csr'), '-subj', '/CN=localhost'])
    writeFileSync(f('server-ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
    await run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial',
      '-out', f('server-cert.pem'), '-days', '825', '-extfile', f('server-ext.cnf')])
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string }
    const why = err.code === 'ENOENT' ? 'openssl is not installed' : (err.stderr ?? err.message).trim().split('\n').at(-1)
    throw new ShoalError('E_CONFIG', `--tls: cannot make the certificates: ${why}`, { cause: e })
  }
  for (const k of ['ca-key.pem', 'server-key.pem']) chmodSync(f(k), 0o600)
  for (const k of ['server.csr', 'server-ext.cnf', 'ca.srl']) rmSync(f(k), { force: true })
  return ['ca.pem', 'ca-key.pem', 'server-cert.pem', 'server-key.pem']
}

function unique(flag: string, xs: readonly string[], re: RegExp, rule: string): string[] {
  const seen = new Set<string>()
  for (const x of xs) {
    if (!re.test(x)) throw bad(flag, `${rule} (got ${JSON.stringify(x)})`)
    if (seen.has(x)) throw bad(flag, `names ${JSON.stringify(x)} twice`)
    seen.add(x)
  }
  return [...seen]
}

function bad(flag: string, what: string): ShoalError {
  return new ShoalError('E_CONFIG', `${flag} ${what}`)
}
