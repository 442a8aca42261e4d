/**
 * A worker process of the scale benchmark: many synthetic hosts (synthetic-host.ts) on one NATS
 * connection, driven by the benchmark over the Node IPC channel (orders and answers in ipc.ts).
 * Started by worker-pool.ts as `node --import tsx bench/scale/synthetic-worker.ts` with its
 * set-up in the environment; its hosts stay silent until told how many of them are active.
 *
 * One 10 ms timer sends the heartbeats that are due (each host at its own phase of
 * pool.heartbeatMs) and moves the running shares on (checkpoints due, shares finished).
 *
 * Must never outlive the benchmark: it exits when the IPC channel closes, and on any error it
 * cannot handle (the parent sees the exit and fails the run).
 */

import { connect } from '@nats-io/transport-node'
import { closeNats } from '../../lib/nats-connect.ts'
import { Bus } from '../../lib/protocol/bus.ts'
import { Codec } from '../../lib/protocol/codec.ts'
import { presenceSchema } from '../../lib/protocol/messages.ts'
import { MAX_PERIOD_FACTOR } from '../../lib/pool/heartbeat-period.ts'
import { Subjects } from '../../lib/protocol/subjects.ts'
import { WORKER_ENV, type Census, type WorkerOrder, type WorkerReady, type WorkerReply, type WorkerSetup } from './ipc.ts'
import { ReportSender } from './report-sender.ts'
import { SyntheticHost, type HostKit } from './synthetic-host.ts'
import { WindowCounter } from './window-counter.ts'

const TICK_MS = 10

function die(why: string): never {
  process.stderr.write(`scale worker: ${why}\n`)
  process.exit(1)
}

const raw = process.env[WORKER_ENV]
if (!raw || !process.send) die(`start me from bench/scale/worker-pool.ts (${WORKER_ENV} and an IPC channel are needed)`)
const setup = JSON.parse(raw) as WorkerSetup
process.on('disconnect', () => process.exit(0))
process.on('uncaughtException', (e) => die(e.stack ?? String(e)))
process.on('unhandledRejection', (e) => die(e instanceof Error ? (e.stack ?? e.message) : String(e)))

const nc = await connect({ servers: setup.natsUrl, name: `shoal-bench-scale-w${setup.index}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 })
const subjects = new Subjects(setup.cluster)
const codec = new Codec(setup.maxMessageBytes)
const bus = new Bus(nc, codec)
const counter = new WindowCounter()
const kit: HostKit = { bus, codec, sender: new ReportSender(nc, codec, subjects, setup.reportTimeoutMs), subjects, counter, setup, term: { max: 0 }, period: { ms: setup.heartbeatMs } }
// Hosts learn the leader's term, and the period to beat at, from its presence, as
// lib/worker-host/host.ts does; a changed period is announced at once in a heartbeat.
bus.subscribe(subjects.presenceAll(), presenceSchema, (p) => {
  if (p.role !== 'leader') return
  if (p.term > kit.term.max) kit.term.max = p.term
  if (p.term < kit.term.max || p.heartbeatMs === undefined) return
  const ms = Math.round(Math.min(setup.heartbeatMs * MAX_PERIOD_FACTOR, Math.max(setup.heartbeatMs, p.heartbeatMs)))
  if (ms === kit.period.ms) return
  kit.period.ms = ms
  for (const h of hosts) h.beatNow()
})
// Phases interleaved over all workers' hosts: heartbeats arrive at an even rate, not in bursts.
const slotsInPeriod = setup.hostIds.length * setup.workers
const hosts = setup.hostIds.map((id, i) => new SyntheticHost(id, kit, ((i * setup.workers + setup.index) / slotsInPeriod) * setup.heartbeatMs))
for (const h of hosts) h.listen()
await nc.flush()

const timer = setInterval(() => {
  const now = performance.now()
  for (const h of hosts) {
    h.maybeBeat(now)
    h.tick(now)
  }
}, TICK_MS)

function census(): Census {
  let running = 0
  let finishing = 0
  let activeHosts = 0
  for (const h of hosts) {
    running += h.running.size
    finishing += h.finishing.size
    if (h.active) activeHosts++
  }
  return { running, finishing, activeHosts }
}

async function obey(o: WorkerOrder): Promise<WorkerReply> {
  switch (o.t) {
    case 'active': {
      const now = performance.now()
      hosts.forEach((h, i) => {
        if (i < o.count) h.activate(now)
        else h.active = false
      })
      return { id: o.id, t: 'ok' }
    }
    case 'window-start':
      counter.start()
      return { id: o.id, t: 'ok' }
    case 'window-end':
      return { id: o.id, t: 'window', counts: counter.end() }
    case 'census':
      return { id: o.id, t: 'census', census: census() }
    case 'stop':
      clearInterval(timer)
      for (const h of hosts) h.stop()
      kit.sender.close()
      await closeNats(nc)
      return { id: o.id, t: 'ok' }
  }
}

process.on('message', (o: WorkerOrder) => {
  obey(o).then(
    (reply) => {
      process.send!(reply)
      if (o.t === 'stop') process.disconnect()
    },
    (e: unknown) => process.send!({ id: o.id, t: 'error', message: (e as Error).message } satisfies WorkerReply),
  )
})
process.send({ t: 'ready' } satisfies WorkerReady)
