/**
 * The daemons' last line of defence: an unhandled promise rejection is logged and counted, and the
 * process carries on (Node's default would end it). Runs a real child process; and LogLimiter,
 * which keeps an outage's repeated warnings to a few lines.
 */

import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect } from 'chai'
import { pino } from 'pino'
import { LogLimiter } from '../../lib/log.ts'

const run = promisify(execFile)
const guard = fileURLToPath(new URL('../../lib/crash-guard.ts', import.meta.url))
const log = fileURLToPath(new URL('../../lib/log.ts', import.meta.url))

describe('crash guard', function () {
  this.timeout(20_000)

  it('logs and counts an unhandled rejection, and the process lives on to exit 0', async () => {
    const code = [
      `import { installCrashGuard } from ${JSON.stringify(guard)}`,
      `import { createLogger } from ${JSON.stringify(log)}`,
      `installCrashGuard(createLogger('t', 'info'), (where) => process.stdout.write('counted ' + where + '\\n'))`,
      `Promise.reject(new Error('boom in an error path'))`,
      `setTimeout(() => process.stdout.write('still alive\\n'), 100)`,
    ].join('\n')
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code])
    expect(stdout).to.include('counted unhandled-rejection').and.include('still alive')
    expect(stderr).to.include('unhandled promise rejection').and.include('boom in an error path')
  })

  it('without it, the same rejection ends the process (what the guard is for)', async () => {
    const code = `Promise.reject(new Error('boom')); setTimeout(() => process.stdout.write('still alive\\n'), 100)`
    const err = await run(process.execPath, ['--input-type=module', '-e', code]).catch((e: { code: number; stdout: string }) => e)
    expect((err as { code: number }).code).to.not.equal(0)
    expect((err as { stdout: string }).stdout ?? '').to.not.include('still alive')
  })
})

describe('log limiter', () => {
  it('logs a recurring trouble once per period, then with the count left out', () => {
    const lines: Array<{ msg: string; suppressed?: number }> = []
    const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as { msg: string; suppressed?: number }) })
    let t = 0
    const l = new LogLimiter(logger, 10_000, () => t)
    for (; t < 25_000; t += 1_000) l.warn('store', { bucket: 'x' }, 'store write failed')
    l.warn('other', {}, 'another trouble')
    expect(lines.map((x) => x.msg)).to.deep.equal([
      'store write failed',
      'store write failed (9 more since the last report)',
      'store write failed (9 more since the last report)',
      'another trouble',
    ])
    expect(lines[1]!.suppressed).to.equal(9)
  })
})
