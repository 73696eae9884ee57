/**
 * The comparison with real answers: v1 (serving), a secondary v1 and a v2 candidate are real
 * HTTP servers on 127.0.0.1, read with undici; the room gets them as the wiring will give them.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { parseCompareConf, ShadowComparison, type CompareConf, type MirrorOutcome, type PrimaryAnswer } from '../../src/mirror-compare/index.js';
import { fetchAnswer, fetchPrimary, sample, startService, type Service } from './services.js';

const ROUTE = 'route#items';
const TARGET = 'http://v2.shadow:8080';

function room(opts: { clock?: () => number } = {}) {
  const registry = new Registry();
  const c = new ShadowComparison({ registry, ...opts });
  const count = async (result: string, route = ROUTE, target = TARGET) =>
    sample(await registry.metrics(), 'apisix_runner_mirror_compared_total', { route, target, result });
  return { c, registry, count };
}

/** One request through both sides, in the given order. */
async function pair(c: ShadowComparison, key: string, conf: CompareConf, primaryUrl: string, mirrorUrl: string, opts: { method?: string; mirrorFirst?: boolean; secondaryUrl?: string; mirrorCap?: number } = {}) {
  const method = opts.method ?? 'GET';
  const path = new URL(primaryUrl).pathname;
  expect(c.expect(key, { route: ROUTE, target: TARGET, method, path, conf })).toBe(true);
  const [primary, mirror, secondary] = await Promise.all([
    fetchPrimary(primaryUrl, method),
    fetchAnswer(mirrorUrl, method, opts.mirrorCap),
    opts.secondaryUrl ? fetchAnswer(opts.secondaryUrl, method) : undefined,
  ]);
  if (secondary) c.recordSecondary(ROUTE, key, TARGET, secondary);
  if (opts.mirrorFirst) c.recordMirror(ROUTE, key, TARGET, mirror);
  c.recordPrimary(ROUTE, key, primary);
  if (!opts.mirrorFirst) c.recordMirror(ROUTE, key, TARGET, mirror);
}

let v1: Service;
let v1b: Service;
let v2: Service;
const answered = { v1: 0, v1b: 0, v2: 0 };

beforeAll(async () => {
  // /items/N: v2 changes the price of every third item. /clock: every answer has its own ts.
  const handler = (who: 'v1' | 'v1b' | 'v2') => startService((req, res) => {
    const n = ++answered[who];
    const url = new URL(req.url ?? '/', 'http://x');
    const id = Number(url.pathname.split('/')[2]);
    if (url.pathname.startsWith('/items/')) {
      const price = who === 'v2' && id % 3 === 0 ? 11 : 10;
      const body = who === 'v2' ? { price, name: `item ${id}`, id } : { id, name: `item ${id}`, price };
      res.writeHead(200, { 'content-type': 'application/json', server: who, 'x-request-id': `${who}-${n}` }).end(JSON.stringify(body));
    } else if (url.pathname === '/clock') {
      const offset = { v1: 0, v1b: 500_000, v2: 900_000 }[who];
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value: 'same', ts: 1_700_000_000_000 + offset + n }));
    } else if (url.pathname === '/gzip') {
      const json = who === 'v2' ? '{"b":[1,2,3],"a":{"y":2,"x":1}}' : '{"a":{"x":1,"y":2},"b":[1,2,3]}';
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(json, { level: who === 'v2' ? 9 : 1 }));
    } else if (url.pathname === '/png') {
      const bytes = Buffer.from('89504e470d0a1a0a0000000d494844520000000100000001', 'hex');
      if (who === 'v2') bytes[bytes.length - 1] = 2;
      res.writeHead(200, { 'content-type': 'image/png' }).end(bytes);
    } else if (url.pathname.startsWith('/large/')) {
      const body = Buffer.alloc(100_000, 'a');
      if (who === 'v2' && url.pathname === '/large/changed') body[99_999] = 0x62;
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    } else if (url.pathname === '/empty') {
      res.writeHead(204, { 'x-v': who }).end();
    } else if (url.pathname === '/head') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': who === 'v2' ? '7' : '5' }).end(req.method === 'HEAD' ? undefined : who === 'v2' ? 'changed' : 'hello');
    } else if (url.pathname === '/secret') {
      res.writeHead(200, { 'content-type': 'application/json', 'x-api-key': `key-${who}`, 'set-cookie': `sid=${who}-${n}; HttpOnly` })
        .end(JSON.stringify({ token: `tok-${who}`, user: who === 'v2' ? 'bob' : 'alice' }));
    } else {
      res.writeHead(404).end();
    }
  });
  [v1, v1b, v2] = await Promise.all([handler('v1'), handler('v1b'), handler('v2')]);
});

