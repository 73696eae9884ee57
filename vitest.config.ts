import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import PlainSummaryReporter from './test/plain-summary-reporter.js';

export default defineConfig({
  resolve: {
    // Examples and plugin tests import the package by name, as a user's plugin would.
    alias: [
      { find: /^apisix-ts-plugin-runner$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
      { find: /^apisix-ts-plugin-runner\/testing$/, replacement: fileURLToPath(new URL('./src/testing/index.ts', import.meta.url)) },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default', new PlainSummaryReporter()],
  },
});
