/**
 * Times `decide` on one fixed view: one cold call (the first on that view, JIT included), then
 * `repeats` timed calls, yielding to the event loop between them. Shared by the simulator's
 * fixed-view figures and bench/sim/decide-time.ts.
 */

import { decide, type ClusterView, type Knobs } from '../../lib/balancer/core/policy.ts'

export async function timeDecide(view: ClusterView, knobs: Knobs, repeats: number): Promise<{ coldMs: number; actions: number; samples: number[] }> {
  const samples: number[] = []
  let coldMs = Number.NaN
  let actions = 0
  for (let r = 0; r <= repeats; r++) {
    const t0 = performance.now()
    const plan = decide(view, knobs, 0)
    const ms = performance.now() - t0
    if (r === 0) {
      coldMs = ms
      actions = plan.actions.length
    } else samples.push(ms)
    await new Promise((res) => setImmediate(res))
  }
  return { coldMs, actions, samples }
}
