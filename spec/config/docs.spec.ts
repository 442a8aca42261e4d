/**
 * Keeps docs/CONFIG.md honest: every key of the schema has a row with its default and env var, and
 * the table names no key the schema lacks.
 *
 * Must never rewrite the doc; it only reads it.
 */
import fs from 'node:fs'
import { expect } from 'chai'
import { CONFIG_KEYS } from '../../lib/config/mod.ts'

const doc = fs.readFileSync(new URL('../../docs/CONFIG.md', import.meta.url), 'utf8')
// The key table is the one under "## Keys"; other tables mention keys too.
const keySection = doc.slice(doc.indexOf('## Keys'), doc.indexOf('###', doc.indexOf('## Keys')))
// Rows of the key table: "| `key` | default | unit | must be | meaning | `ENV` |"
const rows = new Map(
  keySection.split('\n')
    .filter((l) => /^\| `[a-zA-Z.]+` \|/.test(l))
    .map((l) => [/^\| `([a-zA-Z.]+)`/.exec(l)?.[1] ?? '', l.split(' | ').map((c) => c.trim())]),
)

describe('docs/CONFIG.md', () => {
  it('has a row for every key, with its default and env var', () => {
    for (const k of CONFIG_KEYS) {
      const row = rows.get(k.key)
      expect(row, `row for ${k.key}`).to.be.an('array')
      expect(row?.[1], `default of ${k.key}`).to.equal(k.default === undefined ? '(unset)' : '`' + JSON.stringify(k.default) + '`')
      expect(row?.[5], `env of ${k.key}`).to.equal('`' + k.env + '` |')
    }
  })

  it('documents no key the schema does not have', () => {
    const known = new Set(CONFIG_KEYS.map((k) => k.key))
    expect([...rows.keys()].filter((k) => !known.has(k))).to.deep.equal([])
  })
})
