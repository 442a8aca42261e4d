/**
 * `shoal auth init DIR` and `shoal auth add-host ID DIR`: generate the identities, permissions and
 * server configuration of a secured cluster (lib/auth). Prints what it wrote and how to start
 * the server and each process; never prints a seed.
 */

import { Command } from 'commander'
import type { AuthResult } from '../../auth/generate.ts'
import { parseIntArg, printJson, reportError } from '../output.ts'

interface InitFlags {
  cluster?: string
  hosts?: string
  submitters?: string
  tls?: boolean
  port?: string
  json?: boolean
}

const splitList = (s: string | undefined) => (s ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '')

export function authCommand(): Command {
  return new Command('auth')
    .description('generate NATS identities and least-privilege permissions for a secured cluster (see docs/SECURITY.md)')
    .addCommand(
      new Command('init')
        .description('write nkey seeds, a Shoal config per identity, nats-server auth.conf and server.conf into DIR')
        .argument('<dir>', 'directory to create (it must not hold a Shoal auth directory yet)')
        .option('--cluster <name>', 'cluster name', 'default')
        .option('--hosts <ids>', 'comma-separated host ids, one identity each (more later with add-host)')
        .option('--submitters <names>', 'comma-separated submitter names, one identity each (default: one identity "submitter")')
        .option('--tls', 'also make a CA and a server certificate for 127.0.0.1/localhost, and turn TLS on')
        .option('--port <port>', 'client port of the generated server.conf', '4222')
        .option('--json', 'print one JSON document on stdout')
        .action(async (dir: string, o: InitFlags) => {
          try {
            const port = parseIntArg('--port', o.port ?? '4222')
            const { authInit } = await import('../../auth/generate.ts')
            const r = await authInit({ dir, cluster: o.cluster ?? 'default', hosts: splitList(o.hosts), submitters: splitList(o.submitters), tls: o.tls === true, port })
            report(r, o.json === true)
          } catch (e) {
            reportError(e, o.json === true)
          }
        }),
    )
    .addCommand(
      new Command('add-host')
        .description('add host ID to DIR (a seed and a config), and regenerate auth.conf; then reload nats-server')
        .argument('<id>', 'host id')
        .argument('<dir>', 'directory made by shoal auth init')
        .option('--json', 'print one JSON document on stdout')
        .action(async (id: string, dir: string, o: { json?: boolean }) => {
          try {
            const { addHost } = await import('../../auth/generate.ts')
            report(addHost(dir, id), o.json === true)
          } catch (e) {
            reportError(e, o.json === true)
          }
        }),
    )
}

function report(r: AuthResult, json: boolean): void {
  if (json) return printJson({ dir: r.dir, cluster: r.manifest.cluster, port: r.manifest.port, tls: r.manifest.tls, identities: r.manifest.identities, written: r.written })
  const hosts = r.manifest.identities.filter((i) => i.startsWith('host-'))
  const lines = [
    `wrote ${r.written.length} files to ${r.dir} (seeds are mode 0600: keep them secret, give each process only its own)`,
    `identities: ${r.manifest.identities.join(', ')}`,
    '',
    `start NATS:        nats-server -c ${r.dir}/server.conf      (running already? reload it: nats-server --signal reload=<pid>)`,
    `start a balancer:  shoal balancer --config ${r.dir}/balancer.yaml`,
    ...(hosts.length ? [`start a host:      shoal host --config ${r.dir}/${hosts[0]}.yaml   (one config per host)`] : []),
    `submit a job:      shoal submit --config ${r.dir}/${r.manifest.identities.find((i) => i.startsWith('submitter')) ?? 'submitter'}.yaml ...`,
    `operate:           shoal status --config ${r.dir}/operator.yaml`,
  ]
  process.stdout.write(lines.join('\n') + '\n')
}
