/**
 * mocha's Spec reporter plus one plain closing line, `N passed, N failed, N skipped`, printed last so
 * CI (and a reader scrolling to the end) sees the counts after the failure details. CommonJS because
 * mocha loads reporters with require before any TypeScript loader is active.
 */
'use strict'
const Mocha = require('mocha')
const { EVENT_RUN_END, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING, EVENT_HOOK_END } = Mocha.Runner.constants

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options)
    let passed = 0
    let failed = 0
    let skipped = 0
    runner.on(EVENT_TEST_PASS, () => { passed++ })
    // A failing hook is reported as a failure too (its tests never ran): count it so the line
    // never says "0 failed" for a run that failed.
    runner.on(EVENT_TEST_FAIL, () => { failed++ })
    runner.on(EVENT_TEST_PENDING, () => { skipped++ })
    void EVENT_HOOK_END
    // Spec prints its epilogue on EVENT_RUN_END; register after it so our line comes last.
    runner.once(EVENT_RUN_END, () => {
      process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`)
    })
  }
}

module.exports = SummaryReporter
