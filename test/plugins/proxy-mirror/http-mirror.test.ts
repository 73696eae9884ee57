import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  RecordingTarget, call, expectOk, headerValues, mirrorRoute, startMirrorRunner, type MirrorRunner,
} from './fixtures.js';
import { waitUntil } from '../../harness/wait.js';

let target: RecordingTarget;
let other: RecordingTarget;
let mr: MirrorRunner;
let routeN = 0;
const key = (): string => `route#${++routeN}#ext-plugin-pre-req#1`;

// The copy's content is the same whether the RPC thread sends it (its head built there from
// the call's bytes) or a worker does (the bytes travel through the ring and the head is built
// in the worker): the whole suite runs both ways.
describe.each([1, 2])('with mirror_threads %i', (threads) => {
  beforeAll(async () => {
    target = await RecordingTarget.start();
    other = await RecordingTarget.start();
    // random is never called when sample_ratio is 1 (as in APISIX): make a call fail loudly.
    mr = await startMirrorRunner({ random: () => { throw new Error('random must not be called'); }, settings: { mirror_threads: threads } });
  });
  afterAll(async () => {
    await mr.close();
    await target.close();
    await other.close();
  });

  /** Sends one request through the runner and returns the copy the target recorded. */
  async function mirrorOne(conf: Record<string, unknown>, req: Parameters<typeof call>[0], t = target) {
    const before = t.received.length;
    const outcome = expectOk(await mr.client.httpReqCall(mirrorRoute(key(), { host: t.url, ...conf }), call(req)));
    const copies = await t.waitFor(before + 1);
    return { outcome, copy: copies[before]! };
  }

  describe('proxy-mirror over the runner: the HTTP copy', () => {
    it('copies method, raw query, repeated headers and APISIX host, minus hop-by-hop headers', async () => {
      const raw = 'flag&a=1&a=2&y=&q=hello%20world&e=%E2%9C%93&plus=a+b';
      const { outcome, copy } = await mirrorOne({}, {
        method: 'DELETE',
        path: '/hello',
        args: [{ name: 'flag' }, { name: 'a', value: '1' }, { name: 'a', value: '2' }, { name: 'y', value: '' },
          { name: 'q', value: 'hello world' }, { name: 'e', value: '✓' }, { name: 'plus', value: 'a b' }],
        headers: [
          { name: 'host', value: 'upstream.internal:8080' },
          { name: 'x-multi', value: 'v1' }, { name: 'x-multi', value: 'v2' },
          { name: 'connection', value: 'keep-alive' }, { name: 'keep-alive', value: 'timeout=5' },
          { name: 'te', value: 'trailers' }, { name: 'upgrade', value: 'websocket' },
          { name: 'proxy-connection', value: 'keep-alive' }, { name: 'trailer', value: 'x' },
          { name: 'user-agent', value: 'curl/8.5.0' },
        ],
        vars: { args: raw },
      });
      expect(outcome.kind).toBe('none');
      expect(outcome.extraInfoAsked).toEqual([{ kind: 'var', name: 'args' }]);
      expect(copy.method).toBe('DELETE');
      expect(copy.url).toBe(`/hello?${raw}`);
      expect(headerValues(copy, 'host')).toEqual(['upstream.internal:8080']);
      expect(headerValues(copy, 'x-multi')).toEqual(['v1', 'v2']);
      expect(headerValues(copy, 'user-agent')).toEqual(['curl/8.5.0']);
      for (const h of ['keep-alive', 'te', 'upgrade', 'proxy-connection', 'trailer', 'transfer-encoding']) {
        expect(headerValues(copy, h), h).toEqual([]);
      }
    });

    const pathCases: [string, Record<string, unknown>, string, string | undefined, string][] = [
      ['no path, no args', {}, '/r/x', undefined, '/r/x'],
      ['no path, args', {}, '/r/x', 'a=1&b', '/r/x?a=1&b'],
      ['replace, no args', { path: '/m' }, '/r/x', undefined, '/m'],
      ['replace, args', { path: '/m/n', path_concat_mode: 'replace' }, '/r/x', 'k=v%26w', '/m/n?k=v%26w'],
      ['prefix, no args', { path: '/m', path_concat_mode: 'prefix' }, '/r/x', undefined, '/m/r/x'],
      ['prefix, args', { path: '/m', path_concat_mode: 'prefix' }, '/r/x', 'x=%20&x=2', '/m/r/x?x=%20&x=2'],
      ['decoded path is re-encoded', {}, '/a b/café', 'q', '/a%20b/caf%C3%A9?q'],
    ];
    for (const [name, conf, path, raw, want] of pathCases) {
      it(`builds the URI: ${name}`, async () => {
        const args = raw === undefined ? [] : raw.split('&').map((p) => ({ name: p.split('=')[0]!, value: p.split('=')[1] }));
        const { copy } = await mirrorOne(conf, { path, args, vars: raw === undefined ? {} : { args: raw } });
        expect(copy.url).toBe(want);
      });
    }

    const bodies: [string, Buffer][] = [
      ['0 B', Buffer.alloc(0)],
      ['1 B', Buffer.from([0xff])],
      ['1 MiB of every byte value', Buffer.from(Array.from({ length: 1024 * 1024 }, (_, i) => (i * 7 + 3) & 0xff))],
    ];
    for (const [name, body] of bodies) {
      it(`copies a POST body of ${name} byte-exact with a matching Content-Length`, async () => {
        const { outcome, copy } = await mirrorOne({}, {
          method: 'POST',
          headers: [{ name: 'host', value: 'h' }, { name: 'content-length', value: String(body.length) }, { name: 'content-type', value: 'application/octet-stream' }],
          body,
        });
        // An empty body is known from Content-Length: APISIX is not asked for it.
        expect(outcome.extraInfoAsked).toEqual(body.length === 0 ? [] : [{ kind: 'reqBody' }]);
        expect(copy.method).toBe('POST');
        expect(headerValues(copy, 'content-length')).toEqual([String(body.length)]);
        expect(copy.body.equals(body)).toBe(true);
      });
    }

    it('query "rebuilt" builds the copy\'s query from the call\'s args without an ExtraInfo round trip', async () => {
      const { outcome, copy } = await mirrorOne({ query: 'rebuilt' }, {
        method: 'GET',
        path: '/r',
        args: [{ name: 'flag' }, { name: 'a', value: '1' }, { name: 'a', value: '2' }, { name: 'q', value: 'hello world' }],
        headers: [{ name: 'host', value: 'h' }],
        vars: { args: 'must-not-be-read' },
      });
      expect(outcome.extraInfoAsked).toEqual([]);
      expect(copy.url).toBe('/r?flag&a=1&a=2&q=hello%20world');
    });

    it('never asks for a body above the cap: skipped, or sent without body when configured', async () => {
      const big = { method: 'PUT', headers: [{ name: 'host', value: 'h' }, { name: 'content-length', value: '1001' }], body: Buffer.alloc(1001, 1) };
      const skippedBefore = await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'body_too_large' });
      const o1 = expectOk(await mr.client.httpReqCall(mirrorRoute(key(), { host: target.url, max_body_size: 1000 }), call(big)));
      expect(o1.extraInfoAsked).toEqual([]);
      expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'body_too_large' })).toBe(skippedBefore + 1);

      const { outcome, copy } = await mirrorOne({ max_body_size: 1000, body_over_limit: 'send_without_body' }, big);
      expect(outcome.extraInfoAsked).toEqual([]);
      expect(copy.method).toBe('PUT');
      expect(headerValues(copy, 'content-length')).toEqual(['0']);
      expect(copy.body.length).toBe(0);
      expect(await mr.metric('apisix_runner_mirror_body_omitted_total', { target: target.url, reason: 'body_too_large' })).toBe(1);
    });

    it('skips a chunked body without asking APISIX for it', async () => {
      const before = await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'body_unknown_length' });
      const o = expectOk(await mr.client.httpReqCall(mirrorRoute(key(), { host: target.url }), call({
        method: 'POST', headers: [{ name: 'host', value: 'h' }, { name: 'transfer-encoding', value: 'chunked' }], body: 'abc',
      })));
      expect(o.extraInfoAsked).toEqual([]);
      expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'body_unknown_length' })).toBe(before + 1);
    });

    it('mirrors to several targets of one route with the body fetched once', async () => {
      const a0 = target.received.length;
      const b0 = other.received.length;
      const route = mirrorRoute(key(), { host: target.url, path: '/one' }, { host: other.url, path: '/two', path_concat_mode: 'prefix' });
      const o = expectOk(await mr.client.httpReqCall(route, call({
        method: 'POST', path: '/p', headers: [{ name: 'host', value: 'h' }, { name: 'content-length', value: '5' }], body: 'hello',
      })));
      expect(o.extraInfoAsked.filter((q) => q.kind === 'reqBody')).toHaveLength(1);
      const a = (await target.waitFor(a0 + 1))[a0]!;
      const b = (await other.waitFor(b0 + 1))[b0]!;
      expect([a.url, a.body.toString()]).toEqual(['/one', 'hello']);
      expect([b.url, b.body.toString()]).toEqual(['/two/p', 'hello']);
    });

    it('edits only the copy: set and remove headers', async () => {
      const { outcome, copy } = await mirrorOne({ headers: { set: { 'X-Env': 'shadow', host: 'mirror.internal' }, remove: ['Authorization', 'cookie'] } }, {
        headers: [{ name: 'host', value: 'h' }, { name: 'authorization', value: 'Bearer s3cret' }, { name: 'cookie', value: 'sid=1' }, { name: 'x-env', value: 'prod' }],
      });
      expect(outcome.kind).toBe('none');
      expect(headerValues(copy, 'authorization')).toEqual([]);
      expect(headerValues(copy, 'cookie')).toEqual([]);
      expect(headerValues(copy, 'x-env')).toEqual(['shadow']);
      expect(headerValues(copy, 'host')).toEqual(['mirror.internal']);
    });

    it('marks copies and never mirrors a request that carries the marker (loop guard)', async () => {
      const { copy } = await mirrorOne({ mark_header: 'X-Mirrored' }, {});
      expect(headerValues(copy, 'x-mirrored')).toEqual(['1']);
      const before = target.received.length;
      const o = expectOk(await mr.client.httpReqCall(mirrorRoute(key(), { host: target.url, mark_header: 'x-mirrored' }), call({
        headers: [{ name: 'host', value: 'h' }, { name: 'x-mirrored', value: '1' }],
      })));
      expect(o.kind).toBe('none');
      expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'loop' })).toBe(1);
      expect(target.received.length).toBe(before);
    });

    it('gives the real request and its copy the same correlation id, keeping the client one', async () => {
      const { outcome, copy } = await mirrorOne({ correlation_header: 'X-Request-Id' }, {});
      expect(outcome.kind).toBe('rewrite');
      const set = outcome.kind === 'rewrite' ? outcome.rewrite.headers ?? [] : [];
      const id = set.find((h) => h.name.toLowerCase() === 'x-request-id')?.value;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(headerValues(copy, 'x-request-id')).toEqual([id]);

      const kept = await mirrorOne({ correlation_header: 'x-request-id' }, { headers: [{ name: 'host', value: 'h' }, { name: 'x-request-id', value: 'client-42' }] });
      expect(kept.outcome.kind).toBe('none');
      expect(headerValues(kept.copy, 'x-request-id')).toEqual(['client-42']);
    });

    it('mirrors only the configured methods', async () => {
      const o = expectOk(await mr.client.httpReqCall(mirrorRoute(key(), { host: target.url, methods: ['POST'] }), call({ method: 'GET' })));
      expect(o.extraInfoAsked).toEqual([]);
      expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'method' })).toBe(1);
      const { copy } = await mirrorOne({ methods: ['POST'] }, { method: 'POST', headers: [{ name: 'host', value: 'h' }, { name: 'content-length', value: '0' }] });
      expect(copy.method).toBe('POST');
    });

    it('counts each copy sent and its status class', async () => {
      await waitUntil(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: target.url, outcome: 'sent' }))
        === (await mr.metric('apisix_runner_mirror_requests_total', { target: target.url, outcome: '2xx' })), 'all copies answered');
      expect(await mr.metric('apisix_runner_mirror_requests_total', { target: target.url, outcome: '2xx' })).toBe(target.received.length);
    });
  });

  describe('proxy-mirror: invalid conf fails open', () => {
    it('leaves the plugin out, keeps the route working and names the field', async () => {
      const badHosts = [
        [{ host: 'ftp://x' }, '/host'],
        [{ host: target.url, timeout: { connect: '5 seconds' } }, '/timeout/connect'],
        [{ host: target.url, sample_ratio: 0 }, '/sample_ratio'],
      ] as const;
      // Decisions about `target`: a copy started or queued-then-started (sent), skipped or dropped.
      // Counted when the copy is submitted, in the call's after-reply tasks.
      const decisions = async (): Promise<number> => (await Promise.all(['sent', 'skipped', 'dropped'].map((outcome) =>
        mr.metric('apisix_runner_mirror_requests_total', { target: target.url, outcome })))).reduce((a, b) => a + b, 0);
      for (const [i, [conf, field]] of badHosts.entries()) {
        const k = key();
        const before = target.received.length;
        const decidedBefore = await decisions();
        // A valid second entry still works: only the bad one is left out.
        const o = expectOk(await mr.client.httpReqCall(mirrorRoute(k, conf, { host: other.url, path: `/fail-open-${i}` }), call()));
        expect(o.kind).toBe('none');
        const line = mr.logs.find((l) => l['route'] === k && l['plugin'] === 'proxy-mirror');
        expect(line, JSON.stringify(conf)).toBeDefined();
        expect(line!['field']).toBe(field);
        expect(String(line!['msg'])).toContain(field);
        // The good entry's copy arrived, so this call's after-reply tasks have run: had the bad
        // entry stayed in the chain (it comes first), its copy would have been submitted before.
        await waitUntil(() => other.received.some((r) => r.url === `/fail-open-${i}`), `the good entry's copy for ${field}`);
        expect(await decisions()).toBe(decidedBefore);
        expect(target.received.length).toBe(before);
      }
    });
  });
});
