/**
 * Finds and runs a local nats-server child process: for tests, for `shoal demo` and for a
 * single-machine pool. It starts the server on a free port (JetStream on, in a fresh temporary
 * store by default), waits until it accepts connections and stops it again.
 *
 * Must never touch a server it did not start (a system nats-server may already listen on 4222), and
 * must never let a server it started outlive this process: every running child is SIGKILLed on the
 * parent's `exit`, and on SIGINT/SIGTERM/SIGHUP when nobody else handles those signals.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import {
  accessSync,
  constants as fsConstants,
  createWriteStream,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  type WriteStream,
} from 'node:fs'
import { rm } from 'node:fs/promises'
import { connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, isAbsolute, join } from 'node:path'
import { ShoalError } from '../errors.ts'

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Path of the nats-server binary; default: {@link findNatsServer}. */
  bin?: string
  /** Enable JetStream (`-js -sd storeDir`); default true. */
  jetstream?: boolean
  /**
   * JetStream store directory. Default: a fresh `mkdtemp` directory, removed on stop. A directory
   * given here is kept. Without JetStream and without this option, no directory is made and
   * `RunningNatsServer.storeDir` is `''`.
   */
  storeDir?: string
  /** Address to bind; default 127.0.0.1. */
  host?: string
  /** Client port; default: a free port chosen by the server itself (`-p -1`). */
  port?: number
  /** How long to wait for the server to accept connections; default 10000. */
  startTimeoutMs?: number
  /** Append the server's stdout and stderr (its log) to this file. */
  logFile?: string
  /**
   * Extra command-line arguments, appended last. Arguments that move the log off stderr (`-l`,
   * `-s`, `-r`) make the start time out, because readiness is read from the log: use `logFile`.
   */
  args?: string[]
}

/** A nats-server started by {@link startNatsServer}. */
export interface RunningNatsServer {
  /** Client URL, e.g. `nats://127.0.0.1:40123`. */
  url: string
  port: number
  pid: number
  /** JetStream store directory (`''` when JetStream is off and no directory was given). */
  storeDir: string
  /** SIGTERM, then SIGKILL after 3 s; removes a temporary store. Idempotent. */
  stop(): Promise<void>
}

/** How a nats-server child ended: its exit code, or the signal that killed it. */
export interface NatsServerExit {
  code: number | null
  signal: NodeJS.Signals | null
}

/**
 * A nats-server started by {@link startNatsServerChild}: a {@link RunningNatsServer} that also lets
 * its owner signal the process and wait for its end (crash tests, a node of a test cluster).
 */
export interface NatsServerChild extends RunningNatsServer {
  /** Resolves when the process has exited and its output has ended; never rejects. */
  readonly exited: Promise<NatsServerExit>
  /** Sends `signal` if the process has not exited yet (never a recycled pid); true if sent. */
  signal(signal: NodeJS.Signals): boolean
  /** The last few thousand characters the server printed. */
  output(): string
}

/** Options of {@link findNatsServer}. */
export interface FindNatsServerOptions {
  /** Fixed paths tried after PATH; default `/usr/sbin/nats-server`, `/usr/local/bin/nats-server`. */
  fallbackPaths?: readonly string[]
}

