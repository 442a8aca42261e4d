/** `shoal migrate SHARE --to HOST`, `shoal drain HOST`, `shoal undrain HOST`: operator moves. */

import { Command } from 'commander'
import { clientOptions, withClient, type ClientFlags } from '../client-options.ts'
import { formatDuration, printJson } from '../output.ts'

export function migrateCommand(): Command {
  return clientOptions(new Command('migrate'))
    .description('live-migrate a running share to another host')
    .argument('<share>', 'share id, as shown by shoal status')
    .requiredOption('--to <host>', 'target host id')
    .action((shareId: string, o: ClientFlags & { to: string }) =>
      withClient(o, async (c) => {
        const m = await c.migrate(shareId, o.to)
        if (o.json) printJson(m)
        else process.stdout.write(`${m.shareId}: ${m.fromHost} → ${m.toHost}, stun ${formatDuration(m.stunMs)}, checkpoint ${m.checkpointBytes} bytes, epoch ${m.epoch}\n`)
      }),
    )
}

export function drainCommand(drain: boolean): Command {
  const name = drain ? 'drain' : 'undrain'
  return clientOptions(new Command(name))
    .description(drain ? 'maintenance mode: migrate every share off a host and place nothing new there' : 'take a host out of maintenance mode')
    .argument('<host>', 'host id')
    .action((hostId: string, o: ClientFlags) =>
      withClient(o, async (c) => {
        await c.drain(hostId, drain)
        if (o.json) printJson({ hostId, draining: drain })
        else process.stdout.write(`${hostId}: ${drain ? 'draining' : 'in service'}\n`)
      }),
    )
}
