/**
 * The processor registry: what a host will run, loaded once from the built-ins and configured
 * module paths, with load errors that name the module.
 *
 * Must never import processor modules except through loadProcessors.
 */
import { expect } from 'chai'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ShoalError } from '../../lib/errors.ts'
import { BUILTIN_PROCESSOR_URLS } from '../../lib/processors/builtins.ts'
import { loadProcessors } from '../../lib/processors/registry.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/processors/${name}`, import.meta.url))

async function loadError(paths: string[]): Promise<ShoalError> {
  const err = await loadProcessors(paths).then(
    () => null,
    (e: unknown) => e,
  )
  expect(err, 'loadProcessors should have failed').to.be.instanceOf(ShoalError)
  return err as ShoalError
}

describe('processor registry', () => {
  it('lists the built-in modules with the extension of the running code', () => {
    expect(BUILTIN_PROCESSOR_URLS).to.have.length(2)
    for (const url of BUILTIN_PROCESSOR_URLS) expect(url).to.match(/^file:\/\/.*\/lib\/processors\/[a-z-]+\.ts$/)
  })

  it('registers the built-in processors with the URL they were loaded from', async () => {
    const reg = await loadProcessors([])
    expect(reg.names()).to.deep.equal(['count-primes', 'cpu-burn'])
    const entry = reg.get('count-primes')!
    expect(entry.name).to.equal('count-primes')
    expect(entry.processor.name).to.equal('count-primes')
    expect(entry.url).to.equal(BUILTIN_PROCESSOR_URLS[0])
  })

  it('loads a configured module by absolute path', async () => {
    const path = fixture('throws.ts')
    const reg = await loadProcessors([path])
    expect(reg.names()).to.include('throws-at')
    expect(reg.get('throws-at')!.url).to.equal(pathToFileURL(path).href)
  })

  it('loads an array of processors from a named export `processor`', async () => {
    const reg = await loadProcessors([fixture('several.ts')])
    expect(reg.names()).to.include.members(['sum-async', 'concat'])
  })

  it('answers undefined for a name it does not register', async () => {
    const reg = await loadProcessors([])
    expect(reg.get('no-such-processor')).to.equal(undefined)
  })

  it('refuses a module that exports something that is not a processor, naming the path and the problem', async () => {
    const path = fixture('bad-shape.ts')
    const err = await loadError([path])
    expect(err.code).to.equal('E_PROCESSOR_LOAD')
    expect(err.message).to.contain(path).and.contain("'init'")
  })

  it('refuses a second processor with a name already taken', async () => {
    const path = fixture('duplicate.ts')
    const err = await loadError([path])
    expect(err.code).to.equal('E_PROCESSOR_LOAD')
    expect(err.message).to.contain(path).and.contain("'count-primes' is already registered")
  })

  it('refuses a module that cannot be imported', async () => {
    const path = fixture('does-not-exist.ts')
    const err = await loadError([path])
    expect(err.code).to.equal('E_PROCESSOR_LOAD')
    expect(err.message).to.contain(path).and.contain('cannot import')
  })

  it('refuses a relative module path, which would depend on the working directory', async () => {
    const err = await loadError(['spec/fixtures/processors/throws.ts'])
    expect(err.code).to.equal('E_PROCESSOR_LOAD')
    expect(err.message).to.contain('absolute')
  })
})
