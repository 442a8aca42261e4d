/**
 * The processor modules every host registers without configuration. Listed as module URLs, not
 * imported here, because the registry imports them on the main thread and the share worker imports
 * the same URL inside its own thread.
 *
 * Must never list a module that is not shipped with Shoal: this list is what a host runs without
 * its operator asking for it.
 */

// Under tsx (tests, `npm run bench`) this file is `.ts`; compiled output is `.js`. The sibling
// modules have the same extension as this one.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'

/** URLs (`file:`) of the built-in processor modules: `count-primes`, `cpu-burn`. */
export const BUILTIN_PROCESSOR_URLS: readonly string[] = Object.freeze(
  ['./count-primes', './cpu-burn'].map((name) => new URL(name + ext, import.meta.url).href),
)
