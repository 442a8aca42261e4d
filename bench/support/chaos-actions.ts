/**
 * Carries out the chaos benchmark's faults (chaos-faults.ts) on a ChaosRig, one lane at a time, and
 * measures what each cost: when it started against its schedule, how long until the system had
 * recovered from it (the replacement host alive, the old leader back as a standby, the NATS node
 * rejoined with every stream caught up), the takeover it caused (takeover.ts), and for a NATS node
 * how long the shares stream had no leader and no write landed.
 *
 * A fault ends when its hold ends (a stopped process is continued, a NATS node restarted), however
 * long the measurements take: otherwise a product that cannot recover while the fault lasts would
 * hold the fault open, and the benchmark would make the outage it measures.
 *
 * Must never start a fault before the previous one of its lane has recovered, and never signal a
 * process or node without recording it in the rig first (exits and "host dead" verdicts are judged
 * by those records).
 */

import { BenchError, sleep } from './bench.ts'
import type { Fault, FaultKind } from './chaos-faults.ts'
import type { ChaosRig } from './chaos-rig.ts'
import { firstWriteAfter, lastSequence, ledBy, streamNames } from './stream-watch.ts'
import { measureTakeover, type Takeover } from './takeover.ts'

/** The small job submitted right after a balancer fault: π(2·10⁶), one share. */
export const PROBE = { processor: 'count-primes', range: [0, 2_000_000] as const, shares: 1, expected: 148_933 }

/** How long any recovery may take before the run is declared broken. */
const RECOVERY_TIMEOUT_MS = 60_000
/**
 * How long a takeover may take before the run is declared broken: long, because a slow takeover is
 * a figure to report (a standby that recovers while a NATS node is down can take a minute here).
 */
const TAKEOVER_TIMEOUT_MS = 180_000
/** How long a NATS fault's election and first write are waited for (null in the figures after it). */
const MEASURE_TIMEOUT_MS = 60_000

export interface NatsFaultFigures {
  node: string
  /** The node led the shares stream when it went down (so the stream had to elect a leader). */
  ledSharesStream: boolean
  /** Everything it led then: Shoal's streams (kind) and `meta` (the JetStream meta group). */
  led: string[]
  /** Signal → waitForStreamLeader named another node (only when the node led the stream; null: not while it was down). */
  jsElectionMs?: number | null
  /** Signal → the first write to the shares stream that landed once the node was gone (JetStream's own timestamp); null: none within a minute. */
  kvWritesFailMs: number | null
  restartMs: number
  catchUpMs: number
}

export interface FaultRecord {
  kind: FaultKind
  /** What was hit: a host (and its replacement), a balancer id, a NATS node name. */
  target: string
  scheduledAtMs: number
  startedAtMs: number
  /** Held for (kill → replacement/restart started, stop → cont, down → restart). */
  heldMs: number
  /** Fault → recovery confirmed. */
  recoveredAfterMs: number
  takeover?: Takeover
  nats?: NatsFaultFigures
}

export interface LaneContext {
  rig: ChaosRig
  /** Date.now() at the start of the chaos phase (fault times are relative to it). */
  t0: number
  log: (line: string) => void
  /** Set when another lane failed: stop before the next fault. */
  cancelled: () => boolean
  /** Probe job ids handed out so far (to check their results at the end). */
  probes: string[]
}

/** Runs a lane's faults in order, adding what each one cost to `out` as it ends (kept if a later one fails). */
export async function runLane(ctx: LaneContext, faults: readonly Fault[], out: FaultRecord[]): Promise<void> {
  for (const f of faults) {
    await sleep(Math.max(0, ctx.t0 + f.atMs - Date.now()))
    if (ctx.cancelled()) break
    out.push(await runFault(ctx, f))
  }
}

async function runFault(ctx: LaneContext, f: Fault): Promise<FaultRecord> {
  switch (f.kind) {
    case 'host-kill':
    case 'host-stop':
      return hostFault(ctx, f)
    case 'leader-kill':
    case 'leader-stop':
      return leaderFault(ctx, f)
    case 'nats-kill':
    case 'nats-term':
      return natsFault(ctx, f)
  }
}

const rel = (ctx: LaneContext, t: number): number => t - ctx.t0

