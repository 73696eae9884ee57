import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The vitest configuration `npm run test:mutation` uses: only the test files that exercise the
 * mutated sources (see stryker.config.mjs), so each mutant runs in seconds, not the whole suite.
 * Child-process tests (the CLI) are left out: Stryker's mutants are not active in child processes.
 */
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: [
      'test/core/frame*.test.ts',
      'test/core/conf-cache*.test.ts',
      'test/core/plugin-chain*.test.ts',
      'test/core/runner.test.ts',
      'test/core/header-edits*.test.ts',
      'test/core/errors-table.test.ts',
      'test/reliability/frame-properties.test.ts',
      'test/reliability/conf-cache-reliability.test.ts',
      'test/conformance.test.ts',
      'test/plugins/proxy-mirror/units.test.ts',
      'test/plugins/proxy-mirror/sampling.test.ts',
      'test/plugins/proxy-mirror/sampler-keys.test.ts',
      'test/plugins/proxy-mirror/conf-rules.test.ts',
      'test/plugins/proxy-mirror/copy-builder-rules.test.ts',
      'test/plugins/proxy-mirror/http-mirror.test.ts',
      'test/plugins/proxy-mirror/promises.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
