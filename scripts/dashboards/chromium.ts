/**
 * Screenshots a page with the system's headless Chromium (`chromium --headless --screenshot`):
 * no browser download, no driver library, the same binary a user gets from `apt-get install
 * chromium`. The page is a local file; Chromium gets its own temporary profile, so a user's
 * running browser is never touched.
 *
 * Must never leave Chromium running: it is SIGKILLed after the time-out and when this process
 * exits.
 */

import { spawn } from 'node:child_process'
import { accessSync, constants, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, isAbsolute, join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** What to run where Chromium is missing. */
export const CHROMIUM_INSTALL = 'apt-get install chromium'
const NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']

/** The Chromium binary: $CHROMIUM_BIN, else the first of NAMES in PATH; undefined if none. */
export function findChromium(): string | undefined {
  const own = process.env.CHROMIUM_BIN
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '' && isAbsolute(d))
  const candidates = own ? [own] : NAMES.flatMap((n) => dirs.map((d) => join(d, n)))
  for (const p of candidates) {
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {
      // not here
    }
  }
  return undefined
}

export interface ScreenshotOptions {
  width: number
  height: number
  /** Give up (and kill Chromium) after this long; default 60000. */
  timeoutMs?: number
}

/**
 * Opens `htmlFile` at `width` × `height` and writes a PNG of it to `pngFile`. The page's scripts
 * get a virtual-time budget to finish drawing before the shot. Times in the page are UTC
 * (TZ=UTC), as the page's header says. Rejects with Chromium's output when it fails.
 */
export async function screenshot(chromium: string, htmlFile: string, pngFile: string, opts: ScreenshotOptions): Promise<void> {
  const profile = mkdtempSync(join(tmpdir(), 'shoal-chromium-'))
  rmSync(pngFile, { force: true })
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--mute-audio',
    '--no-first-run', '--disable-extensions', '--force-device-scale-factor=1',
    '--run-all-compositor-stages-before-draw', '--virtual-time-budget=5000',
    `--user-data-dir=${profile}`, `--window-size=${opts.width},${opts.height}`, `--screenshot=${pngFile}`,
    pathToFileURL(htmlFile).href,
  ]
  const child = spawn(chromium, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } })
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  process.once('exit', kill)
  let output = ''
  const keep = (d: Buffer): void => {
    output = (output + d.toString('utf8')).slice(-4000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const timer = setTimeout(kill, opts.timeoutMs ?? 60_000)
  try {
    const code = await new Promise<number | string>((resolve) => {
      child.once('error', (e) => resolve(e.message))
      child.once('close', (c, s) => resolve(c ?? s ?? 'unknown'))
    })
    if (code !== 0 || !existsSync(pngFile) || statSync(pngFile).size === 0) {
      throw new Error(`chromium (${chromium}) did not write ${pngFile} (exit ${code}):\n${output}`)
    }
  } finally {
    clearTimeout(timer)
    process.off('exit', kill)
    kill()
    rmSync(profile, { recursive: true, force: true })
  }
}