const BIN_NAME = process.platform === 'win32' ? 'nats-server.exe' : 'nats-server'
const DEFAULT_FALLBACK_PATHS: readonly string[] = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server']
const DEFAULT_START_TIMEOUT_MS = 10_000
const STOP_GRACE_MS = 3_000
const OUTPUT_TAIL_CHARS = 4_000
const TCP_PROBE_INTERVAL_MS = 25
const INSTALL_HINT =
  'Install it with `sudo apt-get install nats-server` (Debian/Ubuntu), ' +
  'or set NATS_SERVER_BIN=/path/to/nats-server.'

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false
    accessSync(path, fsConstants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * Returns the path of the nats-server binary: `NATS_SERVER_BIN` if set, else the first executable
 * `nats-server` in a `PATH` directory, else the first of `fallbackPaths`. Throws
 * `E_NATS_SERVER_MISSING` with a message that says where it looked and how to install it.
 */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env, opts: FindNatsServerOptions = {}): string {
  const explicit = env.NATS_SERVER_BIN
  if (explicit !== undefined && explicit !== '') {
    // An explicit choice is authoritative: silently running some other binary would hide the typo.
    if (isExecutableFile(explicit)) return explicit
    throw new ShoalError(
      'E_NATS_SERVER_MISSING',
      `nats-server was not found: NATS_SERVER_BIN is set to ${explicit}, which is not an executable file. ` +
        `Point NATS_SERVER_BIN at the nats-server binary, or unset it to search PATH. ${INSTALL_HINT}`,
      { details: { searched: [explicit] } },
    )
  }
  // An empty PATH entry means the current directory: never run a binary from wherever we happen to be.
  const pathDirs = (env.PATH ?? '').split(delimiter).filter((d) => d !== '' && isAbsolute(d))
  const fallbacks = opts.fallbackPaths ?? DEFAULT_FALLBACK_PATHS
  const candidates = [...pathDirs.map((d) => join(d, BIN_NAME)), ...fallbacks]
  for (const c of candidates) if (isExecutableFile(c)) return c
  const where = pathDirs.length > 0 ? `in each PATH directory (${pathDirs.join(', ')})` : 'in PATH (which is empty)'
  const also = fallbacks.length > 0 ? ` and at ${fallbacks.join(', ')}` : ''
  throw new ShoalError(
    'E_NATS_SERVER_MISSING',
    `nats-server was not found. Looked at NATS_SERVER_BIN (not set), for ${BIN_NAME} ${where}${also}. ${INSTALL_HINT}`,
    { details: { searched: candidates } },
  )
}

// --- children that must not outlive this process --------------------------------------------

interface Tracked {
  child: ChildProcess
  tempDir: string | undefined
}

const running = new Set<Tracked>()
/** Directories of callers (a test cluster's configs and stores) removed with the children. */
const extraDirs = new Set<string>()
let guardsInstalled = false

function killAllNow(): void {
  for (const t of running) {
    try {
      t.child.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
  // Best effort: the store of a killed server is garbage, and a crashed test run should not litter tmp.
  for (const t of running) {
    if (t.tempDir === undefined) continue
    try {
      rmSync(t.tempDir, { recursive: true, force: true, maxRetries: 2 })
    } catch {
      // a write racing the kill; leave it
    }
  }
  running.clear()
  for (const dir of extraDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 2 })
    } catch {
      // as above
    }
  }
  extraDirs.clear()
}

/**
 * Removes `dir` (recursively) when this process dies the way that kills the servers it started (on
 * `exit`, and on SIGINT/SIGTERM/SIGHUP when nobody else handles those), for callers that keep server
 * stores or config files in a directory of their own. Returns a function that forgets `dir`; call it
 * once the caller has removed the directory itself.
 */
export function removeDirOnParentExit(dir: string): () => void {
  installGuards()
  extraDirs.add(dir)
  return () => {
    extraDirs.delete(dir)
  }
}

function installGuards(): void {
  if (guardsInstalled) return
  guardsInstalled = true
  // 'exit' covers normal exit, process.exit() and an uncaught exception (the crashed test run).
  process.on('exit', killAllNow)
  // A signal with no handler kills Node without 'exit'. If we are the only listener, kill the
  // children and re-raise so the process still dies of the signal as it would have. If someone else
  // listens, they own shutdown (and may stop servers gracefully); their process.exit() reaches 'exit'.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      if (process.listenerCount(sig) > 1) return
      killAllNow()
      process.removeListener(sig, onSignal)
      process.kill(process.pid, sig)
    }
    process.on(sig, onSignal)
  }
}

