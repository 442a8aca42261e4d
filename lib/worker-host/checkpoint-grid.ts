/**
 * When a share's checkpoints are due: on its host's grid, `anchor + k × periodMs` on the clock of
 * `checkpointClock()`, the same for every share the host runs.
 *
 * Why a grid per host, at a random phase, rather than one per share from its start: shares placed
 * by one balancing pass start together on hundreds of hosts, and with a grid from their start they
 * checkpointed together for as long as they ran. At 2,000 hosts the balancer then took a second's
 * worth of checkpoint batches in a clump, and the last answers of a clump waited for all before
 * them (checkpoint answers p99 91–366 ms over runs of the same code, by how placement happened to
 * clump; issue 12). Hosts anchored at random phases send their batches spread over the period
 * whatever placement did, and the shares of one host, due together, go in one batch: one message
 * and one store write per host and period.
 *
 * The durability rule holds: the first checkpoint is due within one period of the start (the one
 * grid point in (start, start + period]), and each later one a period after the last, so a
 * failover never redoes more than one period of work. A share may checkpoint sooner than a period
 * after it starts; that costs one small early checkpoint.
 *
 * Must never read a clock itself: callers pass the times in (so the worker, the synthetic hosts of
 * bench/scale and the specs share it).
 */

/** The first grid point strictly after `after`: the one in (after, after + periodMs]. */
export function nextCheckpointDue(after: number, anchor: number, periodMs: number): number {
  const due = anchor + (Math.floor((after - anchor) / periodMs) + 1) * periodMs
  // Floating point may land a hair on the wrong side of `after`.
  return due > after ? due : due + periodMs
}

/** A host's anchor: a random phase of the period from `now` (the phases of a fleet are then spread). */
export function hostCheckpointAnchor(now: number, periodMs: number, random: () => number = Math.random): number {
  return now + random() * periodMs
}
