/**
 * Mocha helper: `useNatsServer()` inside a `describe` starts a fresh nats-server (free port,
 * JetStream in a temporary store) before the suite's tests and stops it after them.
 *
 * Must never connect to a server it did not start (a system nats-server may listen on 4222), and
 * must never hand out a server outside the suite's lifetime: the getters throw there instead.
 */

import { nuid } from '@nats-io/transport-node'
import { startNatsServer, type NatsServerOptions, type RunningNatsServer } from '../../lib/nats-server/launcher.ts'
import type { Subjects } from '../../lib/protocol/subjects.ts'

/** The server of the calling suite; read it in tests and hooks, not in the `describe` body. */
export interface NatsServerHandle {
  readonly url: string
  readonly server: RunningNatsServer
}

/**
 * Registers `before`/`after` hooks in the calling `describe` that start a nats-server for that suite
 * and stop it afterwards. Options go to `startNatsServer`.
 */
export function useNatsServer(opts: NatsServerOptions = {}): NatsServerHandle {
  let current: RunningNatsServer | undefined

  before(async function () {
    // The server's own start timeout must fire before mocha's hook timeout, so that a failure
    // shows the server's output rather than mocha's bare "timeout exceeded".
    const startTimeoutMs = opts.startTimeoutMs ?? 10_000
    if (this.timeout() !== 0 && this.timeout() < startTimeoutMs + 5_000) this.timeout(startTimeoutMs + 5_000)
    current = await startNatsServer({ ...opts, startTimeoutMs })
  })

  after(async function () {
    const s = current
    current = undefined
    await s?.stop()
  })

  const get = (): RunningNatsServer => {
    if (current === undefined) {
      throw new Error(
        'useNatsServer: the server exists only between the suite\'s before and after hooks; ' +
          'read .url/.server inside a test or hook of the describe that called useNatsServer()',
      )
    }
    return current
  }
  return {
    get url() {
      return get().url
    },
    get server() {
      return get()
    },
  }
}

/**
 * Request options that make a raw request come from `identity`'s inbox, as Shoal's own processes'
 * do: a host answers only the balancer's inbox, the balancer answers a host's request only on that
 * host's inbox (lib/protocol/bus.ts).
 */
export function replyAs(subjects: Subjects, identity: string, timeout = 2000): { timeout: number; noMux: true; reply: string } {
  return { timeout, noMux: true, reply: `${subjects.inbox(identity)}.${nuid.next()}` }
}