// --- starting and stopping ------------------------------------------------------------------

function bracketIfIpv6(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/** The address a client uses to reach a server bound to `host`. */
function dialHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::' || host === '[::]') return '::1'
  return host.replace(/^\[(.*)\]$/, '$1')
}

/** True when something accepts a TCP connection on `host`:`port` (never rejects). */
export function tcpAccepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => {
      s.destroy()
      resolve(false)
    })
  })
}

function startError(message: string, output: string, details: Record<string, unknown>, cause?: unknown): ShoalError {
  const tail = output.trim()
  const text = tail === '' ? `${message} (the server printed nothing)` : `${message}. Last output of nats-server:\n${tail}`
  return new ShoalError('E_NATS_SERVER_START', text, { cause, details: { ...details, output: tail } })
}

/**
 * Starts nats-server and resolves once it accepts client connections. Rejects with
 * `E_NATS_SERVER_MISSING` when there is no binary, `E_CONFIG` when `logFile` cannot be opened, and
 * `E_NATS_SERVER_START` (carrying the tail of the server's output) when it exits early or is not
 * ready within `startTimeoutMs`; in every case nothing is left running and a temporary store is
 * removed.
 */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<RunningNatsServer> {
  const s = await startNatsServerChild(opts)
  return { url: s.url, port: s.port, pid: s.pid, storeDir: s.storeDir, stop: s.stop }
}

/**
 * {@link startNatsServer}, returning a handle that can also signal the process and await its exit.
 * Same options, same errors, same guarantee that the child dies with this process.
 */
