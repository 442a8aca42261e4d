/**
 * `shoal up`: a local cluster for your own code, until Ctrl-C — its own nats-server, a balancer and
 * N hosts that load your processor modules (.js or .ts). As soon as it is up it prints, on stdout,
 * the line to point every other command and the SDK at it (`export SHOAL_NATS_URL=…`), so that
 * `eval "$(shoal up … | head -1)"`-style scripting works; everything else goes to stderr.
 */

import { Command } from 'commander'
import { parseIntArg, reportError } from '../output.ts'

interface UpFlags {
  hosts: string
  slots?: string
  processor?: string[]
  metrics?: boolean
}

export function upCommand(): Command {
  return new Command('up')
    .description('run a local cluster (nats-server, a balancer, N hosts with your processors) until Ctrl-C')
    .option('--hosts <n>', 'host processes', '2')
    .option('--slots <n>', 'worker slots per host (default: the cores shared out among the hosts)')
    .option('--processor <file>', 'processor module every host loads, .js or .ts (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--metrics', 'serve Prometheus metrics from the balancer and every host (URLs printed)')
    .action(async (o: UpFlags) => {
      try {
        const hosts = parseIntArg('--hosts', o.hosts)
        const slots = o.slots === undefined ? undefined : parseIntArg('--slots', o.slots)
        // Loaded when the command runs, not when the CLI starts (`--help` stays fast).
        const { LocalCluster } = await import('../../sdk/local-cluster.ts')
        process.stderr.write(`starting nats-server, a balancer and ${hosts} host(s)...\n`)
        const local = await LocalCluster.start({
          hosts,
          ...(slots !== undefined ? { slots } : {}),
          processors: o.processor ?? [],
          metrics: o.metrics === true,
          cluster: 'default',
          onHostLog: (id, line) => {
            // Hosts log pino JSON at warn and above: show what went wrong, readably.
            try {
              const l = JSON.parse(line) as { msg?: string; err?: string }
              process.stderr.write(`${id}: ${l.msg ?? line}${l.err ? `: ${l.err}` : ''}\n`)
            } catch {
              process.stderr.write(`${id}: ${line}\n`)
            }
          },
        })
        process.stdout.write(`export SHOAL_NATS_URL=${local.url}\n`)
        process.stderr.write(
          [
            `up: cluster "${local.cluster}" on ${local.url}; hosts ${local.hostIds.join(', ')}${o.processor?.length ? `, loading ${o.processor.join(', ')}` : ''}`,
            ...(local.metricsUrls.length ? [`metrics: ${local.metricsUrls.join(' ')}`] : []),
            `in another terminal: export SHOAL_NATS_URL=${local.url}, then shoal status, shoal submit …, or ShoalClient.connect() from your code`,
            'Ctrl-C stops everything this started.',
            '',
          ].join('\n'),
        )
        let stopping = false
        const stop = () => {
          if (stopping) process.exit(130)
          stopping = true
          process.stderr.write('stopping hosts, balancer and nats-server...\n')
          local.stop().then(
            () => process.exit(0),
            (e: unknown) => {
              reportError(e, false)
              process.exit(1)
            },
          )
        }
        process.on('SIGINT', stop)
        process.on('SIGTERM', stop)
      } catch (e) {
        reportError(e, false)
        process.exit()
      }
    })
}
