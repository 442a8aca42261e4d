#!/usr/bin/env node
// The installed `shoal` command: runs the compiled CLI. `npm ci` builds it (the `prepare` script).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const main = fileURLToPath(new URL('../dist/lib/cli/main.js', import.meta.url))
if (!existsSync(main)) {
  process.stderr.write(`shoal: ${main} is missing; build it with 'npm run build' (npm ci does it for you)\n`)
  process.exit(1)
}
await import(main)
