/**
 * Host → pool: heartbeats and leaves; balancer → all: presence.
 *
 * Part of the protocol's messages (../messages.ts says what every message is); must never do I/O.
 */

import { z } from 'zod'
import { count, fraction, id, ms, shareId, tags, term, unit, v } from './common.ts'

export const shareLoadSchema = z.object({
  shareId,
  epoch: count,
  position: unit,
  to: unit,
  unitsDone: count,
  unitsPerSec: z.number().nonnegative(),
  /**
   * Fraction of wall time the share's worker thread was active over the last rate window: its
   * CPU demand in cores (≈ 1 for a CPU-bound share even on a contended core). Absent = not
   * measured yet, or a host older than this field.
   */
  busy: fraction.optional(),
  /**
   * The share finished on this host and its result (or failure) is on its way to the balancer,
   * not yet acknowledged: the share is accounted for, not lost, and uses no slot.
   */
  finished: z.boolean().optional(),
})
export type ShareLoad = z.infer<typeof shareLoadSchema>

export const heartbeatSchema = z.object({
  v,
  t: z.literal('hb'),
  hostId: id,
  seq: count,
  startedAt: ms,
  capacity: z.object({ slots: z.number().int().positive(), cores: z.number().int().positive(), memoryBytes: count }),
  tags,
  processors: z.array(z.string()),
  load: z.object({
    /** Busy fraction of the CPUs this host may run on (its affinity set), all work included. */
    cpuMachine: fraction,
    /** This host process's own CPU use as a fraction of those CPUs (process.cpuUsage). */
    cpuShoal: fraction,
    memFreeBytes: count,
    busySlots: count,
    /** Busy slots / slots. */
    utilisation: fraction,
  }),
  shares: z.array(shareLoadSchema),
  /**
   * How often this host beats now (ms): pool.heartbeatMs, or the longer period the leader
   * announced for a large pool. The balancer measures this host's silence against it. Absent:
   * pool.heartbeatMs (hosts before the period adapted).
   */
  periodMs: z.number().int().min(1).max(3_600_000).optional(),
})
export type Heartbeat = z.infer<typeof heartbeatSchema>

export const leaveSchema = z.object({ v, t: z.literal('leave'), hostId: id })
export type Leave = z.infer<typeof leaveSchema>



/**
 * Every balancer process says it is there, every pool.heartbeatMs: the leader (with its term,
 * which hosts adopt as the lowest term they obey) and the standbys (which `shoal status` lists).
 */
export const presenceSchema = z.object({
  v,
  t: z.literal('presence'),
  id,
  pid: count,
  role: z.enum(['leader', 'standby']),
  /** The leader's term; for a standby, the highest term it has seen. */
  term,
  /** When the leader took over (wall clock, ms); absent for a standby. */
  since: ms.optional(),
  /** The leader's word on how often hosts beat (ms), grown with the pool (lib/pool/heartbeat-period.ts). */
  heartbeatMs: z.number().int().min(1).max(3_600_000).optional(),
  /**
   * Store formats this balancer's recovery reads (lib/balancer/recovery.ts `STORE_READS`). A
   * leader writes a newer format only while every balancer it hears reads it, so a standby of an
   * older release never takes over a store it would misread. Absent: a release from before.
   */
  reads: z.array(z.string().max(64)).max(16).optional(),
})
export type Presence = z.infer<typeof presenceSchema>
