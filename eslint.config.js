// Lint run by `npm test` (`npm run lint`). It holds only the type-aware promise rules: a promise
// nobody awaits or catches is how a KV write failing during a NATS outage became an unhandled
// rejection that killed the balancer (issue 8). Style is left to review, not to the linter.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'grafana/**', 'docs/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    // eslint-disable comments for other rules (none are on) must not be reported as unknown.
    linterOptions: { reportUnusedDisableDirectives: 'off' },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
)
