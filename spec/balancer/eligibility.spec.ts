/**
 * The one set of rules on which host may run which share (lib/balancer/core/eligibility.ts),
 * shared by placement, the policy and manual migration. Plain data.
 */

import { expect } from 'chai'
import { qualifies, spreadCap, tagsMatch } from '../../lib/balancer/core/eligibility.ts'

describe('eligibility', () => {
  it('a host qualifies with the processor and every required tag, whatever else it carries', () => {
    const host = { processors: new Set(['count-primes', 'pi']), tags: { gpu: 'yes', zone: 'a' } }
    expect(qualifies(host, { processor: 'pi' })).to.equal(true)
    expect(qualifies(host, { processor: 'pi', requiredTags: { gpu: 'yes' } })).to.equal(true)
    expect(qualifies(host, { processor: 'pi', requiredTags: { gpu: 'no' } })).to.equal(false)
    expect(qualifies(host, { processor: 'pi', requiredTags: { rack: '1' } })).to.equal(false)
    expect(qualifies(host, { processor: 'word-lengths' })).to.equal(false)
    expect(tagsMatch({}, undefined)).to.equal(true)
  })

  it('caps a spread job at ceil(shares / qualifying hosts) per host, and at 0 with no host', () => {
    expect(spreadCap(2, 2)).to.equal(1)
    expect(spreadCap(3, 2)).to.equal(2)
    expect(spreadCap(8, 3)).to.equal(3)
    expect(spreadCap(1, 5)).to.equal(1)
    expect(spreadCap(4, 0)).to.equal(0)
  })
})
