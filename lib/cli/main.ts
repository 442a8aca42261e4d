#!/usr/bin/env node
/**
 * The `shoal` command line: one subcommand per file in ./commands. Every command has --help; data
 * goes to stdout (--json for one JSON document), diagnostics to stderr.
 */

import { Command } from 'commander'
import { reportError } from './output.ts'
import { balancerCommand } from './commands/balancer.ts'
import { hostCommand } from './commands/host.ts'
import { submitCommand } from './commands/submit.ts'
import { statusCommand } from './commands/status.ts'
import { demoCommand } from './commands/demo.ts'
import { drainCommand, migrateCommand } from './commands/migrate.ts'
import { configCommand } from './commands/config.ts'
import { storeCommand } from './commands/store.ts'
import { authCommand } from './commands/auth.ts'
import { jobCommand } from './commands/job.ts'
import { upCommand } from './commands/up.ts'

export function buildCli(): Command {
  return new Command('shoal')
    .description('Pool the CPU and memory of many hosts over NATS and keep work spread across them')
    .version('0.1.0')
    .showHelpAfterError()
    .addCommand(balancerCommand())
    .addCommand(hostCommand())
    .addCommand(submitCommand())
    .addCommand(statusCommand())
    .addCommand(jobCommand())
    .addCommand(migrateCommand())
    .addCommand(drainCommand(true))
    .addCommand(drainCommand(false))
    .addCommand(configCommand())
    .addCommand(storeCommand())
    .addCommand(authCommand())
    .addCommand(upCommand())
    .addCommand(demoCommand())
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv)
  } catch (e) {
    reportError(e, argv.includes('--json'))
  }
}

await main(process.argv)
