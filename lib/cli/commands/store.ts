/**
 * `shoal store status` and `shoal store replicas N`: the JetStream streams behind a cluster's
 * buckets, with their replicas and leaders, and moving them all to another replica count (a
 * stream update; JetStream copies the data to the new peers). The balancer warns at start, naming
 * this command, when its buckets have other replicas than `nats.replicas` wants.
 */

import { Command } from 'commander'
import { ShoalError } from '../../errors.ts'
import type { NatsConnection } from '@nats-io/transport-node'
import type { Subjects } from '../../protocol/subjects.ts'
import { clientOptions, clientSettings, exitSoon, timeoutOf, type ClientFlags } from '../client-options.ts'
import { printJson, reportError } from '../output.ts'

export function storeCommand(): Command {
  return new Command('store')
    .description("show or change the replicas of the cluster's JetStream buckets")
    .addCommand(
      clientOptions(new Command('status'))
        .description('list the streams behind the buckets with replicas, current replicas and leader')
        .action((o: ClientFlags) =>
          withNats(o, async (nc, subjects) => {
            const { describeStreams } = await import('../../balancer/buckets.ts')
            const streams = await describeStreams(nc, subjects)
            if (o.json) return printJson({ cluster: subjects.cluster, streams })
            if (!streams.length) process.stdout.write(`no Shoal buckets for cluster ${subjects.cluster} yet (a balancer creates them)\n`)
            for (const s of streams) process.stdout.write(`${s.stream.padEnd(40)} replicas ${s.replicas} (${s.current} current)  leader ${s.leader ?? '-'}\n`)
          }),
        ),
    )
    .addCommand(
      clientOptions(new Command('replicas'))
        .description('set every Shoal bucket of the cluster to N replicas (1, 3 or 5); set nats.replicas to the same for new buckets')
        .argument('<n>', '1, 3 or 5')
        .action((n: string, o: ClientFlags) => {
          const replicas = Number(n)
          // Checked before connecting: a typo should not wait for NATS to say so.
          if (![1, 3, 5].includes(replicas)) return reportError(new ShoalError('E_CONFIG', `replicas must be 1, 3 or 5 (got ${JSON.stringify(n)})`), o.json === true)
          return withNats(o, async (nc, subjects) => {
            const { setReplicas } = await import('../../balancer/buckets.ts')
            const changed = await setReplicas(nc, subjects, replicas)
            if (o.json) return printJson({ cluster: subjects.cluster, replicas, changed })
            if (!changed.length) process.stdout.write(`every bucket of cluster ${subjects.cluster} already has ${replicas} replica(s)\n`)
            for (const c of changed) process.stdout.write(`${c.stream}: ${c.from} → ${c.to} replicas\n`)
          })
        }),
    )
}

async function withNats(o: ClientFlags, fn: (nc: NatsConnection, subjects: Subjects) => Promise<void>): Promise<void> {
  let nc: NatsConnection | undefined
  try {
    const timeoutMs = timeoutOf(o)
    const { nats, cluster } = await clientSettings(o)
    const [{ connectNats }, { BALANCER_IDENTITY, Subjects }] = await Promise.all([import('../../nats-connect.ts'), import('../../protocol/subjects.ts')])
    const subjects = new Subjects(cluster)
    // Bucket administration is JetStream API work, which a secured cluster allows the balancer
    // identity only: run it with the balancer's config, and take replies on the balancer's inboxes.
    nc = await connectNats({ ...nats, inboxPrefix: subjects.inbox(BALANCER_IDENTITY) }, 'shoal-store', {}, { connectTimeoutMs: timeoutMs ?? 5_000 })
    await fn(nc, subjects)
  } catch (e) {
    reportError(e, o.json === true)
  } finally {
    await nc?.close().catch(() => undefined)
    exitSoon()
  }
}
