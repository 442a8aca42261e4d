/**
 * The last line of defence of a daemon (balancer, host): a promise rejection nobody handled is
 * logged and counted instead of ending the process (Node's default since v15). It is not how
 * errors are handled — every KV write, command and report handles its own failures, and the lint
 * in `npm test` (no-floating-promises) keeps it that way — but a process that stops because of a
 * bug in an error path takes the pool's control plane with it.
 *
 * Must never swallow silently: every catch is logged with its stack and counted.
 */

import type { Logger } from './log.ts'

/** Installs the guard once per process; `count` is told where each caught error came from. */
export function installCrashGuard(log: Logger, count: (where: string) => void): void {
  process.on('unhandledRejection', (reason) => {
    const err = reason instanceof Error ? reason : new Error(String(reason))
    count('unhandled-rejection')
    log.error({ err: err.message, stack: err.stack }, 'unhandled promise rejection (a bug): logged and counted, the process carries on')
  })
}
