/** `shoal balancer`: runs the central balancer until SIGINT/SIGTERM. */

import { Command } from 'commander'
import { Balancer } from '../../balancer/balancer.ts'
import { addCommonOptions, configFrom, stopOnSignals, type CommonOptions } from '../common.ts'

export function balancerCommand(): Command {
  return addCommonOptions(new Command('balancer'))
    .description('run the balancer: admits jobs, places, migrates and re-dispatches shares')
    .action(async (o: CommonOptions) => {
      const b = await Balancer.start({ config: configFrom(o) })
      stopOnSignals(() => b.stop())
    })
}