async function hostFault(ctx: LaneContext, f: Extract<Fault, { kind: 'host-kill' | 'host-stop' }>): Promise<FaultRecord> {
  const { rig } = ctx
  await rig.waitForHostAlive(f.host, RECOVERY_TIMEOUT_MS)
  const child = rig.shoal.hosts.get(f.host)
  if (!child) throw new BenchError(`no host process ${f.host} to fault`)
  const at = Date.now()
  if (f.kind === 'host-kill') {
    rig.windows.push({ host: f.host, kind: 'kill', from: at })
    rig.signal(child, 'SIGKILL')
    ctx.log(`  fault: SIGKILL host ${f.host}`)
    await rig.exitOf(child)
    await sleep(Math.max(0, at + f.holdMs - Date.now()))
    const held = Date.now() - at
    rig.startHost(f.replacement, rig.nodeOf.get(f.host) ?? 0)
    await rig.waitForHostAlive(f.replacement, RECOVERY_TIMEOUT_MS)
    const rec = Date.now() - at
    ctx.log(`  recovered: ${f.replacement} replaces ${f.host}, alive ${(rec / 1000).toFixed(1)} s after the kill`)
    return { kind: f.kind, target: `${f.host}→${f.replacement}`, scheduledAtMs: f.atMs, startedAtMs: rel(ctx, at), heldMs: held, recoveredAfterMs: rec }
  }
  const w: { host: string; kind: 'stop'; from: number; to?: number } = { host: f.host, kind: 'stop', from: at }
  rig.windows.push(w)
  rig.signal(child, 'SIGSTOP')
  ctx.log(`  fault: SIGSTOP host ${f.host} for ${f.holdMs} ms`)
  await sleep(Math.max(0, at + f.holdMs - Date.now()))
  // The window closes when the host runs again; a verdict within hostDeadMs after it is still its doing.
  w.to = Date.now()
  rig.signal(child, 'SIGCONT')
  const held = w.to - at
  await rig.waitForHostAlive(f.host, RECOVERY_TIMEOUT_MS)
  const rec = Date.now() - at
  ctx.log(`  recovered: ${f.host} alive again ${((Date.now() - w.to) / 1000).toFixed(1)} s after SIGCONT`)
  return { kind: f.kind, target: f.host, scheduledAtMs: f.atMs, startedAtMs: rel(ctx, at), heldMs: held, recoveredAfterMs: rec }
}

/** SIGKILL or SIGSTOP of the leader with a standby running; shared by the chaos and takeover phases. */
export async function leaderFault(ctx: LaneContext, f: { kind: 'leader-kill' | 'leader-stop'; atMs: number; holdMs: number }): Promise<FaultRecord> {
  const { rig } = ctx
  await rig.waitForAnyStandby(RECOVERY_TIMEOUT_MS)
  const from = await rig.leader()
  const cause = f.kind === 'leader-kill' ? 'SIGKILL' : 'SIGSTOP'
  const jobId = `probe-${ctx.probes.length + 1}-${Date.now().toString(36)}`
  ctx.probes.push(jobId)
  const at = Date.now()
  rig.signal(from.child, cause)
  ctx.log(`  fault: ${cause} leading balancer ${from.id} (term ${from.term})`)
  // A stopped leader is continued when its hold is over, however long the takeover takes: the
  // schedule says how long the fault lasts, the measurement only watches.
  let contAt: number | undefined
  const cont = (): void => {
    if (contAt !== undefined) return
    contAt = Date.now()
    rig.signal(from.child, 'SIGCONT')
  }
  const timer = cause === 'SIGSTOP' ? setTimeout(cont, Math.max(0, at + f.holdMs - Date.now())) : undefined
  let takeover: Takeover
  try {
    takeover = await measureTakeover({ fast: rig.fast, from, cause, faultAt: at, probe: { processor: PROBE.processor, range: PROBE.range, shares: PROBE.shares, jobId }, timeoutMs: TAKEOVER_TIMEOUT_MS, leaseMs: rig.leaseMs, contAt: () => contAt })
  } catch (e) {
    clearTimeout(timer)
    if (cause === 'SIGSTOP') cont()
    throw e
  }
  if (takeover.outcome === 'kept') ctx.log(`  no takeover: ${from.id} kept its lease (term ${from.term}) through the stop; pending work placed after ${takeover.pendingWorkPlacedAfterMs} ms`)
  else ctx.log(`  takeover: ${takeover.to.id} leads with term ${takeover.to.term} after ${takeover.leaderElectedAfterMs} ms (lease taken after ${takeover.leaseTakenAfterMs} ms), pending work placed after ${takeover.pendingWorkPlacedAfterMs} ms`)
  let held: number
  if (cause === 'SIGKILL') {
    await rig.exitOf(from.child)
    await sleep(Math.max(0, at + f.holdMs - Date.now()))
    held = Date.now() - at
    rig.restartBalancer(from.id)
  } else {
    await sleep(Math.max(0, at + f.holdMs - Date.now()))
    cont()
    clearTimeout(timer)
    held = contAt! - at
  }
  // A leader that kept its lease leads on; the other balancer is still the standby.
  if (takeover.outcome === 'takeover') await rig.waitForStandby(from.id, RECOVERY_TIMEOUT_MS)
  const rec = Date.now() - at
  ctx.log(`  recovered: ${from.id} ${takeover.outcome === 'takeover' ? 'stands by' : 'leads'} again ${(rec / 1000).toFixed(1)} s after the fault`)
  return { kind: f.kind, target: from.id, scheduledAtMs: f.atMs, startedAtMs: rel(ctx, at), heldMs: held, recoveredAfterMs: rec, takeover }
}