afterAll(async () => {
  await Promise.all([v1.close(), v1b.close(), v2.close()]);
});

describe('v1 against a v2 that differs in one JSON field for one request in three', () => {
  it('after 300 pairs: exactly 200 equal and 100 differ_body, and the report names the field', async () => {
    const { c, registry, count } = room();
    const conf = parseCompareConf({});
    for (let i = 1; i <= 300; i++) {
      await pair(c, `req-${i}`, conf, `${v1.url}/items/${i}`, `${v2.url}/items/${i}`, { mirrorFirst: i % 2 === 0 });
    }
    expect(await count('equal')).toBe(200);
    expect(await count('differ_body')).toBe(100);
    for (const r of ['differ_status', 'differ_headers', 'mirror_timeout', 'mirror_error', 'primary_only', 'skipped']) expect(await count(r)).toBe(0);
    const [route] = c.report().routes;
    expect(route).toMatchObject({ route: ROUTE, compared: 300, equal: 200, differ: 100, targets: [TARGET] });
    expect(route!.differRate).toBeCloseTo(1 / 3, 10);
    expect(route!.topFields).toEqual([{ field: 'body:/price', count: 100, primary: '10', candidate: '11' }]);
    expect(route!.examples).toHaveLength(20);
    expect(route!.examples[0]).toMatchObject({ method: 'GET', path: '/items/300', result: 'differ_body', differences: [{ field: 'body:/price', primary: '10', candidate: '11' }] });
    expect(c.pending(ROUTE)).toEqual({ count: 0, bytes: 0 });
    const text = await registry.metrics();
    expect(sample(text, 'apisix_runner_mirror_compare_latency_seconds_count', { route: ROUTE, target: TARGET, side: 'primary' })).toBe(300);
    expect(sample(text, 'apisix_runner_mirror_compare_latency_seconds_count', { route: ROUTE, target: TARGET, side: 'mirror' })).toBe(300);
  });
});

