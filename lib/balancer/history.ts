/**
 * The recent migrations and failovers, newest last: what `shoal status` shows and what the stun
 * model learns from. Bounded, so a long-running balancer keeps a fixed amount of history.
 */

import type { Failover, Migration } from '../protocol/messages.ts'

export const HISTORY_KEPT = 200

export class History {
  readonly #migrations: Migration[] = []
  readonly #failovers: Failover[] = []

  migrations(): readonly Migration[] {
    return this.#migrations
  }

  failovers(): readonly Failover[] {
    return this.#failovers
  }

  addMigration(m: Migration): void {
    this.#migrations.push(m)
    if (this.#migrations.length > HISTORY_KEPT) this.#migrations.shift()
  }

  addFailover(f: Failover): void {
    this.#failovers.push(f)
    if (this.#failovers.length > HISTORY_KEPT) this.#failovers.shift()
  }
}
