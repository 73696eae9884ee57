import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiffLogWriter, parseCompareConf, ShadowComparison } from '../../src/mirror-compare/index.js';
import { waitUntil } from '../harness/wait.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'cmp-log-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const json = (o: unknown, headers: [string, string][] = []) => ({
  status: 200, headers: [['content-type', 'application/json'], ...headers] as [string, string][], body: Buffer.from(JSON.stringify(o)), truncated: false,
});

describe('JSONL diff log', () => {
  it('appends one redacted line per difference, none for equal pairs', async () => {
    const file = path.join(tmp(), 'diffs.jsonl');
    const log = new DiffLogWriter(file);
    const c = new ShadowComparison({ diffLog: log, wallClock: () => new Date('2026-12-01T12:00:00Z') });
    const conf = parseCompareConf({});
    const run = (key: string, a: unknown, b: unknown, ha: [string, string][] = [], hb: [string, string][] = []) => {
      c.expect(key, { route: 'r', target: 't', method: 'POST', path: '/login?password=hunter2', conf });
      c.recordMirror('r', key, 't', { ...json(b, hb), durationMs: 1 });
      c.recordPrimary('r', key, json(a, ha));
    };
    run('1', { ok: true }, { ok: true });
    run('2', { ok: true, token: 'abc' }, { ok: false, token: 'xyz' }, [['x-api-key', 'k1']], [['x-api-key', 'k2']]);
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([{
      at: '2026-12-01T12:00:00.000Z', route: 'r', target: 't', method: 'POST', path: '/login', result: 'differ_body',
      differences: [
        { field: 'header:x-api-key', primary: '[redacted]', candidate: '[redacted]' },
        { field: 'body:/ok', primary: 'true', candidate: 'false' },
        { field: 'body:/token', primary: '[redacted]', candidate: '[redacted]' },
      ],
      noise: [],
    }]);
    expect(log.stats).toMatchObject({ written: 1, dropped: 0 });
  });

  it('is bounded by file bytes: lines past the cap are dropped and counted', async () => {
    const file = path.join(tmp(), 'small.jsonl');
    const log = new DiffLogWriter(file, { maxFileBytes: 100 });
    expect(log.write({ n: 'x'.repeat(40) })).toBe(true);
    expect(log.write({ n: 'y'.repeat(40) })).toBe(true);
    expect(log.write({ n: 'z'.repeat(40) })).toBe(false);
    await log.close();
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(2);
    expect(log.stats).toMatchObject({ written: 2, dropped: 1 });
  });

  it('reopen() starts a new file at the path, with the size cap counted again from zero', async () => {
    const file = path.join(tmp(), 'diffs.jsonl');
    const log = new DiffLogWriter(file, { maxFileBytes: 20 });
    expect(log.write({ n: 1 })).toBe(true);
    expect(log.write({ n: 'a line too many for the cap' })).toBe(false);
    // The stream opens the file asynchronously: rotate it once it exists, as logrotate would.
    await waitUntil(() => existsSync(file), 'the diff log file created');
    renameSync(file, `${file}.1`);
    log.reopen();
    expect(log.write({ n: 2 })).toBe(true);
    await log.close();
    expect(readFileSync(`${file}.1`, 'utf8')).toBe('{"n":1}\n');
    expect(readFileSync(file, 'utf8')).toBe('{"n":2}\n');
  });

  it('is bounded by bytes waiting for the disk: a burst beyond it is dropped, never queued', async () => {
    const log = new DiffLogWriter(path.join(tmp(), 'burst.jsonl'), { maxBufferedBytes: 10_000 });
    let accepted = 0;
    for (let i = 0; i < 1000; i++) if (log.write({ i, pad: 'p'.repeat(100) })) accepted++;
    await log.close();
    expect(accepted).toBeLessThan(1000);
    expect(log.stats.written + log.stats.dropped).toBe(1000);
  });

  it('an unwritable path never throws: the error is reported once, lines are dropped', async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'is-a-dir'));
    const errors: Error[] = [];
    const log = new DiffLogWriter(path.join(dir, 'is-a-dir'), { onError: (e) => errors.push(e) });
    log.write({ a: 1 });
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      const check = () => (errors.length ? resolve() : Date.now() > deadline ? reject(new Error('no error reported')) : setTimeout(check, 10));
      check();
    });
    expect(log.write({ a: 2 })).toBe(false);
    expect(log.write({ a: 3 })).toBe(false);
    expect(errors).toHaveLength(1);
    expect((errors[0] as NodeJS.ErrnoException).code).toBe('EISDIR');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => log.write(circular)).not.toThrow();
    await log.close();
  });
});
