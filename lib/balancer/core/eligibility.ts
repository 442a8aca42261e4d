/**
 * Which host may run which share: the one set of rules the policy (policy.ts), initial placement
 * (placement.ts) and a manual migration (`shoal migrate`, apply/migrate.ts) all apply, so a share one
 * of them puts somewhere is never one another would move back (issue 12: `shoal migrate` ignored
 * the spread limit, and the next pass moved the share back).
 *
 *   qualifies  the host runs the share's processor and carries every tag the job requires
 *   spreadCap  a spread job's shares per host: at most ceil(the job's shares / qualifying live hosts)
 *
 * Slots, memory, drain and liveness are the caller's: each keeps them in its own shape.
 *
 * Must never import NATS, timers or the clock.
 */

export type Tags = Readonly<Record<string, string>>

/** Every tag in `want` is on the host with that value. */
export function tagsMatch(have: Tags, want: Tags | undefined): boolean {
  if (!want) return true
  for (const k in want) if (have[k] !== want[k]) return false
  return true
}

/** May a host with these processors and tags ever run a share of this processor and tags? */
export function qualifies(host: { processors: ReadonlySet<string>; tags: Tags }, share: { processor: string; requiredTags?: Tags | undefined }): boolean {
  return host.processors.has(share.processor) && tagsMatch(host.tags, share.requiredTags)
}

/** Most shares of a spread job on one host: the job's shares over the live hosts that qualify (0 when none does). */
export function spreadCap(jobShares: number, qualifyingHosts: number): number {
  return qualifyingHosts === 0 ? 0 : Math.ceil(jobShares / qualifyingHosts)
}
