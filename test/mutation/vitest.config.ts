import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The vitest configuration `npm run test:mutation` uses: only the test files that exercise the
 * mutated sources (see stryker.config.mjs), so each mutant runs in seconds, not the whole suite.
 * Left out: child-process tests (the CLI; Stryker's mutants are not active in child
 * processes) and the slow scale/property suites (100,000 PrepareConfs, 2,000-request sampling,
 * fast-check streams) whose mutants the unit and socket tests below already reach: with
 * perTest coverage, every surviving mutant would pay their full run.
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
      'test/core/response-state*.test.ts',
      'test/core/errors-table.test.ts',
      'test/core/rate-limited-log.test.ts',
      'test/conformance.test.ts',
      'test/plugins/proxy-mirror/units.test.ts',
      'test/plugins/proxy-mirror/sampler-keys.test.ts',
      'test/plugins/proxy-mirror/conf-rules.test.ts',
      'test/plugins/proxy-mirror/copy-builder-rules.test.ts',
      'test/plugins/proxy-mirror/http-mirror.test.ts',
      'test/plugins/proxy-mirror/promises.test.ts',
      // conf.ts parses runner settings (breaker, threads), node lists and the compare block too.
      'test/plugins/proxy-mirror/settings.test.ts',
      'test/plugins/proxy-mirror/nodes.test.ts',
      'test/plugins/proxy-mirror/breaker.test.ts',
      'test/plugins/proxy-mirror/compare-conf.test.ts',
      'test/mirror-dispatch/h1-response-parser.test.ts',
      'test/mirror-dispatch/h1-client.test.ts',
      'test/mirror-dispatch/h1-edges.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
