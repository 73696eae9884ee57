/**
 * bench/ballast.mjs, the CPU ballast of bench/run.mjs's RPC-core pairs: it refuses bad
 * arguments, stops on SIGTERM or after --seconds, reports the share of a core it used, and a
 * larger --share uses more CPU (compared within one run, not against a fixed time).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BALLAST = fileURLToPath(new URL('../../bench/ballast.mjs', import.meta.url));

function run(args: string[], termAfterMs?: number): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BALLAST, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.dirname(BALLAST) });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = termAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGTERM'), termAfterMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}

describe('bench/ballast.mjs', () => {
  it('refuses a share outside [0, 1] or a period or duration that is not positive', async () => {
    for (const args of [['--share', '1.5'], ['--share=-0.1'], ['--share', 'x'], ['--period-ms', '0'], ['--seconds', '0']]) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(/--share must be in \[0, 1\]/);
      expect(r.out).toBe('');
    }
  });

  it('refuses an unknown option or a missing value with the usage, not a stack trace', async () => {
    for (const args of [['--bogus'], ['--share']]) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(/^ballast: .*\nusage: node bench\/ballast\.mjs/);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });

  it('stops on SIGTERM long before --seconds, and reports the share of a core it used', async () => {
    const r = await run(['--share', '0.3', '--seconds', '120'], 400);
    expect(r.code).toBe(0);
    expect(r.signal).toBeNull();
    const report = JSON.parse(r.out) as { share: number; cpuShare: number };
    expect(report.share).toBe(0.3);
    expect(report.cpuShare).toBeGreaterThan(0);
  }, 30_000);

  it('ends by itself after --seconds, and a larger --share uses more CPU', async () => {
    const idle = await run(['--share', '0', '--seconds', '0.5']);
    const busy = await run(['--share', '1', '--seconds', '0.5']);
    expect([idle.code, busy.code]).toEqual([0, 0]);
    const i = (JSON.parse(idle.out) as { cpuShare: number }).cpuShare;
    const b = (JSON.parse(busy.out) as { cpuShare: number }).cpuShare;
    expect(b).toBeGreaterThan(i + 0.1);
  }, 30_000);
});
