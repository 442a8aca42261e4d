/**
 * Whether a submission repeats an admitted job: the same id again with the same processor, range,
 * input and constraints is a retry (idempotent); anything else is refused with E_JOB_EXISTS naming
 * what differs, rather than silently answering with another job's result.
 *
 * Pure. Must never do I/O.
 */

import { Packr } from 'msgpackr'
import type { Submit } from '../protocol/messages.ts'
import type { JobRecord } from './store.ts'

const packr = new Packr({ useRecords: false, mapsAsObjects: true })

/** What of `m` differs from `job` (empty when it is the same submission). */
export function submissionDiffers(job: JobRecord, m: Submit): string[] {
  const out: string[] = []
  if (job.processor !== m.processor) out.push(`processor (${job.processor}, not ${m.processor})`)
  if (job.from !== m.from || job.to !== m.to) out.push(`range ([${job.from}, ${job.to}), not [${m.from}, ${m.to}))`)
  // The input as it travels: the same value packs to the same bytes.
  if (!Buffer.from(packr.pack(job.input ?? null)).equals(Buffer.from(packr.pack(m.input ?? null)))) out.push('input')
  if (tagsText(job.requiredTags) !== tagsText(m.tags)) out.push(`tags (${tagsText(job.requiredTags) || 'none'}, not ${tagsText(m.tags) || 'none'})`)
  if ((job.spread ?? false) !== (m.spread ?? false)) out.push('spread')
  if (job.memoryBytesPerShare !== m.memoryBytesPerShare) out.push('memoryBytesPerShare')
  return out
}

function tagsText(tags: Readonly<Record<string, string>> | undefined): string {
  return Object.entries(tags ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(',')
}
