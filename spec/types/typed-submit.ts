/**
 * Compile-time checks of the typed SDK: `npm test` type-checks this file (tsc --noEmit), and every
 * line marked @ts-expect-error must fail to compile — if one compiled, tsc would report the marker
 * as unused and the test run would fail. Nothing here runs.
 */

import { ShoalClient, defineProcessor, processorRef, type Job } from '../../lib/index.ts'

interface PiInput {
  samplesPerUnit: number
}
interface PiResult {
  inside: number
  total: number
}

const pi = defineProcessor<PiInput, PiResult, PiResult>({
  name: 'monte-carlo-pi',
  init: () => ({ inside: 0, total: 0 }),
  step: (s) => s,
  result: (s) => s,
  merge: (a, b) => ({ inside: a.inside + b.inside, total: a.total + b.total }),
})

/** The same processor by name only, typed without importing its code. */
const piByName = processorRef<PiInput, PiResult>('monte-carlo-pi')

export async function typedSubmissions(client: ShoalClient): Promise<void> {
  // Input and result types come from the processor's definition.
  const job: Job<PiResult> = await client.submit(pi, { range: [0, 1000], input: { samplesPerUnit: 1000 } })
  const r: PiResult = await job.result()
  const ratio: number = r.inside / r.total
  void ratio
  const byName = await client.submit(piByName, { range: [0, 1000], input: { samplesPerUnit: 10 } })
  const r2: PiResult = await byName.result()
  void r2

  // @ts-expect-error — a string where the input wants a number
  await client.submit(pi, { range: [0, 1000], input: { samplesPerUnit: 'lots' } })
  // @ts-expect-error — the input is required by this processor
  await client.submit(pi, { range: [0, 1000] })
  // @ts-expect-error — a misspelt field of the input
  await client.submit(pi, { range: [0, 1000], input: { samplesPerUnitt: 10 } })
  // @ts-expect-error — the result is a PiResult, not a number
  const wrong: Job<number> = await client.submit(pi, { range: [0, 1000], input: { samplesPerUnit: 1 } })
  void wrong
  const later = await client.submit(piByName, { range: [0, 1], input: { samplesPerUnit: 1 } })
  // @ts-expect-error — the result's fields are known
  void (await later.result()).insidee

  // The name-based form stays, for names known only at run time (the CLI, other languages).
  const untyped = await client.submit({ processor: 'monte-carlo-pi', range: [0, 1000], input: { samplesPerUnit: 1 } })
  void untyped
}