describe('a timestamp that differs on every answer', () => {
  it('with a secondary it is noise: nothing counted as differing, the field reported as noise', async () => {
    const { c, count } = room();
    const conf = parseCompareConf({ secondary: 'http://v1b:8080', noise_min_samples: 20 });
    for (let i = 0; i < 50; i++) await pair(c, `t-${i}`, conf, `${v1.url}/clock`, `${v2.url}/clock`, { secondaryUrl: `${v1b.url}/clock` });
    expect(await count('equal')).toBe(50);
    expect(await count('differ_body')).toBe(0);
    const [route] = c.report().routes;
    expect(route!.topFields).toEqual([]);
    expect(route!.noiseSuppressed).toEqual([{ field: 'body:/ts', count: 50 }]);
    expect(route!.noiseFields).toEqual([{ route: ROUTE, pattern: 'GET /clock', field: 'body:/ts', differed: 50, samples: 50, trusted: true }]);
  });

  it('without a secondary it is reported as a difference', async () => {
    const { c, count } = room();
    const conf = parseCompareConf({});
    for (let i = 0; i < 50; i++) await pair(c, `t-${i}`, conf, `${v1.url}/clock`, `${v2.url}/clock`);
    expect(await count('differ_body')).toBe(50);
    expect(await count('equal')).toBe(0);
    const [route] = c.report().routes;
    expect(route!.topFields.map((f) => [f.field, f.count])).toEqual([['body:/ts', 50]]);
    expect(route!.noiseFields).toEqual([]);
  });

  it('learned noise is trusted only after the minimum sample when the secondary has no answer for a request', async () => {
    const { c, count } = room();
    const conf = parseCompareConf({ secondary: 'http://v1b:8080', noise_min_samples: 10 });
    const failedSecondary = async (key: string) => {
      c.expect(key, { route: ROUTE, target: TARGET, method: 'GET', path: '/clock', conf });
      c.recordSecondary(ROUTE, key, TARGET, { failure: 'error', code: 'ECONNREFUSED' });
      c.recordMirror(ROUTE, key, TARGET, await fetchAnswer(`${v2.url}/clock`));
      c.recordPrimary(ROUTE, key, await fetchPrimary(`${v1.url}/clock`));
    };
    for (let i = 0; i < 9; i++) await pair(c, `s-${i}`, conf, `${v1.url}/clock`, `${v2.url}/clock`, { secondaryUrl: `${v1b.url}/clock` });
    await failedSecondary('alone-1');
    expect(await count('differ_body')).toBe(1);
    await pair(c, 's-9', conf, `${v1.url}/clock`, `${v2.url}/clock`, { secondaryUrl: `${v1b.url}/clock` });
    await failedSecondary('alone-2');
    expect(await count('differ_body')).toBe(1);
    expect(await count('equal')).toBe(11);
  });

  it('a pair whose secondary never answers is compared at max age with the learned noise', async () => {
    let now = 0;
    const { c, count } = room({ clock: () => now });
    const conf = parseCompareConf({ secondary: 'http://v1b:8080', max_age: 1000 });
    c.expect('k', { route: ROUTE, target: TARGET, method: 'GET', path: '/items/3', conf });
    c.recordMirror(ROUTE, 'k', TARGET, await fetchAnswer(`${v2.url}/items/3`));
    c.recordPrimary(ROUTE, 'k', await fetchPrimary(`${v1.url}/items/3`));
    expect(await count('differ_body')).toBe(0);
    expect(c.pending(ROUTE).count).toBe(1);
    now = 1000;
    c.sweep();
    expect(await count('differ_body')).toBe(1);
    expect(c.pending(ROUTE)).toEqual({ count: 0, bytes: 0 });
  });
});

describe('answers that are not JSON or have no body', () => {
  it('gzip JSON bodies are compared decoded: different compression and key order are equal', async () => {
    const { c, count } = room();
    await pair(c, 'g', parseCompareConf({}), `${v1.url}/gzip`, `${v2.url}/gzip`);
    expect(await count('equal')).toBe(1);
  });

  it('binary bodies differing in one byte are differ_body on the field "body" with lengths and hashes', async () => {
    const { c, count } = room();
    await pair(c, 'b', parseCompareConf({}), `${v1.url}/png`, `${v2.url}/png`);
    expect(await count('differ_body')).toBe(1);
    const [route] = c.report().routes;
    expect(route!.topFields[0]).toMatchObject({ field: 'body', primary: expect.stringMatching(/^24 bytes, sha256 /), candidate: expect.stringMatching(/^24 bytes, sha256 /) });
    expect(route!.examples[0]!.primary.body).toMatch(/^\(24 bytes binary, sha256 [0-9a-f]{16}\)$/);
  });

  it('bodies over the cap: the engine keeps 1 KiB and hashes the rest; equal and changed bodies are told apart by hash', async () => {
    const { c, count } = room();
    const conf = parseCompareConf({ body: { max_bytes: 1024 } });
    await pair(c, 'same', conf, `${v1.url}/large/same`, `${v2.url}/large/same`, { mirrorCap: 1024 });
    await pair(c, 'changed', conf, `${v1.url}/large/changed`, `${v2.url}/large/changed`, { mirrorCap: 1024 });
    expect(await count('equal')).toBe(1);
    expect(await count('differ_body')).toBe(1);
    expect(c.report().routes[0]!.topFields[0]).toMatchObject({ field: 'body', primary: expect.stringMatching(/^100000 bytes, sha256 /) });
  });

  it('HEAD answers are compared without a body (content-length ignored); 204 answers too', async () => {
    const { c, count } = room();
    const conf = parseCompareConf({});
    await pair(c, 'h', conf, `${v1.url}/head`, `${v2.url}/head`, { method: 'HEAD' });
    expect(await count('equal')).toBe(1);
    await pair(c, 'g', conf, `${v1.url}/head`, `${v2.url}/head`, { method: 'GET' });
    expect(await count('differ_body')).toBe(1);
    await pair(c, 'e', parseCompareConf({ headers: { ignore: ['x-v'] } }), `${v1.url}/empty`, `${v2.url}/empty`);
    expect(await count('equal')).toBe(2);
  });
});

