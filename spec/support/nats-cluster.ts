/**
 * Mocha helper: `useNatsCluster()` inside a `describe` starts a real nats-server cluster with
 * JetStream (3 nodes on free loopback ports, see lib/nats-server/cluster.ts) before the suite's
 * tests, waits until JetStream can create replicated streams, and stops it after them.
 *
 * Must never connect to a server it did not start (a system nats-server may listen on 4222), and
 * must never hand out a cluster outside the suite's lifetime: the getters throw there instead.
 */

import { startNatsCluster, type NatsClusterOptions, type RunningNatsCluster } from '../../lib/nats-server/cluster.ts'

/** Options of {@link useNatsCluster}: those of `startNatsCluster`, and whether to wait for JetStream. */
export interface UseNatsClusterOptions extends NatsClusterOptions {
  /**
   * Wait in the `before` hook until JetStream can create a stream with a replica on every node;
   * default true. A fresh cluster answers "not ready" for a few seconds.
   */
  waitForJetStream?: boolean
  /** How long that wait may take; default 30000. */
  jetStreamTimeoutMs?: number
}

/** The cluster of the calling suite; read it in tests and hooks, not in the `describe` body. */
export interface NatsClusterHandle {
  /** All client URLs comma-joined (what Shoal's `nats.url` takes). */
  readonly url: string
  /** One client URL per node. */
  readonly urls: string[]
  readonly cluster: RunningNatsCluster
  /** Milliseconds the `before` hook waited for JetStream (0 when it did not wait). */
  readonly jetStreamReadyMs: number
}

/**
 * Registers `before`/`after` hooks in the calling `describe` that start a nats-server cluster for
 * that suite and stop it afterwards. Tests that kill or pause nodes must bring them back (restart,
 * resume) before they end, or later tests of the suite get a degraded cluster.
 */
export function useNatsCluster(opts: UseNatsClusterOptions = {}): NatsClusterHandle {
  let current: RunningNatsCluster | undefined
  let readyMs = 0

  before(async function () {
    const { waitForJetStream = true, jetStreamTimeoutMs = 30_000, ...startOpts } = opts
    // The cluster's own timeouts must fire before mocha's hook timeout, so that a failure shows
    // the servers' output rather than mocha's bare "timeout exceeded".
    const startTimeoutMs = startOpts.startTimeoutMs ?? 15_000
    const budget = startTimeoutMs * 3 + (waitForJetStream ? jetStreamTimeoutMs : 0) + 5_000
    if (this.timeout() !== 0 && this.timeout() < budget) this.timeout(budget)
    const c = await startNatsCluster({ ...startOpts, startTimeoutMs })
    try {
      readyMs = waitForJetStream ? await c.waitForJetStream(jetStreamTimeoutMs) : 0
    } catch (err) {
      await c.stop()
      throw err
    }
    current = c
  })

  after(async function () {
    const c = current
    current = undefined
    await c?.stop()
  })

  const get = (): RunningNatsCluster => {
    if (current === undefined) {
      throw new Error(
        'useNatsCluster: the cluster exists only between the suite\'s before and after hooks; ' +
          'read .url/.urls/.cluster inside a test or hook of the describe that called useNatsCluster()',
      )
    }
    return current
  }
  return {
    get url() {
      return get().url
    },
    get urls() {
      return get().urls
    },
    get cluster() {
      return get()
    },
    get jetStreamReadyMs() {
      get()
      return readyMs
    },
  }
}
