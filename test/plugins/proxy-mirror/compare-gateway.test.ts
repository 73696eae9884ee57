/**
 * Shadow comparison end to end: the gateway emulator (test/harness/gateway.ts) runs routes with
 * proxy-mirror in ext-plugin-pre-req and ext-plugin-post-resp against a real runner (in
 * process, Unix socket), a real v1 upstream and a real v2 candidate (compare-services.ts); the
 * results are read where an operator reads them: /mirror/diffs on the metrics listener, the
 * Prometheus metrics and the --mirror-diff-log file.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import pino from 'pino';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompareReport } from '../../../src/mirror-compare/index.js';
import { createProxyMirrorPlugin, type ProxyMirrorPlugin } from '../../../src/plugins/proxy-mirror/index.js';
import { startRunner, type Runner } from '../../../src/runner.js';
import { GatewayEmulator, type GatewayRoute } from '../../harness/gateway.js';
import { createTempDir, type TempDir } from '../../harness/temp-dir.js';
import { waitUntil } from '../../harness/wait.js';
import { startCompareService, type CompareService } from './compare-services.js';

type RouteReport = CompareReport['routes'][number];

interface Stack {
  readonly gateway: GatewayEmulator;
  readonly runner: Runner;
  readonly plugin: ProxyMirrorPlugin;
  readonly registry: Registry;
  readonly v1: CompareService;
  readonly v1b: CompareService;
  readonly v2: CompareService;
  readonly dir: TempDir;
  readonly diffLog: string;
  readonly routes: readonly GatewayRoute[];
  close(): Promise<void>;
}

/** A route with the same proxy-mirror conf in both phases, as docs/compare.md tells operators to write it. */
function compareRoute(id: string, v1: CompareService, v2: CompareService, compare: Record<string, unknown>, mirror: Record<string, unknown> = {}): GatewayRoute {
  const ext = { conf: [{ name: 'proxy-mirror', value: JSON.stringify({ host: v2.url, timeout: { read: '60s' }, ...mirror, compare }) }] };
  return { id, uri: `/${id}/`, version: 1, upstream: v1.url, plugins: { 'ext-plugin-pre-req': ext, 'ext-plugin-post-resp': ext } };
}

async function startStack(mirrorThreads: number): Promise<Stack> {
  const [v1, v1b, v2] = await Promise.all([startCompareService('v1'), startCompareService('v1'), startCompareService('v2')]);
  const dir = createTempDir('cmp-');
  const diffLog = dir.file('diffs.jsonl');
  const registry = new Registry();
  let plugin: ProxyMirrorPlugin | undefined;
  const runner = await startRunner({
    socketPath: dir.file('r.sock'),
    logger: pino({ level: 'silent' }),
    metrics: registry,
    metricsAddress: '127.0.0.1:0',
    settings: { 'proxy-mirror': { mirror_threads: mirrorThreads, diff_log: diffLog } },
    plugins: (host) => [(plugin = createProxyMirrorPlugin(host))],
  });
  const routes: GatewayRoute[] = [
    compareRoute('fields', v1, v2, {}),
    compareRoute('clock-s', v1, v2, { secondary: v1b.url }),
    compareRoute('clock-p', v1, v2, {}),
    compareRoute('slow', v1, v2, { max_age: '2s' }),
    // Its own limits make it a dispatch target of its own (targets are shared by identical
    // specs): the copies it holds forever must not queue the other routes' copies behind them.
    compareRoute('hold', v1, v2, { max_pending: 50, max_age: '60s' }, { max_concurrency: 16 }),
    compareRoute('bin', v1, v2, { route: 'bin' }),
    compareRoute('gz', v1, v2, { route: 'gz' }),
    compareRoute('large', v1, v2, { route: 'large', body: { max_bytes: 4096 } }),
    compareRoute('huge', v1, v2, { route: 'huge' }),
    compareRoute('head', v1, v2, { route: 'head' }),
    compareRoute('nocontent', v1, v2, { route: 'nocontent' }),
    // Copies only POSTs: a GET is never mirrored, so nothing waits for its real answer.
    compareRoute('fields-post', v1, v2, { route: 'fields-post' }, { methods: ['POST'] }),
  ];
  const gateway = await GatewayEmulator.start({ socketPath: dir.file('r.sock'), routes });
  return {
    gateway, runner, plugin: plugin!, registry, v1, v1b, v2, dir, diffLog, routes,
    async close() {
      await gateway.close();
      await runner.close();
      await Promise.all([v1.close(), v1b.close(), v2.close()]);
      dir.remove();
    },
  };
}

