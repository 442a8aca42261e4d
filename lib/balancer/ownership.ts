/** Who a job belongs to, and who may act on it (issue 10: submitters act on their own jobs only). */

import { isOperator } from '../protocol/subjects.ts'
import type { JobRecord } from './store.ts'

/** Who submitted `job`: records from before identities were kept belong to operators. */
export function jobOwner(job: JobRecord): string {
  return job.owner ?? 'operator'
}

/** Operators may act on every job; anyone else only on their own. */
export function mayActOn(job: JobRecord, identity: string): boolean {
  return isOperator(identity) || jobOwner(job) === identity
}
