/**
 * `shoal balancer`: runs a balancer until SIGINT/SIGTERM. Any number may run for one cluster:
 * one leads, the others stand by and take over when its lease lapses.
 */

import { Command } from 'commander'
import type { BalancerNode } from '../../balancer/node.ts'
import { addCommonOptions, configLoader, stopOnSignals, type CommonOptions } from '../common.ts'
import { parseIntArg } from '../output.ts'

interface BalancerFlags extends CommonOptions {
  metricsPort?: string
  id?: string
}

export function balancerCommand(): Command {
  return addCommonOptions(new Command('balancer'))
    .description('run a balancer: admits jobs, places, migrates and re-dispatches shares (several may run: one leads, the others stand by)')
    .option('--id <id>', 'balancer id shown as leader or standby (letters, digits, _ and -; default hostname-pid)')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port at /metrics (0: any free port; default: balancer.metricsPort, else off)')
    .action(async (o: BalancerFlags) => {
      const balancer: Record<string, unknown> = {}
      if (o.metricsPort !== undefined) balancer.metricsPort = parseIntArg('--metrics-port', o.metricsPort, 0)
      if (o.id !== undefined) balancer.id = o.id
      const extra = Object.keys(balancer).length ? { balancer } : {}
      const load = await configLoader(o, extra)
      const config = load()
      // Loaded when the command runs, not when the CLI starts (`--help` stays fast).
      const [{ BalancerNode }, { installCrashGuard }, { createLogger }] = await Promise.all([import('../../balancer/node.ts'), import('../../crash-guard.ts'), import('../../log.ts')])
      const log = createLogger('shoal-balancer', config.log.level)
      let node: BalancerNode | undefined
      installCrashGuard(log, (where) => node?.unhandled(where))
      const configFile = o.config ?? process.env.SHOAL_CONFIG
      // Editing the config file changes the balancing settings live (the others need a restart).
      node = await BalancerNode.start({ config, logger: log, ...(configFile ? { configFile, reloadConfig: load } : {}) })
      const n = node
      stopOnSignals(() => n.stop())
    })
}