export async function startNatsServerChild(opts: NatsServerOptions = {}): Promise<NatsServerChild> {
  let bin: string
  if (opts.bin !== undefined) {
    if (!isExecutableFile(opts.bin)) {
      throw new ShoalError(
        'E_NATS_SERVER_MISSING',
        `nats-server was not found: ${opts.bin} (given as the bin option) is not an executable file. ${INSTALL_HINT}`,
        { details: { searched: [opts.bin] } },
      )
    }
    bin = opts.bin
  } else {
    bin = findNatsServer()
  }

  const host = opts.host ?? '127.0.0.1'
  const jetstream = opts.jetstream ?? true
  const startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS
  const tempDir = opts.storeDir === undefined && jetstream ? mkdtempSync(join(tmpdir(), 'shoal-nats-')) : undefined
  const storeDir = opts.storeDir ?? tempDir ?? ''

  // Free port: `-p -1` lets the server bind port 0 itself and print the port it got. The
  // alternative (bind port 0 with `net`, close, pass the number) has a window in which a parallel
  // test process can take the port, which needs a retry loop that is itself racy; `-p -1` has no
  // window at all. The price is reading the port from the log line
  // "Listening for client connections on HOST:PORT", stable across nats-server 2.x.
  const args = ['-a', host, '-p', String(opts.port ?? -1)]
  if (jetstream) args.push('-js', '-sd', storeDir)
  args.push(...(opts.args ?? []))

  let log: WriteStream | undefined
  let child: ChildProcess
  try {
    if (opts.logFile !== undefined) {
      // Opened before the spawn so that a bad path fails here, clearly, not as a stream 'error' later.
      let fd: number
      try {
        fd = openSync(opts.logFile, 'a')
      } catch (err) {
        throw new ShoalError('E_CONFIG', `logFile must be a writable file path (got ${opts.logFile}): ${(err as Error).message}`, {
          cause: err,
          details: { key: 'logFile', value: opts.logFile },
        })
      }
      log = createWriteStream('', { fd })
      // Losing log lines must not crash the parent: the output tail is still kept in memory.
      log.on('error', () => {})
    }
    installGuards()
    child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    log?.destroy()
    if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true })
    throw err
  }
  const tracked: Tracked = { child, tempDir }
  running.add(tracked)

  let output = ''
  // 'close' fires after the process exited and its stdio ended, so the output is complete then.
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      running.delete(tracked)
      // end() only queues the flush: resolve once the log file holds every line, so a caller that
      // reads it after stop() sees the whole log (a CI run read it half-written).
      if (log === undefined) return resolve({ code, signal })
      log.end(() => resolve({ code, signal }))
      log.once('error', () => resolve({ code, signal }))
    })
  })

  let port: number | undefined
  let sawReady = false
  let lineBuf = ''
  let onLine: (() => void) | undefined
  const onData = (chunk: Buffer): void => {
    const text = chunk.toString('utf8')
    log?.write(text)
    // Keep draining for the server's whole life: a full pipe would block its logging.
    output = (output + text).slice(-OUTPUT_TAIL_CHARS)
    if (sawReady && port !== undefined) return
    lineBuf += text
    const lines = lineBuf.split('\n')
    lineBuf = lines.pop() ?? ''
    for (const line of lines) {
      const m = /Listening for client connections on (\S+):(\d+)\s*$/.exec(line)
      if (m?.[2] !== undefined) port = Number(m[2])
      if (line.includes('Server is ready')) sawReady = true
    }
    onLine?.()
  }
  child.stdout?.on('data', onData)
  child.stderr?.on('data', onData)

  const cleanupFailed = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await closed
    if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true })
  }

  const details = { bin, args, startTimeoutMs, pid: child.pid, storeDir }
  const dial = dialHost(host)
  let readyPort: number
  try {
    readyPort = await new Promise<number>((resolve, reject) => {
      let settled = false
      const settle = (f: () => void): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        onLine = undefined
        f()
      }
      const timer = setTimeout(() => {
        const why = sawReady
          ? `nats-server said it was ready but ${dial}:${port ?? '?'} did not accept a connection within ${startTimeoutMs} ms`
          : `nats-server was not ready within ${startTimeoutMs} ms (no "Server is ready" line on its output; ` +
            `arguments that send the log elsewhere, -l, -s or -r, are not supported: use the logFile option)`
        settle(() => reject(startError(why, output, details)))
      }, startTimeoutMs)
      // `on`, not `once`: a later 'error' (a failed kill) with no listener would crash the parent.
      child.on('error', (err) => {
        settle(() => reject(startError(`nats-server could not be run (${bin}): ${err.message}`, output, details, err)))
      })
      closed.then(
        ({ code, signal }) => {
          const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`
          settle(() => reject(startError(`nats-server ${how} before it was ready`, output, details)))
        },
        () => undefined, // 'close' never rejects
      )
      let probing = false
      // The log says ready, then one TCP connect confirms it: the log line alone cannot tell a
      // server that is about to fail on a late bind error from one that serves.
      onLine = (): void => {
        if (!sawReady || port === undefined || probing) return
        probing = true
        const p = port
        const probe = async (): Promise<void> => {
          while (!settled) {
            if (await tcpAccepts(dial, p)) return settle(() => resolve(p))
            await new Promise((r) => setTimeout(r, TCP_PROBE_INTERVAL_MS))
          }
        }
        probe().catch(() => undefined) // tcpAccepts never rejects
      }
      onLine()
    })
  } catch (err) {
    await cleanupFailed()
    throw err
  }

  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const killTimer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
        await closed
        clearTimeout(killTimer)
      } else {
        await closed
      }
      if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true })
    })()
    return stopping
  }

  return {
    url: `nats://${bracketIfIpv6(dial)}:${readyPort}`,
    port: readyPort,
    pid: child.pid as number,
    storeDir,
    stop,
    exited: closed,
    signal: (sig) => {
      // Node sets exitCode/signalCode only once it has reaped the child, so until then the pid is
      // still ours (a zombie at worst) and cannot belong to another process.
      if (child.exitCode !== null || child.signalCode !== null) return false
      return child.kill(sig)
    },
    output: () => output,
  }
}
