/**
 * Options every long-running command shares (--config, --nats, --cluster, --log-level), turned into
 * a validated Config, and the signal handling that stops a daemon cleanly.
 */

import type { Command } from 'commander'
import type { Config } from '../config/mod.ts'

export interface CommonOptions {
  config?: string
  nats?: string
  cluster?: string
  logLevel?: string
}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'config file (YAML or JSON); also SHOAL_CONFIG')
    .option('--nats <url>', 'NATS server URL (default: SHOAL_NATS_URL, then nats://127.0.0.1:4222)')
    .option('--cluster <name>', 'cluster name, the subject prefix (default: SHOAL_CLUSTER, then "default")')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
}

/**
 * A loader of the config with CLI flags as the highest-precedence overrides (call it again to
 * re-read the file). The config module (zod) is loaded here, when a command runs, not when the CLI
 * starts: `--help` stays fast.
 */
export async function configLoader(o: CommonOptions, extra: Record<string, unknown> = {}): Promise<() => Config> {
  const { loadConfig } = await import('../config/mod.ts')
  const overrides: Record<string, unknown> = { ...extra }
  if (o.nats !== undefined) overrides.nats = { url: o.nats }
  if (o.cluster !== undefined) overrides.cluster = o.cluster
  if (o.logLevel !== undefined) overrides.log = { level: o.logLevel }
  return () =>
    loadConfig({
      ...(o.config !== undefined ? { file: o.config } : {}),
      overrides: overrides as never,
      // A mistyped SHOAL_ variable would otherwise be ignored without a word.
      onWarning: (m) => process.stderr.write(`shoal: warning: ${m}\n`),
    })
}

/** Runs `stop` on SIGINT/SIGTERM once, then exits. */
export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) process.exit(130)
    stopping = true
    stop()
      .catch((e: unknown) => process.stderr.write(`shoal: stopping failed: ${(e as Error).message}\n`))
      .finally(() => process.exit(sig === 'SIGINT' ? 130 : 0))
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
}
