// @ts-check
/**
 * Mutation testing (`npm run test:mutation`, not part of `npm test`): mutates the core and the
 * mirror's decision logic and runs only the tests that cover each mutant (perTest coverage).
 * Concurrency stays low because the machine running it is usually shared.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'test/mutation/vitest.config.ts' },
  coverageAnalysis: 'perTest',
  concurrency: 2,
  mutate: [
    'src/protocol/frame.ts',
    'src/conf-cache.ts',
    'src/plugin-chain.ts',
    'src/server/header-edits.ts',
    // The post-resp reply (status, headers, body length APISIX gets back for HTTPRespCall).
    'src/server/response-state.ts',
    'src/plugins/proxy-mirror/sampler.ts',
    'src/plugins/proxy-mirror/copy-builder.ts',
    'src/plugins/proxy-mirror/conf.ts',
    // The mirror's own HTTP/1.1 client: framing of answers and the checks on request heads.
    'src/mirror-dispatch/h1/response-parser.ts',
    'src/mirror-dispatch/h1/request-head.ts',
  ],
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  timeoutMS: 20_000,
  cleanTempDir: 'always',
};