describe('credentials in real answers', () => {
  it('differing api keys and token members are counted but shown redacted; set-cookie compared by name only', async () => {
    const { c, count } = room();
    await pair(c, 's', parseCompareConf({}), `${v1.url}/secret`, `${v2.url}/secret`);
    expect(await count('differ_body')).toBe(1);
    const [route] = c.report().routes;
    expect(route!.topFields.map((f) => [f.field, f.primary, f.candidate])).toEqual([
      ['body:/token', '[redacted]', '[redacted]'],
      ['body:/user', '"alice"', '"bob"'],
      ['header:x-api-key', '[redacted]', '[redacted]'],
    ]);
    const shown = JSON.stringify(route!.examples);
    for (const secret of ['key-v1', 'key-v2', 'tok-v1', 'tok-v2', 'sid=']) expect(shown).not.toContain(secret);
    expect(route!.examples[0]!.candidate.headers).toContainEqual(['set-cookie', '[redacted]']);
  });
});

describe('pairs that cannot be compared', () => {
  const conf = parseCompareConf({ max_age: 1000 });
  const primary: PrimaryAnswer = { status: 200, headers: [], body: Buffer.from('ok'), truncated: false };
  const mirror: MirrorOutcome = { status: 200, headers: [], body: Buffer.from('ok'), truncated: false, durationMs: 3 };

  it('mirror_timeout: the real answer came, the mirror did not within max_age (or the engine timed out)', async () => {
    let now = 0;
    const { c, count } = room({ clock: () => now });
    c.expect('slow', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
    c.recordPrimary(ROUTE, 'slow', primary);
    now = 999;
    c.sweep();
    expect(await count('mirror_timeout')).toBe(0);
    now = 1000;
    c.sweep();
    expect(await count('mirror_timeout')).toBe(1);
    // The late answer finds nothing and changes nothing.
    c.recordMirror(ROUTE, 'slow', TARGET, mirror);
    expect(await count('equal')).toBe(0);
    c.expect('engine', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
    c.recordMirror(ROUTE, 'engine', TARGET, { failure: 'timeout', code: 'UND_ERR_HEADERS_TIMEOUT' });
    expect(await count('mirror_timeout')).toBe(2);
  });

  it('mirror_error and primary_only are counted at once, and the post-resp side is told not to wait', async () => {
    const { c, count } = room();
    c.expect('err', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
    expect(c.awaitedPrimary(ROUTE, 'err', 200)).toBe('body');
    c.recordMirror(ROUTE, 'err', TARGET, { failure: 'error', code: 'ECONNREFUSED' });
    expect(await count('mirror_error')).toBe(1);
    expect(c.awaitedPrimary(ROUTE, 'err', 200)).toBe('none');
    expect(c.recordPrimary(ROUTE, 'err', primary)).toBe(false);
    c.expect('drop', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
    c.recordMirror(ROUTE, 'drop', TARGET, { failure: 'not_sent', code: 'queue_full' });
    expect(await count('primary_only')).toBe(1);
  });

  it('skipped: the real answer never came (no post-resp), or the store was full', async () => {
    let now = 0;
    const registry = new Registry();
    const c = new ShadowComparison({ registry, clock: () => now });
    c.expect('np', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
    c.recordMirror(ROUTE, 'np', TARGET, mirror);
    now = 1000;
    c.sweep();
    const small = parseCompareConf({ max_pending: 2 });
    for (const k of ['a', 'b', 'c']) c.expect(k, { route: 'r2', target: TARGET, method: 'GET', path: '/', conf: small });
    const text = await registry.metrics();
    expect(sample(text, 'apisix_runner_mirror_compared_total', { route: ROUTE, result: 'skipped' })).toBe(1);
    expect(sample(text, 'apisix_runner_mirror_compare_skipped_total', { route: ROUTE, reason: 'no_primary' })).toBe(1);
    expect(sample(text, 'apisix_runner_mirror_compare_skipped_total', { route: 'r2', reason: 'evicted' })).toBe(1);
    expect(sample(text, 'apisix_runner_mirror_compare_pending', { route: 'r2' })).toBe(2);
  });

  it('a request nothing waits for: awaitedPrimary is none and recordPrimary changes nothing', async () => {
    const { c, registry } = room();
    expect(c.awaitedPrimary(ROUTE, 'unknown')).toBe('none');
    expect(c.recordPrimary(ROUTE, 'unknown', primary)).toBe(false);
    expect(sample(await registry.metrics(), 'apisix_runner_mirror_compared_total', {})).toBe(0);
  });

  it('awaitedPrimary asks for the body only when the route compares bodies and the answer has one', () => {
    const { c } = room();
    c.expect('get', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
    c.expect('head', { route: ROUTE, target: TARGET, method: 'HEAD', path: '/', conf });
    c.expect('nobody', { route: 'r3', target: TARGET, method: 'GET', path: '/', conf: parseCompareConf({ body: false }) });
    expect(c.awaitedPrimary(ROUTE, 'get', 200)).toBe('body');
    expect(c.awaitedPrimary(ROUTE, 'get', 204)).toBe('headers');
    expect(c.awaitedPrimary(ROUTE, 'head', 200)).toBe('headers');
    expect(c.awaitedPrimary('r3', 'nobody', 200)).toBe('headers');
    expect(c.expect('get', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf })).toBe(false);
  });

  it('two targets of one request are compared separately against the one real answer', async () => {
    const { c, count } = room();
    const other = 'http://v1-copy:8080';
    const conf2 = parseCompareConf({});
    c.expect('two', { route: ROUTE, target: TARGET, method: 'GET', path: '/items/3', conf: conf2 });
    c.expect('two', { route: ROUTE, target: other, method: 'GET', path: '/items/3', conf: conf2 });
    c.recordMirror(ROUTE, 'two', TARGET, await fetchAnswer(`${v2.url}/items/3`));
    c.recordPrimary(ROUTE, 'two', await fetchPrimary(`${v1.url}/items/3`));
    expect(c.pending(ROUTE).count).toBe(1);
    c.recordMirror(ROUTE, 'two', other, await fetchAnswer(`${v1b.url}/items/3`));
    expect(await count('differ_body')).toBe(1);
    expect(await count('equal', ROUTE, other)).toBe(1);
    expect(c.pending(ROUTE)).toEqual({ count: 0, bytes: 0 });
  });
});

describe('memory', () => {
  it('10^5 requests against a candidate that never answers: the store never passes its caps', async () => {
    let now = 0;
    const { c, count } = room({ clock: () => now });
    const conf = parseCompareConf({ max_pending: 1000, max_pending_bytes: 512 * 1024, max_age: 5000 });
    const body = Buffer.from(JSON.stringify({ data: 'x'.repeat(1000) }));
    let maxCount = 0;
    let maxBytes = 0;
    for (let i = 0; i < 100_000; i++) {
      now += 1;
      const key = `k${i}`;
      c.expect(key, { route: ROUTE, target: TARGET, method: 'POST', path: `/orders/${i}`, conf });
      c.recordPrimary(ROUTE, key, { status: 200, headers: [['content-type', 'application/json']], body, truncated: false });
      const p = c.pending(ROUTE);
      maxCount = Math.max(maxCount, p.count);
      maxBytes = Math.max(maxBytes, p.bytes);
    }
    expect(maxCount).toBeLessThanOrEqual(1000);
    expect(maxBytes).toBeLessThanOrEqual(512 * 1024);
    // Bytes, not count, were the binding cap here (a pair holds ~1.4 KiB).
    expect(maxCount).toBeLessThan(1000);
    const { count: left } = c.pending(ROUTE);
    expect(await count('skipped') + await count('mirror_timeout') + left).toBe(100_000);
    c.stop();
    expect(c.pending(ROUTE)).toEqual({ count: 0, bytes: 0 });
    expect(await count('skipped') + await count('mirror_timeout')).toBe(100_000);
  });

  it('with room to spare, a candidate that never answers ends as mirror_timeout at max age', async () => {
    let now = 0;
    const { c, count } = room({ clock: () => now });
    const conf = parseCompareConf({ max_pending: 100_000, max_pending_bytes: 1 << 30, max_age: 1000 });
    for (let i = 0; i < 5000; i++) {
      now += 1;
      c.expect(`k${i}`, { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
      c.recordPrimary(ROUTE, `k${i}`, { status: 200, headers: [], body: Buffer.from('ok'), truncated: false });
      expect(c.pending(ROUTE).count).toBeLessThanOrEqual(1000);
    }
    now += 1000;
    c.sweep();
    expect(await count('mirror_timeout')).toBe(5000);
    expect(await count('skipped')).toBe(0);
  });
});

describe('never throws into the caller', () => {
  it('a comparison that fails is counted skipped (compare_error) and reported through onError', async () => {
    const registry = new Registry();
    const errors: Error[] = [];
    const c = new ShadowComparison({ registry, onError: (e) => errors.push(e) });
    const broken: CompareConf = { ...parseCompareConf({}), headers: { mode: 'ignore', names: { has: () => { throw new Error('broken selection'); } } as unknown as Set<string> } };
    c.expect('x', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf: broken });
    c.recordMirror(ROUTE, 'x', TARGET, { status: 200, headers: [['a', '1']], body: Buffer.alloc(0), truncated: false, durationMs: 1 });
    expect(() => c.recordPrimary(ROUTE, 'x', { status: 200, headers: [['a', '1']], body: Buffer.alloc(0), truncated: false })).not.toThrow();
    expect(errors.map((e) => e.message)).toEqual(['broken selection']);
    const text = await registry.metrics();
    expect(sample(text, 'apisix_runner_mirror_compare_skipped_total', { reason: 'compare_error' })).toBe(1);
    expect(c.pending(ROUTE)).toEqual({ count: 0, bytes: 0 });
  });
});

describe('the sweep timer', () => {
  it('start() expires pairs on its own timer (no call needed); stop() ends it and drops what waits', async () => {
    let now = 0;
    const { c, count } = room({ clock: () => now });
    const conf = parseCompareConf({ max_age: 1000 });
    c.expect('a', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
    c.recordPrimary(ROUTE, 'a', { status: 200, headers: [], body: Buffer.from('ok'), truncated: false });
    c.expect('b', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
    now = 1000;
    c.start(5);
    const deadline = Date.now() + 10_000;
    while (c.pending(ROUTE).count > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(await count('mirror_timeout')).toBe(1);
    expect(await count('skipped')).toBe(1);
    c.expect('c', { route: ROUTE, target: TARGET, method: 'GET', path: '/', conf });
    c.stop();
    expect(c.pending(ROUTE).count).toBe(0);
    expect(await count('skipped')).toBe(2);
  });
});