/** A stack for the tests of one describe block: started before them, closed after. */
function useStack(mirrorThreads: number): Stack {
  let stack: Stack | undefined;
  beforeAll(async () => {
    stack = await startStack(mirrorThreads);
  }, 30_000);
  afterAll(async () => {
    await stack?.close();
  });
  // The tests read the stack through this view once beforeAll has started it.
  return new Proxy({} as Stack, { get: (_t, key) => Reflect.get(stack!, key) as unknown });
}

async function send(s: Stack, path: string, method: 'GET' | 'HEAD' = 'GET'): Promise<{ status: number; body: Buffer }> {
  const res = await request(s.gateway.url + path, { method });
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
}

/** Sends `paths` with a few requests in flight at once; resolves with every answer, in order. */
async function sendAll(s: Stack, paths: readonly string[], method: 'GET' | 'HEAD' = 'GET'): Promise<{ status: number; body: Buffer }[]> {
  const out: { status: number; body: Buffer }[] = [];
  for (let i = 0; i < paths.length; i += 8) out.push(...(await Promise.all(paths.slice(i, i + 8).map((p) => send(s, p, method)))));
  return out;
}

async function diffs(s: Stack): Promise<CompareReport> {
  const res = await request(s.runner.metricsUrl!.replace(/\/metrics$/, '/mirror/diffs'));
  expect(res.statusCode).toBe(200);
  return (await res.body.json()) as CompareReport;
}

async function routeReport(s: Stack, route: string): Promise<RouteReport | undefined> {
  return (await diffs(s)).routes.find((r) => r.route === route);
}

const finished = (r: RouteReport | undefined): number => (r ? Object.values(r.counts).reduce((a, b) => a + b, 0) : 0);

/** Waits until `n` pairs of a route have a result, then returns its report. */
async function settled(s: Stack, route: string, n: number): Promise<RouteReport> {
  await waitUntil(async () => finished(await routeReport(s, route)) >= n, `${n} results on ${route}`, { limitMs: 30_000, intervalMs: 50 });
  return (await routeReport(s, route))!;
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  let sum = 0;
  for (const v of (await m.get()).values) {
    const l = v.labels as Record<string, string | number>;
    if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) sum += v.value;
  }
  return sum;
}

const range = (n: number, f: (i: number) => string): string[] => Array.from({ length: n }, (_, i) => f(i));

