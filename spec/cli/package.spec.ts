/**
 * The package as a user gets it: `npm pack` of this repository installed into a separate project,
 * and docs/PROCESSORS.md's worked example run as written there — its shell blocks and its
 * TypeScript script are read from the page itself, so the page cannot drift from what works. The
 * result the page shows must be the one the run gives.
 *
 * Packs the current dist/ (built by `npm ci`'s prepare step, as every CLI spec uses it) without
 * running the build again. The install resolves Shoal's dependencies from npm's cache where it can
 * (`prefer-offline`, set in the environment, not in the documented command).
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect } from 'chai'
import pi from '../../docs/examples/pi.ts'
import { tcpAccepts } from '../support/processes.ts'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const doc = readFileSync(path.join(root, 'docs/PROCESSORS.md'), 'utf8')
const section = doc.slice(doc.indexOf('## Worked example'))

/** The fenced blocks of one language in the worked example, in order. */
function blocks(lang: string): string[] {
  return [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!)
}

/** A shell block's commands: comment lines and trailing comments dropped. */
function commands(block: string): string[] {
  return block.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#')).map((l) => l.replace(/\s+#.*$/, '').trim())
}

/** The environment of a user's shell: no SHOAL_ setting of ours, npm answering from its cache. */
function userEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SHOAL_') && !k.startsWith('npm_')))
  return { ...env, npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' }
}

describe('the packed package in a separate project (docs/PROCESSORS.md as written)', function () {
  this.timeout(240_000)
  let dir: string
  let project: string
  let tarball: string
  let up: ChildProcess | undefined

  before(async function () {
    if (!existsSync(path.join(root, 'dist/lib/index.js'))) throw new Error('dist/ is missing: run npm run build (npm ci does it)')
    dir = mkdtempSync(path.join(tmpdir(), 'shoal-pkg-'))
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, env: userEnv() })
    tarball = path.join(dir, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename)
    project = path.join(dir, 'my-project')
    mkdirSync(project)
  })

  after(async () => {
    try {
      if (up?.pid) process.kill(-up.pid, 'SIGKILL')
    } catch {
      // The group is gone already.
    }
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('installs, runs `shoal up --processor ./pi.ts`, and gives the result the page shows from the CLI and from the typed script', async () => {
    const [setup, submit] = blocks('sh')
    expect(setup, 'the set-up block').to.be.a('string')
    expect(submit, 'the submit block').to.be.a('string')
    const setupCmds = commands(setup!)
    const upCmd = setupCmds.find((c) => c.startsWith('npx shoal up'))
    expect(upCmd, 'the page runs npx shoal up').to.match(/--processor \.\/pi\.ts/)
    // The README shows the same in three lines: install, up, submit.
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8')
    for (const cmd of ['npm install /path/to/shoal-0.1.0.tgz', upCmd!, commands(submit!).find((c) => c.startsWith('npx shoal submit'))!]) expect(readme, 'README').to.include(cmd)
    // The set-up as written, with the placeholders the page names filled in.
    for (const cmd of setupCmds.filter((c) => c !== upCmd)) {
      const line = cmd.replaceAll('/path/to/shoal-0.1.0.tgz', tarball).replaceAll('/path/to/shoal/', root)
      await run('sh', ['-c', line], { cwd: project, env: userEnv(), timeout: 180_000 }).catch((e: { stderr?: string }) => {
        throw new Error(`\`${line}\` failed: ${e.stderr ?? String(e)}`)
      })
    }
    expect(existsSync(path.join(project, 'pi.ts'))).to.equal(true)

    // `shoal up` in its own process group, as a terminal runs it; Ctrl-C goes to the whole group.
    up = spawn('sh', ['-c', `exec ${upCmd}`], { cwd: project, env: userEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    up.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => up!.on('exit', (code, signal) => r({ code, signal })))
    const first = await new Promise<string>((resolve, reject) => {
      let out = ''
      up!.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d
        if (out.includes('\n')) resolve(out.split('\n')[0]!)
      })
      exited.then((x) => reject(new Error(`shoal up exited (${x.code ?? x.signal}) before its first line: ${stderr}`)), () => undefined)
    })
    expect(first).to.match(/^export SHOAL_NATS_URL=nats:\/\/127\.0\.0\.1:\d+$/)
    const port = first.split(':').at(-1)!

    // What the processor gives, computed here from the same definition.
    const input = { samplesPerUnit: 10_000 }
    const expected = pi.result(pi.step(pi.init(input, [0, 1000]), 0, 1000, input) as ReturnType<typeof pi.init>, input)
    const shown = /^# (\{.*\})$/m.exec(submit!)?.[1]
    expect(shown && JSON.parse(shown), 'the result the page shows').to.deep.equal(expected)

    const script = commands(submit!).join('\n').replaceAll('PORT', port)
    const cli = await run('sh', ['-c', script], { cwd: project, env: userEnv(), timeout: 60_000 })
    expect(JSON.parse(cli.stdout.trim().split('\n').at(-1)!)).to.deep.equal(expected)

    const ts = blocks('ts').find((b) => b.startsWith('// submit-pi.ts'))
    expect(ts, 'the submit-pi.ts block').to.be.a('string')
    writeFileSync(path.join(project, 'submit-pi.ts'), ts!)
    const typed = await run('sh', ['-c', 'npx tsx submit-pi.ts'], { cwd: project, env: { ...userEnv(), SHOAL_NATS_URL: first.slice('export SHOAL_NATS_URL='.length) }, timeout: 60_000 })
    expect(typed.stdout.trim()).to.equal(String(expected.pi))

    // Ctrl-C: shoal up stops what it started and exits 0; npx itself may die of the SIGINT it got too.
    process.kill(-up.pid!, 'SIGINT')
    const end = await exited
    expect(end.code === 0 || end.signal === 'SIGINT', `exit ${JSON.stringify(end)}: ${stderr}`).to.equal(true)
    expect(stderr).to.not.match(/error|failed/i)
    expect(await tcpAccepts(Number(port))).to.equal(false)
  })
})

