/** `shoal host`: runs a worker host until SIGINT/SIGTERM. */

import { Command } from 'commander'
import type { Host } from '../../worker-host/host.ts'
import { addCommonOptions, configLoader, stopOnSignals, type CommonOptions } from '../common.ts'
import { parseIntArg, parseTags } from '../output.ts'

interface HostFlags extends CommonOptions {
  id?: string
  slots?: string
  tags?: string
  processor?: string[]
  metricsPort?: string
}

export function hostCommand(): Command {
  return addCommonOptions(new Command('host'))
    .description('run a worker host: advertises capacity and runs the shares the balancer assigns')
    .option('--id <id>', 'host id (letters, digits, _ and -; default hostname-pid)')
    .option('--slots <n>', 'worker slots, shares run at once (default: number of cores)')
    .option('--tags <k=v,...>', 'tags jobs can require, e.g. zone=a,gpu=no')
    .option('--processor <module>', 'extra processor module to register (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port at /metrics (0: any free port; default: host.metricsPort, else off)')
    .action(async (o: HostFlags) => {
      const host: Record<string, unknown> = {}
      if (o.id !== undefined) host.id = o.id
      if (o.slots !== undefined) host.slots = parseIntArg('--slots', o.slots)
      if (o.tags !== undefined) host.tags = parseTags(o.tags)
      if (o.processor !== undefined) host.processors = o.processor
      if (o.metricsPort !== undefined) host.metricsPort = parseIntArg('--metrics-port', o.metricsPort, 0)
      const config = (await configLoader(o, Object.keys(host).length ? { host } : {}))()
      // Loaded when the command runs, not when the CLI starts (`--help` stays fast).
      const [{ Host }, { installCrashGuard }, { createLogger }] = await Promise.all([import('../../worker-host/host.ts'), import('../../crash-guard.ts'), import('../../log.ts')])
      const log = createLogger('shoal-host', config.log.level)
      let h: Host | undefined
      installCrashGuard(log, (where) => h?.unhandled(where))
      h = await Host.start({ config, logger: log })
      const started = h
      stopOnSignals(() => started.stop())
    })
}
