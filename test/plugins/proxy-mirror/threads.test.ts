/**
 * Copies sent from worker threads (mirror_threads > 1): byte-exact copies, gRPC included; a
 * worker that dies is restarted, counted and logged once; shutdown drains queued copies within
 * the grace period or counts them as dropped (on one thread and with workers).
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { RouteConf } from '../../harness/apisix-client.js';
import {
  GrpcTarget, RecordingTarget, call, expectOk, grpcFrame, headerValues, mirrorRoute, startMirrorRunner, until, type MirrorRunner,
} from './fixtures.js';
import { getUriArgs } from './uri-args-model.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function target(mode: 'ok' | 'hold' = 'ok', holdMs = 10_000): Promise<RecordingTarget> {
  const t = await RecordingTarget.start(mode, undefined, holdMs);
  cleanups.push(() => t.close());
  return t;
}

async function runner(settings: Record<string, unknown>): Promise<MirrorRunner> {
  const mr = await startMirrorRunner({ now: () => 0, settings });
  cleanups.push(() => mr.close());
  return mr;
}

describe('copies from a worker thread', () => {
  it('arrive byte for byte: method, URI, headers, body', async () => {
    const t = await target();
    const mr = await runner({ mirror_threads: 2 });
    const body = Buffer.from([0, 1, 2, 250, 255, 10, 13]);
    const o = expectOk(await mr.client.httpReqCall(mirrorRoute('route#thr1#x#1', { host: t.url, headers: { set: { 'x-shadow': '1' } } }), call({
      method: 'PUT', path: '/a b', args: [{ name: 'k', value: 'v' }],
      headers: [{ name: 'host', value: 'api.example' }, { name: 'x-rep', value: '1' }, { name: 'x-rep', value: '2' }, { name: 'content-length', value: String(body.length) }],
      body,
    })));
    expect(o.extraInfoAsked).toEqual([{ kind: 'reqBody' }]);
    const [copy] = await t.waitFor(1);
    expect(copy!.method).toBe('PUT');
    expect(copy!.url).toBe('/a%20b?k=v');
    expect(copy!.body).toEqual(body);
    expect(headerValues(copy!, 'x-rep')).toEqual(['1', '2']);
    expect(headerValues(copy!, 'host')).toEqual(['api.example']);
    expect(headerValues(copy!, 'x-shadow')).toEqual(['1']);
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: t.url, outcome: '2xx' })) === 1, '2xx counted');
    expect(mr.plugin.dispatcher.threads?.workers).toHaveLength(1);
  });

  it('build a GET\'s target there from the call: path modes, the query rebuilt or asked for, a path or args edited before', async () => {
    const t = await target();
    const mr = await startMirrorRunner({ now: () => 0, settings: { mirror_threads: 2 }, withRewrite: true });
    cleanups.push(() => mr.close());
    const rewritten = (key: string, rewrite: object): RouteConf => ({
      key, conf: [{ name: 'rewrite', value: JSON.stringify(rewrite) }, { name: 'proxy-mirror', value: JSON.stringify({ host: t.url }) }],
    });
    const cases: { route: RouteConf; req: Parameters<typeof call>[0]; url: string; asked: boolean }[] = [
      // `auto`, one name written literally: rebuilt in the worker, path prefixed and escaped there.
      { route: mirrorRoute('route#u1#x#1', { host: t.url, path: '/m', path_concat_mode: 'prefix' }), req: { path: '/a b', args: [{ name: 'x', value: '1' }, { name: 'x', value: 'y:z/' }, { name: 'x' }] }, url: '/m/a%20b?x=1&x=y:z/&x', asked: false },
      // `rebuilt`: re-encoded (encodeArgs), even when literal; the conf's path replaces the request's.
      { route: mirrorRoute('route#u2#x#1', { host: t.url, query: 'rebuilt', path: '/r' }), req: { path: '/ignored', args: [{ name: 'a:b', value: 'c d' }, { name: 'z' }] }, url: '/r?a%3Ab=c%20d&z', asked: false },
      // No args at all; a non-ASCII path.
      { route: mirrorRoute('route#u3#x#1', { host: t.url }), req: { path: '/é' }, url: '/%C3%A9', asked: false },
      // `auto` that cannot rebuild: the raw query from APISIX, the target built on the RPC thread.
      { route: mirrorRoute('route#u4#x#1', { host: t.url }), req: { path: '/q', args: getUriArgs('b=2&a=hello%20world'), vars: { args: 'b=2&a=hello%20world' } }, url: '/q?b=2&a=hello%20world', asked: true },
      // A path, or args, edited by `rewrite` before proxy-mirror: the copy has the edited ones.
      { route: rewritten('route#u5#x#1', { path: '/edited' }), req: { path: '/orig', args: [{ name: 'x', value: '1' }] }, url: '/edited?x=1', asked: false },
      { route: rewritten('route#u6#x#1', { args: { set: { x: '9' } } }), req: { path: '/orig', args: [{ name: 'x', value: '1' }] }, url: '/orig?x=9', asked: false },
      // A header edited before: the head, and so the target, are built on the RPC thread.
      { route: rewritten('route#u7#x#1', { headers: { set: { 'x-r': '1' } } }), req: { path: '/orig', args: [{ name: 'x', value: '1' }] }, url: '/orig?x=1', asked: false },
    ];
    for (const [i, c] of cases.entries()) {
      const o = expectOk(await mr.client.httpReqCall(c.route, call({ ...c.req, headers: [{ name: 'host', value: 'api.example' }] })));
      expect(o.extraInfoAsked.length > 0, `case ${i}: asked APISIX`).toBe(c.asked);
      const got = await t.waitFor(i + 1);
      expect(got[i]!.method).toBe('GET');
      expect(got[i]!.url, `case ${i}`).toBe(c.url);
      expect(headerValues(got[i]!, 'host')).toEqual(['api.example']);
    }
  });

  it('re-issues a gRPC call', async () => {
    const g = await GrpcTarget.start();
    cleanups.push(() => g.close());
    const mr = await runner({ mirror_threads: 2 });
    const body = grpcFrame(Buffer.from('hello'));
    expectOk(await mr.client.httpReqCall(mirrorRoute('route#thr2#x#1', { host: `grpc://127.0.0.1:${g.port}` }), call({
      method: 'POST', path: '/test.Mirror/Call',
      headers: [{ name: 'host', value: 'g' }, { name: 'content-type', value: 'application/grpc' }, { name: 'content-length', value: String(body.length) }],
      body,
    })));
    const [got] = await g.waitFor(1);
    expect(got!.messages.map((m) => m.toString())).toEqual(['hello']);
  });

  it('survives the worker dying: in-flight copies counted as errors, restarted, logged once', async () => {
    const slow = await target('hold');
    const ok = await target();
    const mr = await runner({ mirror_threads: 2 });
    const slowRoute = mirrorRoute('route#thr3#x#1', { host: slow.url });
    for (let i = 0; i < 3; i++) expectOk(await mr.client.httpReqCall(slowRoute, call()));
    await slow.waitFor(3);
    const threads = mr.plugin.dispatcher.threads!;
    await threads.workers[0]!.terminate();
    await until(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: slow.url, outcome: 'error' })) === 3, 'lost copies counted');
    expect(threads.restarts).toBe(1);
    expect(await mr.metric('apisix_runner_mirror_thread_restarts_total', {})).toBe(1);
    const lines = mr.logs.filter((l) => String(l['msg']).includes('mirror thread 0 died'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ thread: 0, lost: 3 });
    expect(await mr.metric('apisix_runner_mirror_inflight', { target: slow.url })).toBe(0);
    // Their durations are not known: the latency histogram has no observation for them (every
    // bucket, the count and the sum of the error series are 0), rather than three of 0 s.
    expect(await mr.metric('apisix_runner_mirror_latency_seconds', { target: slow.url, outcome: 'error' })).toBe(0);
    // The restarted worker takes copies, to new targets and to the ones it had.
    expectOk(await mr.client.httpReqCall(mirrorRoute('route#thr4#x#1', { host: ok.url, path: '/after-crash' }), call()));
    expectOk(await mr.client.httpReqCall(slowRoute, call({ path: '/again' })));
    await ok.waitFor(1);
    await until(() => slow.received.some((r) => r.url === '/again'), 'copy to the old target after restart');
  });
});

describe('a worker dying with copies queued behind its in-flight ones', () => {
  it('the queued copy that its lost copy\'s slot frees goes to the restarted worker and arrives', async () => {
    const slow = await target('hold');
    const mr = await runner({ mirror_threads: 2 });
    // One copy in flight, one queued behind it.
    const route = mirrorRoute('route#thr5#x#1', { host: slow.url, max_concurrency: 1, max_queue: 5 });
    expectOk(await mr.client.httpReqCall(route, call({ path: '/first' })));
    await slow.waitFor(1);
    expectOk(await mr.client.httpReqCall(route, call({ path: '/queued' })));
    expect(mr.plugin.dispatcher.threads!.restarts).toBe(0);
    await mr.plugin.dispatcher.threads!.workers[0]!.terminate();
    // The lost copy's outcome frees its slot and starts the queued one, during the restart:
    // it must reach the new worker's ring, not the dead one's.
    await until(() => slow.received.some((r) => r.url === '/queued'), 'the queued copy sent by the restarted worker');
    expect(await mr.metric('apisix_runner_mirror_requests_total', { target: slow.url, outcome: 'error' })).toBe(1);
    expect(await mr.metric('apisix_runner_mirror_inflight', { target: slow.url })).toBe(1);
    expect(await mr.metric('apisix_runner_mirror_queued', { target: slow.url })).toBe(0);
  });
});

describe.each([1, 2])('shutdown with mirror_threads %i', (threads) => {
  it('drains queued copies within the grace period', async () => {
    const t = await target('hold', 200);
    const mr = await startMirrorRunner({ now: () => 0, settings: { mirror_threads: threads, close_grace: '10s' } });
    const route = mirrorRoute(`route#drain${threads}#x#1`, { host: t.url, max_concurrency: 1, max_queue: 5 });
    for (let i = 0; i < 3; i++) expectOk(await mr.client.httpReqCall(route, call({ path: `/d${i}` })));
    await mr.close();
    // close() returned after every queued copy was sent and answered.
    expect(t.received.map((r) => r.url)).toEqual(['/d0', '/d1', '/d2']);
    expect(t.answered).toBe(3);
    expect(await mr.metric('apisix_runner_mirror_requests_total', { target: t.url, outcome: 'dropped' })).toBe(0);
    expect(await mr.metric('apisix_runner_mirror_requests_total', { target: t.url, outcome: '2xx' })).toBe(3);
  });

  it('counts what the grace period could not send as dropped', async () => {
    const t = await target('hold', 10_000);
    const mr = await startMirrorRunner({ now: () => 0, settings: { mirror_threads: threads, close_grace: '100ms' } });
    const route = mirrorRoute(`route#nodrain${threads}#x#1`, { host: t.url, max_concurrency: 1, max_queue: 5 });
    for (let i = 0; i < 3; i++) expectOk(await mr.client.httpReqCall(route, call()));
    await t.waitFor(1);
    await mr.close();
    expect(t.received).toHaveLength(1);
    expect(await mr.metric('apisix_runner_mirror_requests_total', { target: t.url, outcome: 'dropped' })).toBe(2);
    expect(await mr.metric('apisix_runner_mirror_queued', { target: t.url })).toBe(0);
  });
});
