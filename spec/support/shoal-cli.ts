/**
 * Runs the real `shoal` command line as a child process and returns its exit code and output, for
 * tests that check what a user sees. A non-zero exit is a result, not a thrown error.
 *
 * Must never inherit a SHOAL_* setting the caller did not pass on purpose: callers give the whole
 * environment (usually `{ ...process.env, … }` or a test cluster's env).
 */

import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { shoalCommand } from '../../lib/cli/spawn.ts'

const run = promisify(execFile)

export interface CliOutcome {
  code: number
  stdout: string
  stderr: string
}

/** `shoal ARGS…` with exactly `env`; gives up after `timeoutMs`. */
export async function runShoal(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<CliOutcome> {
  const [exe, pre] = shoalCommand()
  try {
    const { stdout, stderr } = await run(exe, [...pre, ...args], { env, timeout: timeoutMs })
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }
  }
}
