import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../harness/cli-process.js';

describe('plain test summary line', () => {
  it('counts a file whose beforeAll failed as failed, not as skipped, and the run fails', () => {
    const run = spawnSync(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--config', join(ROOT, 'test/fixtures/reporter/vitest.config.ts')], {
      cwd: ROOT, encoding: 'utf8', timeout: 120_000,
    });
    const line = `${run.stdout}`.split('\n').find((l) => l.startsWith('tests: '));
    expect(line, run.stdout + run.stderr).toBe('tests: 1 passed, 1 failed, 1 skipped');
    expect(run.status).toBe(1);
  });
});
