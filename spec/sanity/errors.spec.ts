import { expect } from 'chai'
import { ShoalError, toWire, fromWire } from '../../lib/errors.ts'

describe('errors', () => {
  it('a ShoalError keeps its code, retryable flag and cause across the wire', () => {
    const inner = new ShoalError('E_PROCESSOR_THREW', 'boom')
    const outer = new ShoalError('E_JOB_FAILED', 'job failed', { cause: inner, details: { shareId: 's1' } })
    const back = fromWire(structuredClone(toWire(outer)))
    expect(back).to.be.instanceOf(ShoalError)
    expect(back.code).to.equal('E_JOB_FAILED')
    expect(back.details).to.deep.equal({ shareId: 's1' })
    expect((back.cause as ShoalError).code).to.equal('E_PROCESSOR_THREW')
    expect((back.cause as ShoalError).message).to.equal('boom')
  })

  it('a foreign error keeps its name and message under the fallback code', () => {
    const w = toWire(new TypeError('x is not a function'), 'E_PROCESSOR_THREW')
    expect(w.code).to.equal('E_PROCESSOR_THREW')
    expect(w.message).to.equal('TypeError: x is not a function')
  })

  it('an unknown code read from the wire becomes E_INTERNAL rather than a bogus code', () => {
    expect(fromWire({ code: 'E_NOPE', message: 'm' }).code).to.equal('E_INTERNAL')
  })
})
