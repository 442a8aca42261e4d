/**
 * A host's Prometheus metrics (`shoal_` prefix, base units), in a registry of its own whose every
 * series carries a `host` label. Units processed and checkpoint latency are counted as they
 * happen; utilisation, running shares and CPU are read from the host at scrape time. Names and
 * labels are the contract in grafana/METRICS.md.
 *
 * Must never import NATS or the host itself: the host hands in a `HostStateSource`.
 */

import { Counter, Gauge, Histogram, Registry } from 'prom-client'

export interface HostState {
  slots: number
  sharesRunning: number
  /** Busy fraction of the host's CPUs, all work included, and the host process's own, 0..1. */
  cpuMachine: number
  cpuShoal: number
}

export type HostStateSource = () => HostState

/** Checkpoint round trips: sub-millisecond inline states to seconds for large Object Store ones. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

export class HostMetrics {
  readonly registry = new Registry()
  readonly unitsProcessed: Counter
  readonly checkpointLatency: Histogram
  /** A periodic checkpoint acknowledged durable → how long after it was due (0 when on time). */
  readonly checkpointLateness: Histogram
  /** Worst lateness of a durable checkpoint since the host started (seconds; 0 until one is late). */
  readonly checkpointLatenessMax: Gauge
  /** How long before they are due shares take their checkpoints. */
  readonly checkpointLead: Gauge
  readonly checkpointsSuperseded: Counter
  readonly reconnects: Counter
  readonly rejected: Counter<'subject' | 'cause'>
  readonly checkpointFailures: Counter<'cause'>
  readonly reportRetries: Counter<'type'>
  readonly errors: Counter<'where'>
  /** The highest balancer term this host has obeyed. */
  readonly term: Gauge

  constructor(hostId: string, source: HostStateSource) {
    this.registry.setDefaultLabels({ host: hostId })
    const r = [this.registry]
    this.unitsProcessed = new Counter({ name: 'shoal_host_units_processed_total', help: 'Units this host processed (units redone after a loss count again).', registers: r })
    this.checkpointLatency = new Histogram({ name: 'shoal_host_checkpoint_latency_seconds', help: 'Checkpoint sent → the balancer acknowledged it durable.', buckets: LATENCY_BUCKETS, registers: r })
    this.checkpointLateness = new Histogram({ name: 'shoal_host_checkpoint_lateness_seconds', help: 'Periodic checkpoint acknowledged durable, after it was due (0 = on time or early).', buckets: [0, ...LATENCY_BUCKETS], registers: r })
    this.checkpointLatenessMax = new Gauge({ name: 'shoal_host_checkpoint_lateness_max_seconds', help: 'Worst lateness of a durable periodic checkpoint since this host started.', registers: r })
    this.checkpointLead = new Gauge({ name: 'shoal_host_checkpoint_lead_seconds', help: 'How long before it is due each share takes its checkpoint (from measured round trips).', registers: r })
    this.checkpointsSuperseded = new Counter({ name: 'shoal_host_checkpoints_superseded_total', help: 'Checkpoints not sent because a newer one of the same share was already waiting.', registers: r })
    this.reconnects = new Counter({ name: 'shoal_nats_reconnects_total', help: 'Times this host reconnected to NATS.', registers: r })
    this.rejected = new Counter({ name: 'shoal_host_messages_rejected_total', help: 'Messages this host counted and dropped, by subject and cause.', labelNames: ['subject', 'cause'], registers: r })
    this.checkpointFailures = new Counter({ name: 'shoal_host_checkpoint_failures_total', help: 'Checkpoints not acknowledged, by cause (timeout, unavailable, refused, error).', labelNames: ['cause'], registers: r })
    this.reportRetries = new Counter({ name: 'shoal_host_report_retries_total', help: 'Result and failure reports sent again because no durable answer came, by report type.', labelNames: ['type'], registers: r })
    this.errors = new Counter({ name: 'shoal_host_errors_total', help: 'Errors logged and survived (an unhandled rejection), by where.', labelNames: ['where'], registers: r })
    this.term = new Gauge({ name: 'shoal_host_balancer_term', help: 'The highest leadership term of a balancer this host has obeyed.', registers: r })
    for (const cause of ['timeout', 'unavailable', 'refused', 'error']) this.checkpointFailures.inc({ cause }, 0)
    for (const type of ['done', 'failed']) this.reportRetries.inc({ type }, 0)
    this.errors.inc({ where: 'unhandled-rejection' }, 0)
    new Gauge({
      name: 'shoal_host_worker_utilisation_ratio',
      help: 'Busy slots over slots.',
      registers: r,
      collect() {
        const s = source()
        this.set(s.slots > 0 ? Math.min(1, s.sharesRunning / s.slots) : 0)
      },
    })
    new Gauge({ name: 'shoal_host_shares_running', help: 'Shares running on this host.', registers: r, collect() { this.set(source().sharesRunning) } })
    new Gauge({ name: 'shoal_host_cpu_machine_ratio', help: 'Busy fraction of the CPUs this host may run on, all work included.', registers: r, collect() { this.set(source().cpuMachine) } })
    new Gauge({ name: 'shoal_host_cpu_shoal_ratio', help: 'This host process\'s own share of its CPUs.', registers: r, collect() { this.set(source().cpuShoal) } })
  }
}
