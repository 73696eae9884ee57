import { gzipSync, brotliCompressSync, deflateSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { holdAnswer, type MirrorAnswer } from '../../src/mirror-compare/answer.js';
import { classify, diffAnswers } from '../../src/mirror-compare/answer-diff.js';
import { diffBodies } from '../../src/mirror-compare/body-diff.js';
import { decodeBody } from '../../src/mirror-compare/body-decode.js';
import { parseCompareConf } from '../../src/mirror-compare/conf.js';
import { diffHeaders } from '../../src/mirror-compare/header-diff.js';
import { diffJson } from '../../src/mirror-compare/json-diff.js';
import { isIgnored, parseIgnorePattern, toPointer } from '../../src/mirror-compare/json-pointer-pattern.js';

const json = (o: unknown, extra: [string, string][] = []): MirrorAnswer => ({
  status: 200, headers: [['Content-Type', 'application/json'], ...extra], body: Buffer.from(JSON.stringify(o)), truncated: false, durationMs: 1,
});
const held = (a: MirrorAnswer, cap = 1 << 20) => holdAnswer(a, cap);

describe('JSON pointer patterns', () => {
  it('match exact paths and * segments, and round-trip escapes', () => {
    const ps = ['/ts', '/items/*/id'].map(parseIgnorePattern);
    expect(isIgnored(ps, ['ts'])).toBe(true);
    expect(isIgnored(ps, ['items', '7', 'id'])).toBe(true);
    expect(isIgnored(ps, ['items', '7', 'name'])).toBe(false);
    expect(isIgnored(ps, ['items', '7'])).toBe(false);
    expect(toPointer(['a/b', 'c~d'])).toBe('/a~1b/c~0d');
    expect(parseIgnorePattern('/a~1b/c~0d').segments).toEqual(['a/b', 'c~d']);
    expect(() => parseIgnorePattern('a')).toThrow(/must start with/);
  });
});

describe('JSON structural diff', () => {
  it('ignores key order and compares numbers as numbers', () => {
    const a = JSON.parse('{"a":1.0,"b":{"x":[1,2],"y":"s"},"c":1e2}');
    const b = JSON.parse('{"c":100,"b":{"y":"s","x":[1,2]},"a":1}');
    expect(diffJson(a, b, [])).toEqual([]);
  });

  it('reports each differing leaf with both values (primary order, then candidate-only members), absent members as null, arrays in order', () => {
    const d = diffJson({ a: 1, list: [1, 2, 3], o: { k: 'v' } }, { a: '1', list: [1, 3], o: {}, extra: true }, []);
    expect(d).toEqual([
      { field: 'body:/a', primary: '1', candidate: '"1"' },
      { field: 'body:/list/1', primary: '2', candidate: '3' },
      { field: 'body:/list/2', primary: '3', candidate: null },
      { field: 'body:/o/k', primary: '"v"', candidate: null },
      { field: 'body:/extra', primary: null, candidate: 'true' },
    ]);
  });

  it('skips ignored paths with their subtrees, wildcards included', () => {
    const ignore = ['/ts', '/items/*/id', '/meta'].map(parseIgnorePattern);
    const a = { ts: 1, meta: { host: 'a' }, items: [{ id: 1, n: 'x' }, { id: 2, n: 'y' }] };
    const b = { ts: 2, meta: { host: 'b', extra: 1 }, items: [{ id: 9, n: 'x' }, { id: 8, n: 'z' }] };
    expect(diffJson(a, b, ignore)).toEqual([{ field: 'body:/items/1/n', primary: '"y"', candidate: '"z"' }]);
  });

  it('stops at the difference limit', () => {
    const a = Array.from({ length: 500 }, (_, i) => i);
    const b = a.map((x) => x + 1);
    expect(diffJson(a, b, [], 10)).toHaveLength(10);
    expect(diffJson(a, b, [])).toHaveLength(64);
  });
});

describe('header diff', () => {
  const sel = parseCompareConf({}).headers;
  it('ignores the default list, compares names case-insensitively and repeated values in order', () => {
    const d = diffHeaders(
      [['Date', 'Mon'], ['Server', 'v1'], ['Content-Type', 'application/json'], ['Vary', 'a'], ['vary', 'b'], ['X-Only-Primary', '1']],
      [['date', 'Tue'], ['server', 'v2'], ['content-type', 'application/json'], ['vary', 'b'], ['Vary', 'a']],
      sel,
    );
    expect(d).toEqual([
      { field: 'header:vary', primary: 'a, b', candidate: 'b, a' },
      { field: 'header:x-only-primary', primary: '1', candidate: null },
    ]);
  });

  it('compares set-cookie by cookie names only', () => {
    expect(diffHeaders([['Set-Cookie', 'sid=abc; Path=/'], ['Set-Cookie', 'theme=dark']], [['set-cookie', 'theme=light'], ['set-cookie', 'sid=zzz; HttpOnly']], sel)).toEqual([]);
    expect(diffHeaders([['Set-Cookie', 'sid=abc']], [['set-cookie', 'session=abc']], sel)).toEqual([
      { field: 'header:set-cookie', primary: 'sid', candidate: 'session' },
    ]);
  });

  it('an include list compares only the named headers; off compares none', () => {
    const a: [string, string][] = [['Content-Type', 'text/plain'], ['Cache-Control', 'no-cache'], ['X-Build', '1']];
    const b: [string, string][] = [['Content-Type', 'text/html'], ['Cache-Control', 'no-cache'], ['X-Build', '2']];
    expect(diffHeaders(a, b, parseCompareConf({ headers: { include: ['content-type'] } }).headers).map((d) => d.field)).toEqual(['header:content-type']);
    expect(diffHeaders(a, b, parseCompareConf({ headers: false }).headers)).toEqual([]);
  });
});

describe('body decode', () => {
  const text = Buffer.from('{"hello":"world"}'.repeat(100));
  it('undoes gzip, x-gzip, deflate, br and stacked codings', () => {
    for (const [coding, enc] of [['gzip', gzipSync(text)], ['x-gzip', gzipSync(text)], ['deflate', deflateSync(text)], ['br', brotliCompressSync(text)]] as const) {
      const d = decodeBody(enc, [['Content-Encoding', coding]], 1 << 20);
      expect(d.ok && d.body.equals(text)).toBe(true);
    }
    const stacked = brotliCompressSync(gzipSync(text));
    const d = decodeBody(stacked, [['content-encoding', 'gzip, br']], 1 << 20);
    expect(d.ok && d.body.equals(text)).toBe(true);
  });

  it('stops at the cap (a small bomb stays small), and says why it could not decode', () => {
    const bomb = gzipSync(Buffer.alloc(10_000_000));
    expect(bomb.length).toBeLessThan(20_000);
    expect(decodeBody(bomb, [['content-encoding', 'gzip']], 1 << 20)).toMatchObject({ ok: false, reason: 'over_cap' });
    expect(decodeBody(Buffer.from('not gzip'), [['content-encoding', 'gzip']], 100)).toMatchObject({ ok: false, reason: 'undecodable' });
    expect(decodeBody(Buffer.from('x'), [['content-encoding', 'zstd']], 100)).toMatchObject({ ok: false, reason: 'unknown_encoding', detail: 'zstd' });
  });
});

describe('body diff', () => {
  const conf = parseCompareConf({ body: { ignore: ['/ts'], max_bytes: 1024 } });

  it('compares gzip JSON bodies by content: different compression of equal JSON is equal', () => {
    const a = held({ ...json({}), headers: [['content-type', 'application/json'], ['content-encoding', 'gzip']], body: gzipSync('{"a":1,"b":[1,2]}', { level: 1 }) });
    const b = held({ ...json({}), headers: [['content-type', 'application/json'], ['content-encoding', 'gzip']], body: gzipSync('{"b":[1,2],"a":1.0}', { level: 9 }) });
    expect(diffBodies('GET', a, b, conf.body)).toEqual({ how: 'json', differences: [] });
  });

  it('a gzip primary and a plain candidate with the same JSON are equal in body (content-encoding shows in headers)', () => {
    const a = held({ ...json({}), headers: [['content-type', 'application/json'], ['content-encoding', 'gzip']], body: gzipSync('{"a":1}') });
    const b = held(json({ a: 1 }));
    expect(diffBodies('GET', a, b, conf.body).differences).toEqual([]);
    expect(diffAnswers('GET', a, b, conf).differences.map((d) => d.field)).toEqual(['header:content-encoding']);
  });

  it('text bodies by equality, shown with their lengths', () => {
    const t = (s: string) => held({ status: 200, headers: [['content-type', 'text/plain']], body: Buffer.from(s), truncated: false, durationMs: 1 });
    expect(diffBodies('GET', t('hello'), t('hello'), conf.body)).toEqual({ how: 'text', differences: [] });
    expect(diffBodies('GET', t('hello'), t('hello!'), conf.body).differences).toEqual([{ field: 'body', primary: 'hello (5 bytes)', candidate: 'hello! (6 bytes)' }]);
  });

  it('binary bodies by equality, shown as length and hash', () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const bin = (b: Buffer) => held({ status: 200, headers: [['content-type', 'image/png']], body: b, truncated: false, durationMs: 1 });
    const other = Buffer.concat([png, Buffer.from([0])]);
    expect(diffBodies('GET', bin(png), bin(Buffer.from(png)), conf.body)).toEqual({ how: 'binary', differences: [] });
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);
    expect(diffBodies('GET', bin(png), bin(other), conf.body).differences).toEqual([
      { field: 'body', primary: `16 bytes, sha256 ${sha(png)}`, candidate: `17 bytes, sha256 ${sha(other)}` },
    ]);
  });

  it('JSON that does not parse falls back to text equality', () => {
    const a = held({ ...json({}), body: Buffer.from('{"a":') });
    const b = held({ ...json({}), body: Buffer.from('{"a":1') });
    expect(diffBodies('GET', a, held({ ...json({}), body: Buffer.from('{"a":') }), conf.body).differences).toEqual([]);
    expect(diffBodies('GET', a, b, conf.body)).toEqual({ how: 'text', differences: [{ field: 'body', primary: '{"a": (5 bytes)', candidate: '{"a":1 (6 bytes)' }] });
  });

  it('bodies over the cap are compared by length and SHA-256 and are not held in memory', () => {
    const big = Buffer.alloc(5000, 'a');
    const bigger = Buffer.alloc(5000, 'b');
    const a = held({ status: 200, headers: [['content-type', 'text/plain']], body: big, truncated: false, durationMs: 1 }, 1024);
    expect(a.body).toBeUndefined();
    expect(a.heldBytes).toBeLessThan(1024);
    const same = held({ status: 200, headers: [['content-type', 'text/plain']], body: Buffer.from(big), truncated: false, durationMs: 1 }, 1024);
    const diff = held({ status: 200, headers: [['content-type', 'text/plain']], body: bigger, truncated: false, durationMs: 1 }, 1024);
    expect(diffBodies('GET', a, same, conf.body)).toEqual({ how: 'hash', differences: [] });
    const d = diffBodies('GET', a, diff, conf.body);
    expect(d.how).toBe('hash');
    expect(d.differences[0]?.primary).toMatch(/^5000 bytes, sha256 [0-9a-f]{16}$/);
  });

  it('a truncated candidate is compared by the hash the engine computed, or not at all without one', () => {
    const whole = Buffer.alloc(3000, 'x');
    const primary = held({ status: 200, headers: [], body: whole, truncated: false, durationMs: 1 }, 1024);
    const hashed = held({ status: 200, headers: [], body: whole.subarray(0, 1024), truncated: true, bodyBytes: 3000, bodySha256: createHash('sha256').update(whole).digest('hex'), durationMs: 1 }, 1024);
    expect(diffBodies('GET', primary, hashed, conf.body)).toEqual({ how: 'hash', differences: [] });
    const unhashed = held({ status: 200, headers: [], body: whole.subarray(0, 1024), truncated: true, durationMs: 1 }, 1024);
    expect(diffBodies('GET', primary, unhashed, conf.body)).toEqual({ how: 'over_cap_unhashed', differences: [] });
  });

  it('HEAD and 204/304 carry no body: not compared', () => {
    const a = held({ ...json({ a: 1 }), status: 204 });
    const b = held({ ...json({ a: 2 }), status: 204 });
    expect(diffBodies('GET', a, b, conf.body).how).toBe('no_body');
    expect(diffBodies('HEAD', held(json({ a: 1 })), held(json({ a: 2 })), conf.body).how).toBe('no_body');
    expect(diffBodies('GET', held({ ...json({ a: 1 }), status: 304 }), held({ ...json({ a: 2 }), status: 304 }), conf.body).how).toBe('no_body');
  });

  it('a primary whose body was not fetched is not compared', () => {
    const a = holdAnswer({ status: 200, headers: [], body: Buffer.alloc(0), truncated: false, bodyFetched: false }, 1024);
    expect(diffBodies('GET', a, held(json({ a: 1 })), conf.body).how).toBe('not_fetched');
  });
});

