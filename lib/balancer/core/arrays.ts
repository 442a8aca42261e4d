/**
 * Arrays for `decide`'s hot loops that are of one kind from birth.
 *
 * V8 gives `[]` the kind "small integers" and changes it at the first object pushed; code compiled
 * while a loop pushed onto the first call's array then expects either kind, and a later call's
 * array of the other kind sends the loop back to the interpreter ("not a Smi": the second call's
 * share read and placement each lost half their run that way at 1,000 × 100,000, issue 12).
 *
 * Must never import NATS, timers or the clock.
 */

/** An empty array that has always held objects (or strings). */
export function objectArray<T>(): T[] {
  const a = [undefined] as unknown as T[]
  a.length = 0
  return a
}
