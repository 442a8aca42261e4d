/** `shoal balancer`: runs the central balancer until SIGINT/SIGTERM. */

import { Command } from 'commander'
import { Balancer } from '../../balancer/balancer.ts'
import { addCommonOptions, configFrom, stopOnSignals, type CommonOptions } from '../common.ts'
import { parseIntArg } from '../output.ts'

interface BalancerFlags extends CommonOptions {
  metricsPort?: string
}

export function balancerCommand(): Command {
  return addCommonOptions(new Command('balancer'))
    .description('run the balancer: admits jobs, places, migrates and re-dispatches shares')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port at /metrics (0: any free port; default: balancer.metricsPort, else off)')
    .action(async (o: BalancerFlags) => {
      const extra = o.metricsPort !== undefined ? { balancer: { metricsPort: parseIntArg('--metrics-port', o.metricsPort, 0) } } : {}
      const configFile = o.config ?? process.env.SHOAL_CONFIG
      // Editing the config file changes the balancing settings live (the others need a restart).
      const b = await Balancer.start({ config: configFrom(o, extra), ...(configFile ? { configFile, reloadConfig: () => configFrom(o, extra) } : {}) })
      stopOnSignals(() => b.stop())
    })
}