describe('answer diff and its result', () => {
  const conf = parseCompareConf({});
  it('status wins over body, body over headers', () => {
    const a = json({ a: 1 }, [['x-v', '1']]);
    expect(classify(diffAnswers('GET', held(a), held({ ...json({ a: 2 }, [['x-v', '2']]), status: 500 }), conf).differences)).toBe('differ_status');
    expect(classify(diffAnswers('GET', held(a), held(json({ a: 2 }, [['x-v', '2']])), conf).differences)).toBe('differ_body');
    expect(classify(diffAnswers('GET', held(a), held(json({ a: 1 }, [['x-v', '2']])), conf).differences)).toBe('differ_headers');
    expect(classify(diffAnswers('GET', held(a), held(json({ a: 1 }, [['x-v', '1']])), conf).differences)).toBe('equal');
  });

  it('status: false leaves the status out', () => {
    const off = parseCompareConf({ status: false });
    expect(diffAnswers('GET', held(json({})), held({ ...json({}), status: 201 }), off).differences).toEqual([]);
  });
});

describe('hostile and large inputs', () => {
  it('JSON nested 10^5 levels deep is compared without recursion past the depth cap', () => {
    const deep = (leaf: string) => JSON.parse('['.repeat(100_000) + leaf + ']'.repeat(100_000)) as unknown;
    expect(diffJson(deep('1'), deep('1'), [])).toEqual([]);
    const d = diffJson(deep('1'), deep('2'), []);
    expect(d).toHaveLength(1);
    expect(d[0]!.field).toBe(`body:${'/0'.repeat(100)}`);
    const conf = parseCompareConf({});
    const a = held({ ...json({}), body: Buffer.from('['.repeat(100_000) + '1' + ']'.repeat(100_000)) });
    const b = held({ ...json({}), body: Buffer.from('['.repeat(100_000) + '2' + ']'.repeat(100_000)) });
    expect(classify(diffAnswers('GET', a, b, conf).differences)).toBe('differ_body');
  });

  it('a route that does not compare bodies holds none: no bytes, no hash', () => {
    const a = holdAnswer({ ...json({ big: 'x'.repeat(10_000) }) }, undefined);
    expect([a.body, a.bodyBytes, a.bodySha256, a.bodyFetched]).toEqual([undefined, undefined, undefined, false]);
    expect(a.heldBytes).toBeLessThan(300);
  });
});