describe('shadow comparison through the gateway emulator (pre-req + post-resp)', () => {
  const s = useStack(1);

  it('v2 differs in one JSON field for one request in three: 300 requests give exactly 200 equal / 100 differ_body, and the field is named', async () => {
    const answers = await sendAll(s, range(300, (i) => `/fields/${i}`));
    // The real answers are v1's, untouched.
    expect(answers.every((a, i) => a.status === 200 && JSON.parse(a.body.toString()).price === 10 && JSON.parse(a.body.toString()).id === i)).toBe(true);
    // Both phases file the pair under what precedes the phase in the conf key (route#<id>).
    const r = await settled(s, 'route#fields', 300);
    expect(r.counts).toMatchObject({ equal: 200, differ_body: 100, differ_status: 0, differ_headers: 0, mirror_timeout: 0, mirror_error: 0, primary_only: 0, skipped: 0 });
    expect(r.topFields).toEqual([{ field: 'body:/price', count: 100, primary: '10', candidate: '12' }]);
    expect(r.targets).toEqual([s.v2.url]);
    expect(await metric(s.registry, 'apisix_runner_mirror_compared_total', { route: 'route#fields', result: 'differ_body' })).toBe(100);
    // The HTML report names the field too.
    const page = await request(s.runner.metricsUrl!.replace(/\/metrics$/, '/mirror/report'));
    expect(page.statusCode).toBe(200);
    expect(await page.body.text()).toContain('body:/price');
    // /metrics is still served as before.
    const metricsPage = await request(s.runner.metricsUrl!);
    expect(await metricsPage.body.text()).toContain('apisix_runner_mirror_compared_total');
    // --mirror-diff-log: one JSONL line per difference.
    await waitUntil(() => readFileSync(s.diffLog, 'utf8').split('\n').filter((l) => l.includes('"route#fields"')).length >= 100, 'the diff log lines');
    const lines = readFileSync(s.diffLog, 'utf8').split('\n').filter((l) => l.includes('"route#fields"')).map((l) => JSON.parse(l) as { result: string; path: string; differences: { field: string }[] });
    expect(lines).toHaveLength(100);
    expect(lines.every((l) => l.result === 'differ_body' && l.differences[0]!.field === 'body:/price' && Number(l.path.split('/')[2]) % 3 === 0)).toBe(true);
  }, 120_000);

  it('the diff log is rotated like --log-file: moved away, then SIGHUP opens a new file at the path', async () => {
    await sendAll(s, ['/fields/3000']);
    await waitUntil(() => existsSync(s.diffLog) && readFileSync(s.diffLog, 'utf8').includes('"/fields/3000"'), 'a line in the diff log');
    const rotated = `${s.diffLog}.1`;
    renameSync(s.diffLog, rotated);
    // What logrotate's `postrotate kill -HUP` delivers (cli.ts reopens --log-file on the same signal).
    process.emit('SIGHUP', 'SIGHUP');
    await sendAll(s, ['/fields/3003']);
    await waitUntil(() => existsSync(s.diffLog) && readFileSync(s.diffLog, 'utf8').includes('"/fields/3003"'), 'the next difference in a new file at the path');
    expect(readFileSync(rotated, 'utf8')).not.toContain('"/fields/3003"');
    expect(readFileSync(s.diffLog, 'utf8')).not.toContain('"/fields/3000"');
  }, 60_000);

  it('a route update (new conf version, new PrepareConf keys) keeps filing pairs under the same route name', async () => {
    const before = finished(await routeReport(s, 'route#fields'));
    s.gateway.setRoutes(s.routes.map((r) => (r.id === 'fields' ? { ...r, version: 2 } : r)));
    try {
      await sendAll(s, ['/fields/3', '/fields/4', '/fields/5']);
      const r = await settled(s, 'route#fields', before + 3);
      expect(finished(r)).toBe(before + 3);
      expect((await diffs(s)).routes.filter((x) => x.route.startsWith('route#fields'))).toHaveLength(1);
    } finally {
      s.gateway.setRoutes(s.routes);
    }
  });

  it('a timestamp that differs on every answer: with a secondary it is noise (nothing differs), without one it is reported', async () => {
    await sendAll(s, range(30, (i) => `/clock-s/${i}`));
    await sendAll(s, range(30, (i) => `/clock-p/${i}`));
    const withSecondary = await settled(s, 'route#clock-s', 30);
    expect(withSecondary.counts).toMatchObject({ equal: 30, differ_body: 0 });
    expect(withSecondary.topFields).toEqual([]);
    expect(withSecondary.noiseSuppressed).toEqual([{ field: 'body:/ts', count: 30 }]);
    // The secondary got the same copies through the same engine.
    expect(s.v1b.received.filter((p) => p.startsWith('/clock-s/'))).toHaveLength(30);
    const without = await settled(s, 'route#clock-p', 30);
    expect(without.counts).toMatchObject({ equal: 0, differ_body: 30 });
    expect(without.topFields.map((f) => [f.field, f.count])).toEqual([['body:/ts', 30]]);
    expect(s.v1b.received.some((p) => p.startsWith('/clock-p/'))).toBe(false);
  }, 60_000);

  it('a candidate slower than the pending-pair age: every pair is mirror_timeout, the client got every real answer while the candidate held its copies', async () => {
    const answers = await sendAll(s, range(20, (i) => `/slow/${i}`));
    expect(answers.map((a) => JSON.parse(a.body.toString()) as unknown)).toEqual(Array.from({ length: 20 }, (_, i) => ({ id: i, ok: true })));
    // The cause: the copies reach the candidate after the client's answers and stay held.
    await waitUntil(() => s.v2.held >= 20, 'the candidate holding 20 copies');
    expect(s.v2.held).toBe(20);
    const r = await settled(s, 'route#slow', 20);
    expect(r.counts).toMatchObject({ mirror_timeout: 20, equal: 0, skipped: 0 });
    // The late answers change nothing.
    const answered = { target: s.v2.url, outcome: '2xx' };
    const before = await metric(s.registry, 'apisix_runner_mirror_requests_total', answered);
    s.v2.releaseHeld();
    await waitUntil(async () => (await metric(s.registry, 'apisix_runner_mirror_requests_total', answered)) >= before + 20, 'the 20 late answers read by the engine');
    expect((await routeReport(s, 'route#slow'))!.counts).toMatchObject({ mirror_timeout: 20, equal: 0 });
  }, 60_000);

  it('a candidate that never answers: pending pairs stay at max_pending (the rest evicted), the real answers are all served', async () => {
    const answers = await sendAll(s, range(200, (i) => `/hold/${i}`));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const r = await settled(s, 'route#hold', 150);
    expect(r.counts).toMatchObject({ skipped: 150, equal: 0 });
    expect(await metric(s.registry, 'apisix_runner_mirror_compare_skipped_total', { route: 'route#hold', reason: 'evicted' })).toBe(150);
    expect(s.plugin.compare.room.pending('route#hold').count).toBe(50);
    expect(r.pending.count).toBe(50);
  }, 60_000);

  it('binary bodies: equal bytes are equal, one flipped byte is differ_body', async () => {
    await sendAll(s, ['/bin/same', '/bin/same', '/bin/diff']);
    const r = await settled(s, 'bin', 3);
    expect(r.counts).toMatchObject({ equal: 2, differ_body: 1 });
  });

  it('gzip bodies are compared decoded: other compressor output is equal, another field value is named', async () => {
    await sendAll(s, ['/gz/same', '/gz/diff']);
    const r = await settled(s, 'gz', 2);
    expect(r.counts).toMatchObject({ equal: 1, differ_body: 1 });
    expect(r.topFields.map((f) => [f.field, f.primary, f.candidate])).toEqual([['body:/colour', '"red"', '"blue"']]);
  });

  it('bodies over the cap are compared by length and SHA-256 (the engine hashes the whole body while reading)', async () => {
    await sendAll(s, ['/large/same', '/large/diff']);
    const r = await settled(s, 'large', 2);
    expect(r.counts).toMatchObject({ equal: 1, differ_body: 1 });
    expect(r.topFields[0]).toMatchObject({ field: 'body', primary: expect.stringMatching(/^204800 bytes, sha256 /) });
  });

  it('bodies over the default 1 MiB cap are read to their end for the hash, only the cap is kept', async () => {
    await sendAll(s, ['/huge/same', '/huge/diff']);
    const r = await settled(s, 'huge', 2);
    expect(r.counts).toMatchObject({ equal: 1, differ_body: 1 });
    expect(r.topFields[0]).toMatchObject({ field: 'body', primary: expect.stringMatching(/^3145728 bytes, sha256 /), candidate: expect.stringMatching(/^3145728 bytes, sha256 /) });
  });

  it('HEAD: compared by status and headers, the body is never asked from APISIX', async () => {
    const answers = await sendAll(s, ['/head/a', '/head/b'], 'HEAD');
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    const r = await settled(s, 'head', 2);
    expect(r.counts).toMatchObject({ equal: 2 });
    const postResp = s.gateway.events.filter((e) => e.routeId === 'head').flatMap((e) => e.phases.filter((p) => p.phase === 'ext-plugin-post-resp'));
    expect(postResp).toHaveLength(2);
    for (const p of postResp) expect(p.outcome.extraInfoAsked).toEqual([{ kind: 'var', name: 'request_id' }]);
  });

  it('204 from both: equal, without a RespBody round trip', async () => {
    const answers = await sendAll(s, ['/nocontent/a']);
    expect(answers[0]!.status).toBe(204);
    const r = await settled(s, 'nocontent', 1);
    expect(r.counts).toMatchObject({ equal: 1 });
    const postResp = s.gateway.events.filter((e) => e.routeId === 'nocontent').flatMap((e) => e.phases.filter((p) => p.phase === 'ext-plugin-post-resp'));
    expect(postResp.map((p) => p.outcome.extraInfoAsked)).toEqual([[{ kind: 'var', name: 'request_id' }]]);
  });
});

