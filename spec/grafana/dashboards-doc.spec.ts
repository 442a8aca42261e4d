/**
 * Keeps docs/DASHBOARDS.md in step with grafana/dashboards/*.json: a section per dashboard
 * (`## Title` naming its uid) with its picture, a `### Row` heading per row and a
 * `- **Panel title** — ...` line per panel, nothing described that no dashboard has, and every
 * picture it names on disk. A dashboard or panel added, renamed or removed without the page
 * fails here.
 *
 * Reads files only: never renders, never starts anything (the pictures come from
 * `npm run render-dashboards`).
 */

import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { allPanels, dashboards, read, root, type Dashboard } from './dashboards.ts'

const DOC = 'docs/DASHBOARDS.md'

/**
 * What `doc` (the text of docs/DASHBOARDS.md) gets wrong about `boards`; `exists` says whether a
 * path relative to docs/ is on disk. One line per problem, empty when the page is right.
 */
function docProblems(doc: string, boards: Array<[string, Dashboard]>, exists: (rel: string) => boolean): string[] {
  const problems: string[] = []
  // Sections by "## " heading; code blocks may hold "#" lines that are not headings.
  const prose = doc.replace(/```[\s\S]*?```/g, '')
  const sections = prose.split(/^## /m).slice(1).map((s) => ({ heading: s.slice(0, s.indexOf('\n')).trim(), body: s }))
  for (const [file, d] of boards) {
    const name = `${d.title} (${file})`
    const s = sections.find((x) => x.heading.includes(`\`${d.uid}\``))
    if (s === undefined) {
      problems.push(`${name}: no "## ${d.title} (\`${d.uid}\`)" section`)
      continue
    }
    if (!s.body.includes(`](dashboards/${d.uid}.png)`)) problems.push(`${name}: no picture dashboards/${d.uid}.png in its section`)
    const rows = new Set([...s.body.matchAll(/^### (.+)$/gm)].map((m) => m[1]!.trim()))
    const described = new Set([...s.body.matchAll(/^- \*\*(.+?)\*\*/gm)].map((m) => m[1]!.trim()))
    const panels = allPanels(d)
    for (const p of panels) {
      const title = p.title ?? ''
      if (p.type === 'row') {
        if (!rows.has(title)) problems.push(`${name}: row "${title}" has no "### ${title}" heading`)
      } else if (!described.has(title)) problems.push(`${name}: panel "${title}" has no "- **${title}** — ..." line`)
    }
    const titles = new Set(panels.map((p) => p.title ?? ''))
    for (const t of described) if (!titles.has(t)) problems.push(`${name}: describes "${t}", which the dashboard has no panel of`)
    for (const r of rows) if (!titles.has(r)) problems.push(`${name}: has a "### ${r}" heading, which the dashboard has no row of`)
  }
  for (const m of doc.matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g)) {
    const rel = m[1]!
    if (!/^[a-z]+:/i.test(rel) && !exists(rel)) problems.push(`names the picture ${rel}, which does not exist`)
  }
  return problems
}

describe(DOC, () => {
  const boards = [...dashboards.entries()]
  const onDisk = (rel: string): boolean => fs.existsSync(path.join(root, 'docs', rel))

  it('describes every dashboard, row and panel of grafana/dashboards/ and shows pictures that exist', () => {
    expect(docProblems(read(DOC), boards, onDisk)).to.deep.equal([])
  })

  it('shows one picture per dashboard, named by its uid', () => {
    for (const [, d] of boards) expect(onDisk(`dashboards/${d.uid}.png`), `docs/dashboards/${d.uid}.png`).to.equal(true)
  })

  describe('the check itself', () => {
    const board: Dashboard = {
      uid: 'made-up', title: 'Made up',
      panels: [
        { id: 1, type: 'row', title: 'Top' },
        { id: 2, type: 'stat', title: 'Hosts' },
        { id: 3, type: 'timeseries', title: 'Load' },
      ],
    }
    const good = [
      '# Dashboards', '', '## Made up (`made-up`)', '', '![Made up](dashboards/made-up.png)', '',
      '### Top', '', '- **Hosts** — how many.', '- **Load** — per host.', '',
    ].join('\n')
    const all = (): boolean => true

    it('passes a page that has everything', () => {
      expect(docProblems(good, [['made-up.json', board]], all)).to.deep.equal([])
    })

    it('names a missing panel, a missing row, a panel that is no more and a missing picture', () => {
      const bad = good.replace('- **Load** — per host.', '- **Lode** — per host.').replace('### Top', '### Tip')
      expect(docProblems(bad, [['made-up.json', board]], (rel) => rel !== 'dashboards/made-up.png')).to.deep.equal([
        'Made up (made-up.json): row "Top" has no "### Top" heading',
        'Made up (made-up.json): panel "Load" has no "- **Load** — ..." line',
        'Made up (made-up.json): describes "Lode", which the dashboard has no panel of',
        'Made up (made-up.json): has a "### Tip" heading, which the dashboard has no row of',
        'names the picture dashboards/made-up.png, which does not exist',
      ])
    })

    it('names a dashboard without a section or without its picture', () => {
      expect(docProblems('# Dashboards\n', [['made-up.json', board]], all)).to.deep.equal(['Made up (made-up.json): no "## Made up (`made-up`)" section'])
      expect(docProblems(good.replace('dashboards/made-up.png', 'dashboards/other.png'), [['made-up.json', board]], all)).to.deep.equal(['Made up (made-up.json): no picture dashboards/made-up.png in its section'])
    })
  })
})
