/**
 * The processor registry of a host: the built-in processors plus the modules its operator
 * configured, loaded once at start and looked up by name.
 *
 * This is the security boundary between jobs and code: a job names a processor, and a host runs
 * only a module URL that this registry holds (the share worker imports exactly the `url` of an
 * entry). Must never accept a module path or URL from a job, and never load a module after start.
 */
import { isAbsolute } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ShoalError, toWire } from '../errors.ts'
import { BUILTIN_PROCESSOR_URLS } from './builtins.ts'
import { processorShapeProblem, type AnyProcessor } from './define.ts'

/** One registered processor and the module URL it was loaded from. */
export interface ProcessorEntry {
  readonly name: string
  /** `file:` URL of the module; the share worker imports exactly this. */
  readonly url: string
  readonly processor: AnyProcessor
}

/** The processors a host can run, by name. */
export interface ProcessorRegistry {
  /** Registered names, sorted. */
  names(): string[]
  /** The entry for `name`, or undefined when this host does not register it. */
  get(name: string): ProcessorEntry | undefined
}

/**
 * The processors a loaded module exports: its `default` export, or else a named export
 * `processor`; either may be one processor or an array of them. Throws E_PROCESSOR_LOAD naming
 * `where` when the module exports no valid processor. Shared with the share worker, which must
 * find a processor in a module exactly as the registry did.
 */
export function processorsOfModule(mod: Record<string, unknown>, where: string): AnyProcessor[] {
  const exported = mod.default !== undefined ? mod.default : mod.processor
  if (exported === undefined) {
    throw new ShoalError(
      'E_PROCESSOR_LOAD',
      `${where}: exports no processor (expected a default export or a named export 'processor': a processor or an array of processors)`,
    )
  }
  const list: unknown[] = Array.isArray(exported) ? exported : [exported]
  if (list.length === 0) throw new ShoalError('E_PROCESSOR_LOAD', `${where}: exports an empty array of processors`)
  list.forEach((p, i) => {
    const problem = processorShapeProblem(p)
    if (problem) {
      const which = Array.isArray(exported) ? ` (element ${i})` : ''
      throw new ShoalError('E_PROCESSOR_LOAD', `${where}${which}: ${problem}`)
    }
  })
  return list as AnyProcessor[]
}

/** Turns a configured module path (absolute path or `file:` URL) into the URL to import. */
function moduleUrl(path: string): string {
  if (path.startsWith('file:')) return new URL(path).href
  if (!isAbsolute(path)) {
    // A relative path would depend on the host's working directory; the config layer resolves
    // paths against the config file, so a relative one here is a bug upstream.
    throw new ShoalError('E_PROCESSOR_LOAD', `${path}: processor module paths must be absolute`)
  }
  return pathToFileURL(path).href
}

/** Imports one module and returns its processors; `where` names it in error messages. */
async function importProcessors(url: string, where: string): Promise<AnyProcessor[]> {
  let mod: Record<string, unknown>
  try {
    mod = (await import(url)) as Record<string, unknown>
  } catch (err) {
    throw new ShoalError('E_PROCESSOR_LOAD', `${where}: cannot import: ${toWire(err).message}`, { cause: err })
  }
  return processorsOfModule(mod, where)
}

/**
 * Loads the built-in processors and each configured module (absolute paths or `file:` URLs), and
 * returns the registry. Throws E_PROCESSOR_LOAD, naming the module, when a module cannot be
 * imported, exports something that is not a processor, or registers a name already taken.
 */
export async function loadProcessors(modulePaths: readonly string[]): Promise<ProcessorRegistry> {
  const sources: { url: string; where: string }[] = [
    ...BUILTIN_PROCESSOR_URLS.map((url) => ({ url, where: url })),
    ...modulePaths.map((path) => ({ url: moduleUrl(path), where: path })),
  ]
  const byName = new Map<string, ProcessorEntry & { where: string }>()
  for (const { url, where } of sources) {
    for (const processor of await importProcessors(url, where)) {
      const taken = byName.get(processor.name)
      if (taken) {
        throw new ShoalError(
          'E_PROCESSOR_LOAD',
          `${where}: processor '${processor.name}' is already registered by ${taken.where}`,
        )
      }
      byName.set(processor.name, { name: processor.name, url, processor, where })
    }
  }
  const entries = new Map<string, ProcessorEntry>(
    [...byName].map(([name, e]) => [name, Object.freeze({ name, url: e.url, processor: e.processor })]),
  )
  const names = [...entries.keys()].sort()
  return {
    names: () => [...names],
    get: (name) => entries.get(name),
  }
}
