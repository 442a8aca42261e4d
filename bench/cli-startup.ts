/**
 * CLI start-up: the median wall time of `shoal --help` and of `shoal submit --help` (the compiled
 * CLI, bin/shoal.js, as installed), against a bare `node -e 0` measured in the same run,
 * interleaved so that the machine's load falls on all three alike. Issue 11's target: within 2×
 * of `node -e 0`.
 */

import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { BenchError, median, type BenchContext, type Figures } from './support/bench.ts'

const exec = promisify(execFile)

export const description = 'CLI start-up: median of `shoal --help` and `shoal submit --help` vs a bare `node -e 0` in the same run'

const BIN = fileURLToPath(new URL('../bin/shoal.js', import.meta.url))
const DIST_MAIN = fileURLToPath(new URL('../dist/lib/cli/main.js', import.meta.url))

async function timeMs(args: string[]): Promise<number> {
  const t0 = performance.now()
  await exec(process.execPath, args)
  return performance.now() - t0
}

export async function run(ctx: BenchContext): Promise<Figures> {
  if (!existsSync(DIST_MAIN)) throw new BenchError(`${DIST_MAIN} is missing: build it with 'npm run build' (npm ci does it)`)
  const runs = ctx.smoke ? 3 : 10
  const node: number[] = []
  const help: number[] = []
  const submitHelp: number[] = []
  for (let i = 0; i < runs; i++) {
    node.push(await timeMs(['-e', '0']))
    help.push(await timeMs([BIN, '--help']))
    submitHelp.push(await timeMs([BIN, 'submit', '--help']))
    ctx.log(`run ${i + 1}/${runs}: node ${node.at(-1)!.toFixed(0)} ms, --help ${help.at(-1)!.toFixed(0)} ms, submit --help ${submitHelp.at(-1)!.toFixed(0)} ms`)
  }
  const base = median(node)
  const r = (x: number) => +(x / base).toFixed(2)
  return {
    runs,
    nodeMs: +base.toFixed(1),
    helpMs: +median(help).toFixed(1),
    submitHelpMs: +median(submitHelp).toFixed(1),
    helpOverNode: r(median(help)),
    submitHelpOverNode: r(median(submitHelp)),
    targets: {
      helpWithin2xOfNode: `${r(median(help)) <= 2 && r(median(submitHelp)) <= 2 ? 'met' : 'MISSED'} (${r(median(help))}×, ${r(median(submitHelp))}×)`,
    },
  }
}
