/**
 * `shoal config get` and `shoal config set KEY VALUE`: read or change the balancing settings of a
 * running balancer without restarting it. The value is parsed like its SHOAL_ environment variable
 * and validated like start-up config; a refused change names the key and leaves the old value.
 */

import { Command } from 'commander'
import { clientOptions, withClient, type ClientFlags } from '../client-options.ts'
import { printJson } from '../output.ts'

export function configCommand(): Command {
  const get = clientOptions(new Command('get'))
    .description('print the balancing settings in force on the running balancer')
    .action((o: ClientFlags) =>
      withClient(o, async (c) => {
        const settings = await c.settings()
        if (o.json) printJson(settings)
        else for (const [k, v] of Object.entries(settings)) process.stdout.write(`${k} = ${v}\n`)
      }),
    )
  const set = clientOptions(new Command('set'))
    .description('change a balancing setting on the running balancer, e.g. balancer.migrationThreshold 1')
    .argument('<key>', 'setting, e.g. balancer.migrationThreshold (see shoal config get)')
    .argument('<value>', 'new value, written as for its SHOAL_ environment variable')
    .action((key: string, value: string, o: ClientFlags) =>
      withClient(o, async (c) => {
        const r = await c.setSetting(key, value)
        if (o.json) printJson(r)
        else process.stdout.write(r.changed ? `${key}: ${r.changed.from} → ${r.changed.to}\n` : `${key} is already ${r.settings[key]}\n`)
      }),
    )
  return new Command('config').description('read or change the balancing settings of a running balancer').addCommand(get).addCommand(set)
}