/**
 * Takes a NATS node down (SIGKILL or SIGTERM) and restarts it; shared by the chaos and NATS phases.
 * The node stays down for `holdMs`, and with `untilMeasured` also until the shares stream has a new
 * leader and a write has landed (or their wait ran out): the chaos schedule decides how long a node
 * is down, the NATS phase keeps it down while it measures.
 */
export async function natsFault(ctx: LaneContext, f: { kind: 'nats-kill' | 'nats-term'; atMs: number; holdMs: number; node: number | 'shares-leader'; untilMeasured?: boolean }): Promise<FaultRecord> {
  const { rig } = ctx
  const stream = `KV_shoal_${rig.shoal.cluster}_shares`
  const leaderName = await rig.nats.waitForStreamLeader(stream, { timeoutMs: RECOVERY_TIMEOUT_MS })
  const leaderIdx = rig.nats.nodes.findIndex((n) => n.name === leaderName)
  const idx = f.node === 'shares-leader' ? leaderIdx : f.node
  const node = rig.nats.nodes[idx]!
  const led = idx === leaderIdx
  const sinceSeq = await lastSequence(rig.admin, stream)
  const prefix = `shoal_${rig.shoal.cluster}_`
  const ledNow = (await ledBy(rig.admin, streamNames(rig.shoal.cluster), node.name, rig.nats.nodes.map((n) => n.httpPort))).map((s) => s.replace(/^(KV|OBJ)_/, '').replace(prefix, ''))
  const signal = f.kind === 'nats-kill' ? 'SIGKILL' : 'SIGTERM'
  const at = Date.now()
  await rig.natsDownNode(idx, signal)
  // Writes count from the moment the node is gone (a SIGTERMed node may still store some while it
  // shuts down); both figures are measured from the signal. Either may end after the restart: then
  // the writes failed (or the stream had no leader) until the node was back.
  const goneAt = Date.now()
  ctx.log(`  fault: ${signal} NATS node ${node.name} (leading: ${ledNow.join(', ') || 'nothing'}), gone after ${goneAt - at} ms`)
  // Without `untilMeasured` the node may be back before the stream elected another leader (it
  // may then lead again): the wait ends shortly after the restart, and the figure is null.
  const electionWaitMs = f.untilMeasured ? MEASURE_TIMEOUT_MS : f.holdMs + 2_000
  const election = led
    ? rig.nats.waitForStreamLeader(stream, { not: node.name, timeoutMs: electionWaitMs }).then(
        () => Date.now() - at,
        () => null,
      )
    : Promise.resolve(undefined)
  const write = firstWriteAfter(rig.admin, stream, goneAt, sinceSeq, MEASURE_TIMEOUT_MS).then(
    (t) => t - at,
    () => null,
  )
  await sleep(Math.max(0, at + f.holdMs - Date.now()))
  if (f.untilMeasured) await Promise.all([election, write])
  const held = Date.now() - at
  const { restartMs, catchUpMs } = await rig.natsRestartNode(idx)
  // An election still pending now did not happen while the node was down (listed first, a
  // settled election wins the race).
  const jsElectionMs = await Promise.race([election, Promise.resolve(null)])
  const kvWritesFailMs = await write
  const rec = Date.now() - at
  const shown = (ms: number | null | undefined): string => (ms === null ? 'none while it was down' : `${ms} ms`)
  ctx.log(`  recovered: ${node.name} back after ${held} ms down (restart ${restartMs} ms, streams caught up ${catchUpMs} ms later); ${led ? `shares stream leader elected: ${shown(jsElectionMs)}, ` : ''}first shares write: ${shown(kvWritesFailMs)} after the fault`)
  const nats: NatsFaultFigures = { node: node.name, ledSharesStream: led, led: ledNow, kvWritesFailMs, restartMs, catchUpMs }
  if (jsElectionMs !== undefined) nats.jsElectionMs = jsElectionMs
  return { kind: f.kind, target: node.name, scheduledAtMs: f.atMs, startedAtMs: rel(ctx, at), heldMs: held, recoveredAfterMs: rec, nats }
}
