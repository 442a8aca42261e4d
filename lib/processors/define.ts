/**
 * How users write processors: share-divisible work over a range of integer units.
 *
 * The runtime, not the processor, owns position, checkpoints, pauses and splits. A processor only
 * says how to start a share (`init`), how to process a sub-range `[from, to)` that the runtime picks
 * (`step`), what a share's partial result is (`result`) and how partial results combine (`merge`).
 * Between two steps the runtime may checkpoint, hand the share to another host, or split off the
 * unprocessed tail as a new share with fresh `init` state.
 *
 * Must never import NATS, piscina or anything with side effects: processor modules are loaded inside
 * worker threads and on hosts only.
 */

/** A half-open range of unit indices `[from, to)`. */
export type Range = readonly [from: number, to: number]

/**
 * A share-divisible processor. `State` and `Result` must survive msgpack (plain objects, arrays,
 * numbers, strings, booleans, null, Uint8Array, Map).
 */
export interface Processor<Input = unknown, State = unknown, Result = unknown> {
  /** Unique name under which hosts register the processor and jobs ask for it. */
  readonly name: string
  /** Fresh state for a share covering `range` (also called for a split-off tail). */
  init(input: Input, range: Range): State
  /**
   * Processes units `[from, to)` and returns the new state. May be async. Must be deterministic in
   * its inputs: a share resumed from a checkpoint re-runs steps after that checkpoint.
   */
  step(state: State, from: number, to: number, input: Input): State | Promise<State>
  /** The partial result of a share whose whole range has been stepped through. */
  result(state: State, input: Input): Result
  /** Combines two partial results; must be associative. Called in range order (a before b). */
  merge(a: Result, b: Result, input: Input): Result
  /**
   * Optional check of a job's input, run on a host before any share starts. Throw to reject the
   * job with your message.
   */
  validateInput?(input: unknown): asserts input is Input
  /**
   * Optional hint of the step size (units per step) to start from; the runtime adapts it so that a
   * step takes a few milliseconds. Default 1.
   */
  readonly initialStepUnits?: number
}

/**
 * A processor known by its name only, with its input and result types: `client.submit(ref, …)`
 * is then type-checked like a submission of the processor itself, without importing its code
 * (which may live in another package, or only on the hosts).
 */
export interface ProcessorRef<Input = unknown, Result = unknown> {
  readonly name: string
  /** Always undefined: carries the types (and keeps a processor definition from passing for a ref). */
  readonly __types: ((input: Input) => Result) | undefined
}

/** A typed reference to the processor registered as `name` on hosts. */
export function processorRef<Input = unknown, Result = unknown>(name: string): ProcessorRef<Input, Result> {
  return { name, __types: undefined }
}

/** Any processor, as the runtime sees it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyProcessor = Processor<any, any, any>

/**
 * Declares a processor. Returns its argument unchanged but typed, and checks its shape early so a
 * bad module fails when a host loads it rather than on the first share.
 *
 * @example
 * export default defineProcessor<{}, { count: number }, number>({
 *   name: 'count-even',
 *   init: () => ({ count: 0 }),
 *   step: (s, from, to) => { for (let i = from; i < to; i++) if (i % 2 === 0) s.count++; return s },
 *   result: (s) => s.count,
 *   merge: (a, b) => a + b,
 * })
 */
export function defineProcessor<Input, State, Result>(
  p: Processor<Input, State, Result>,
): Processor<Input, State, Result> {
  const problem = processorShapeProblem(p)
  if (problem) throw new TypeError(`defineProcessor: ${problem}`)
  return p
}

/** Describes what is wrong with a value that should be a processor, or returns null if nothing. */
export function processorShapeProblem(p: unknown): string | null {
  if (typeof p !== 'object' || p === null) return 'a processor must be an object'
  const o = p as Record<string, unknown>
  if (typeof o.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(o.name)) {
    return `name must be 1-64 characters of letters, digits, '_', '.', '-' (got ${JSON.stringify(o.name)})`
  }
  for (const fn of ['init', 'step', 'result', 'merge'] as const) {
    if (typeof o[fn] !== 'function') return `processor '${o.name}' must have a function '${fn}'`
  }
  if (o.validateInput !== undefined && typeof o.validateInput !== 'function') {
    return `processor '${o.name}': validateInput must be a function`
  }
  if (o.initialStepUnits !== undefined && !(Number.isInteger(o.initialStepUnits) && (o.initialStepUnits as number) >= 1)) {
    return `processor '${o.name}': initialStepUnits must be an integer >= 1`
  }
  return null
}
