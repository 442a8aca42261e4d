/**
 * What the nats-server specs share: is a TCP port accepting, is a process gone, and an
 * assertion that a promise fails with a given ShoalError code.
 *
 * Must never signal or stop anything: it only looks.
 */

import { readFileSync } from 'node:fs'
import { expect } from 'chai'
import { ShoalError } from '../../lib/errors.ts'
import { tcpAccepts as tcpAcceptsOn } from '../../lib/nats-server/launcher.ts'

/** True when something accepts a TCP connection on 127.0.0.1:`port`. */
export function tcpAccepts(port: number): Promise<boolean> {
  return tcpAcceptsOn('127.0.0.1', port)
}

/** True when `pid` no longer runs (gone, or a zombie nobody reaped: it holds no sockets). */
export function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state === 'Z' || state === 'X'
  } catch {
    try {
      process.kill(pid, 0)
      return false
    } catch {
      return true
    }
  }
}

/** Awaits `p` (or calls it) and asserts it fails with a ShoalError of `code`; returns the error. */
export async function expectShoalError(p: Promise<unknown> | (() => unknown), code: string): Promise<ShoalError> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (err) {
    expect(err).to.be.instanceOf(ShoalError)
    expect((err as ShoalError).code).to.equal(code)
    return err as ShoalError
  }
  expect.fail(`expected a ShoalError ${code}, but nothing was thrown`)
}