describe('the post-resp call of a request that was not copied', () => {
  const s = useStack(1);

  it('asks APISIX nothing and leaves the answer alone when no pair of the route waits', async () => {
    // Another route compares, so the room exists; this one copies only POSTs.
    await sendAll(s, ['/fields/1']);
    await settled(s, 'route#fields', 1);
    // The upstream has no /fields-post: its 404 reaches the client as it is.
    const answers = await sendAll(s, ['/fields-post/4', '/fields-post/5']);
    expect(answers.map((a) => a.status)).toEqual([404, 404]);
    const postResp = s.gateway.events.filter((e) => e.routeId === 'fields-post').flatMap((e) => e.phases.filter((p) => p.phase === 'ext-plugin-post-resp'));
    expect(postResp).toHaveLength(2);
    for (const p of postResp) {
      expect(p.outcome.extraInfoAsked).toEqual([]);
      // The runner's answer changes nothing (no status, header or body of its own).
      expect(p.outcome).toMatchObject({ kind: 'respCall', status: 0 });
    }
    expect(await routeReport(s, 'fields-post')).toBeUndefined();
  });
});

describe('shadow comparison with the copies sent from a worker thread (mirror_threads 2)', () => {
  const s = useStack(2);

  it('the answers cross the thread: fields, gzip and over-the-cap bodies are compared as on one thread', async () => {
    await sendAll(s, range(9, (i) => `/fields/${i}`));
    await sendAll(s, ['/gz/diff', '/large/same', '/large/diff']);
    expect((await settled(s, 'route#fields', 9)).counts).toMatchObject({ equal: 6, differ_body: 3 });
    expect((await settled(s, 'gz', 1)).counts).toMatchObject({ differ_body: 1 });
    expect((await settled(s, 'large', 2)).counts).toMatchObject({ equal: 1, differ_body: 1 });
  }, 60_000);
});
