/**
 * README "Errors, and what APISIX does with them", row by row, over a real Unix socket: for
 * each kind of bad input, the runner's answer, its log line, what the APISIX-like client then
 * does, and that other connections carry on. The problem log's "at most one every 10 s" is
 * checked with the runner's injected clock, not with sleeps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { definePlugin, type Plugin } from '../../src/plugin-api/index.js';
import { createSayPlugin } from '../../src/plugins/say/index.js';
import { createProxyMirrorPlugin } from '../../src/plugins/proxy-mirror/index.js';
import { RawConnection } from '../harness/raw-connection.js';
import { RPC, encodeExtraInfoResp, encodeHttpReqCallReq } from '../harness/apisix-codec.js';
import { readReply } from '../harness/frames.js';
import { waitUntil } from '../harness/wait.js';
import { GET, runnerWithClient } from '../harness/test-runner.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const ERROR = 50;
const DEBUG = 20;

async function setup(extra: Plugin<unknown>[] = [], options: Parameters<typeof runnerWithClient>[0] = {}) {
  const clock = { t: 0 };
  const metrics = new Registry();
  const env = await runnerWithClient({
    plugins: (host) => [createSayPlugin(), createProxyMirrorPlugin(host), ...extra] as Plugin<unknown>[],
    now: () => clock.t,
    metrics,
    ...options,
  });
  cleanups.push(env.close);
  const rpcs = async (type: string, outcome: string): Promise<number> => {
    const m = await metrics.getSingleMetric('apisix_runner_rpc_total')?.get();
    return m?.values.find((v) => v.labels['type'] === type && v.labels['outcome'] === outcome)?.value ?? 0;
  };
  /** Log lines at `level` or above whose message matches. */
  const lines = (re: RegExp, level = DEBUG) => env.logs.filter((l) => Number(l['level']) >= level && re.test(String(l['msg'])));
  /** A call on the client's pooled connection: other connections are unaffected. */
  const stillServes = async (): Promise<void> => {
    expect((await env.client.httpReqCall(route('route#ok#ext-plugin-pre-req#1', ['say', '{"body":"ok"}']), GET)).kind).toBe('stop');
  };
  return { ...env, clock, rpcs, lines, stillServes };
}

function route(key: string, ...conf: Array<[string, string]>) {
  return { key, conf: conf.map(([name, value]) => ({ name, value })) };
}

const reqCall = (id: number, token: number, headers: Array<{ name: string; value: string }> = []) =>
  encodeHttpReqCallReq({ id, confToken: token, srcIp: new Uint8Array([10, 0, 0, 1]), method: 'GET', path: '/', args: [], headers });

describe('errors table, row by row, over a real Unix socket', () => {
  it('unknown conf token: Err CONF_TOKEN_NOT_FOUND, a debug line; APISIX re-prepares and retries', async () => {
    const env = await setup();
    const conn = await RawConnection.connect(env.socketPath);
    await conn.send(RPC.HTTP_REQ_CALL, reqCall(1, 123_456));
    expect(await readReply(conn)).toEqual({ type: 'error', code: 2 });
    const debug = env.lines(/unknown conf token/);
    expect(debug).toHaveLength(1);
    expect(debug[0]).toMatchObject({ level: DEBUG, token: 123_456 });
    // The client flushes its token, sends PrepareConf again and retries.
    const r = route('route#t#ext-plugin-pre-req#1', ['say', '{"body":"ok"}']);
    expect((await env.client.httpReqCall(r, GET)).kind).toBe('stop');
    env.runner.confs.clear();
    expect(await env.client.httpReqCall(r, GET)).toMatchObject({ kind: 'stop', tries: 2 });
    expect(env.client.stats.prepareConfSent).toBe(2);
    conn.close();
  });

  it('a conf entry naming an unknown plugin: a token, every call Err BAD_REQUEST (503), one error naming route and plugin', async () => {
    const env = await setup();
    const r = route('route#u#ext-plugin-pre-req#1', ['say', '{"body":"x"}'], ['no-such-plugin', '{}']);
    for (let i = 0; i < 3; i++) expect(await env.client.httpReqCall(r, GET)).toMatchObject({ kind: 'error', status: 503, errCode: 0, tries: 1 });
    expect(env.client.stats.prepareConfSent).toBe(1);
    const atPrepare = env.lines(/invalid conf for plugin "no-such-plugin" on route route#u#ext-plugin-pre-req#1/, ERROR);
    expect(atPrepare).toHaveLength(1);
    expect(atPrepare[0]).toMatchObject({ route: r.key, plugin: 'no-such-plugin', index: 1, policy: 'closed' });
    expect(String(atPrepare[0]!['msg'])).toMatch(/unknown plugin "no-such-plugin" \(known: say, proxy-mirror\)/);
    expect(await env.rpcs('http_req_call', 'invalid_conf')).toBe(3);
    await env.stillServes();
  });

  it('invalid conf for a fail-closed plugin: the PrepareConf error names the field; the per-call error is logged at most once every 10 s', async () => {
    const env = await setup();
    const r = route('route#c#ext-plugin-pre-req#1', ['say', '{"body":"x","status":99}']);
    const perCall = () => env.lines(/route route#c#ext-plugin-pre-req#1 has an invalid conf for plugin "say"/, ERROR);
    for (let i = 0; i < 5; i++) {
      env.clock.t = i * 2_000; // 0 .. 8 s: one interval
      expect(await env.client.httpReqCall(r, GET)).toMatchObject({ kind: 'error', errCode: 0 });
    }
    const atPrepare = env.lines(/invalid conf for plugin "say" on route route#c/, ERROR);
    expect(atPrepare).toHaveLength(1);
    expect(atPrepare[0]).toMatchObject({ field: '/status', plugin: 'say', route: r.key });
    expect(perCall()).toHaveLength(1);
    expect(perCall()[0]).toMatchObject({ suppressed: 0, plugin: 'say' });
    env.clock.t = 9_999;
    await env.client.httpReqCall(r, GET);
    expect(perCall()).toHaveLength(1);
    env.clock.t = 10_000; // 10 s after the first line: the next one says how many were held back
    await env.client.httpReqCall(r, GET);
    expect(perCall()).toHaveLength(2);
    expect(perCall()[1]).toMatchObject({ suppressed: 5 });
    // Still one PrepareConf error: the conf was compiled once.
    expect(env.lines(/invalid conf for plugin "say" on route route#c/, ERROR)).toHaveLength(1);
    await env.stillServes();
  });

  it('invalid conf for a fail-open plugin (proxy-mirror): a token, the plugin left out, one error naming route, plugin and field', async () => {
    const env = await setup();
    const r = route('route#m#ext-plugin-pre-req#1', ['proxy-mirror', '{"host":"ftp://x"}'], ['say', '{"body":"works"}']);
    for (let i = 0; i < 3; i++) expect(await env.client.httpReqCall(r, GET)).toMatchObject({ kind: 'stop', stop: { body: Buffer.from('works') } });
    const errors = env.lines(/invalid conf for plugin "proxy-mirror"/, ERROR);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ route: r.key, plugin: 'proxy-mirror', field: '/host', policy: 'open' });
    expect(String(errors[0]!['msg'])).toMatch(/left out of this route \(fail-open\)/);
  });

  it('a plugin throws: fail-closed → Err SERVICE_UNAVAILABLE; fail-open → skipped; an error line with the plugin\'s name', async () => {
    const closed = definePlugin<unknown>({ name: 'throws-closed', onRequest: () => { throw new Error('kaboom'); } });
    const open = definePlugin<unknown>({ name: 'rejects-open', failurePolicy: 'open', onRequest: async () => { throw new Error('kaboom'); } });
    const env = await setup([closed, open]);
    expect(await env.client.httpReqCall(route('route#tc#x#1', ['throws-closed', '{}']), GET)).toMatchObject({ kind: 'error', status: 503, errCode: 1 });
    expect(await env.client.httpReqCall(route('route#to#x#1', ['rejects-open', '{}'], ['say', '{"body":"on"}']), GET)).toMatchObject({ kind: 'stop' });
    expect(env.lines(/plugin "throws-closed" threw; answering APISIX with an error/, ERROR)).toMatchObject([{ plugin: 'throws-closed' }]);
    expect(env.lines(/plugin "rejects-open" threw; skipped it/, ERROR)).toMatchObject([{ plugin: 'rejects-open' }]);
    await env.stillServes();
  });

  it('malformed payload, unknown message type, ExtraInfo answer without a question: Err BAD_REQUEST, connection usable, errors rate-limited', async () => {
    const reader = definePlugin<unknown>({ name: 'header-reader', onRequest: (_c, req) => void req.header('host') });
    const env = await setup([reader]);
    const readerToken = await env.client.prepareConf('route#hr#x#1', [{ name: 'header-reader', value: '{}' }]);
    const conn = await RawConnection.connect(env.socketPath);
    const expectBadRequest = async (type: number, payload: Uint8Array): Promise<void> => {
      await conn.send(type, payload);
      expect(await readReply(conn)).toEqual({ type: 'error', code: 0 });
    };
    // A header entry whose table lies outside the payload: found only when the plugin reads headers.
    const lazyBad = Buffer.from(reqCall(3, readerToken, [{ name: 'host', value: 'h' }]));
    const root = lazyBad.readUInt32LE(0);
    const off = lazyBad.readUInt16LE(root - lazyBad.readInt32LE(root) + 4 + 2 * 5); // headers: field id 5
    const vec = root + off + lazyBad.readUInt32LE(root + off);
    lazyBad.writeInt32LE(-0x7fff0000, vec + 4 + lazyBad.readUInt32LE(vec + 4));

    const garbage = Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8]);
    for (let round = 0; round < 3; round++) {
      await expectBadRequest(RPC.HTTP_REQ_CALL, garbage);
      await expectBadRequest(RPC.HTTP_REQ_CALL, lazyBad);
      await expectBadRequest(9, Buffer.from('whatever'));
      await expectBadRequest(RPC.EXTRA_INFO, encodeExtraInfoResp('x'));
    }
    // The same connection still serves a good call.
    await conn.send(RPC.HTTP_REQ_CALL, reqCall(4, await env.client.prepareConf('route#s#x#1', [{ name: 'say', value: '{"body":"ok"}' }])));
    expect(await readReply(conn)).toMatchObject({ type: 'reqCall', id: 4, action: { kind: 'stop' } });
    // One line per kind within the interval (malformed HTTPReqCall, type 9, stray ExtraInfo).
    const malformed = () => env.lines(/answered BAD_REQUEST to a malformed payload/, ERROR);
    const badType = () => env.lines(/answered BAD_REQUEST to (unknown message type 9|an ExtraInfo answer with no question)/, ERROR);
    expect(malformed()).toHaveLength(1);
    expect(badType()).toHaveLength(2);
    env.clock.t = 10_000;
    await expectBadRequest(RPC.HTTP_REQ_CALL, garbage);
    expect(malformed()).toHaveLength(2);
    expect(malformed()[1]).toMatchObject({ suppressed: 5 });
    expect(await env.rpcs('http_req_call', 'bad_request')).toBe(7);
    conn.close();
    await env.stillServes();
  });

  it('a frame announcing more than the limit: Err BAD_REQUEST, then the connection is closed, an error line', async () => {
    const env = await setup([], { maxPayloadBytes: 1024 });
    const conn = await RawConnection.connect(env.socketPath);
    await conn.sendRaw(Buffer.from([2, 0, 0x04, 0x01])); // 1025 bytes announced
    expect(await readReply(conn)).toEqual({ type: 'error', code: 0 });
    await conn.closed;
    expect(env.lines(/closing connection: frame payload of 1025 bytes exceeds the limit of 1024 bytes/, ERROR)).toMatchObject([{ length: 1025, limit: 1024 }]);
    await env.stillServes();
  });

  it('connection closed mid-frame or mid-call: nothing is answered, the call\'s work is dropped, one debug line per such close, nothing above debug', async () => {
    let continued = 0;
    const varReader = definePlugin<unknown>({ name: 'var-reader', async onRequest(_c, req) { await req.var('a'); continued++; } });
    const env = await setup([varReader]);
    const token = await env.client.prepareConf('route#v#x#1', [{ name: 'var-reader', value: '{}' }]);
    const midFrame = await RawConnection.connect(env.socketPath);
    await midFrame.sendRaw(Buffer.from([2, 0, 1, 0, 1, 2, 3]));
    midFrame.close();
    const midCall = await RawConnection.connect(env.socketPath);
    await midCall.send(RPC.HTTP_REQ_CALL, reqCall(1, token));
    expect(await readReply(midCall)).toMatchObject({ type: 'extraInfo', question: { kind: 'var', name: 'a' } });
    midCall.close();
    await waitUntil(async () => (await env.rpcs('http_req_call', 'aborted')) === 1, 'the aborted call recorded');
    expect(continued).toBe(0);
    expect(env.logs.filter((l) => Number(l['level']) > DEBUG && l['msg'] !== 'runner listening')).toEqual([]);
    await waitUntil(() => env.runner.connectionCount() === 1, "only the client's pooled connection left");
    // The debug line says what was dropped: 7 bytes of a frame announcing 256, then a call waiting for its ExtraInfo answer.
    const dropped = env.lines(/^connection closed mid-frame or mid-call/).filter((l) => Number(l['level']) === DEBUG);
    expect(dropped.map((l) => [l['partialFrameBytes'], l['rpcInFlight'], l['queuedFrames']])).toEqual([[7, undefined, 0], [0, 'http_req_call', 0]]);
    // A clean close between calls (what APISIX does with idle connections) logs nothing.
    const clean = await RawConnection.connect(env.socketPath);
    await clean.send(RPC.HTTP_REQ_CALL, reqCall(2, token, []));
    expect(await readReply(clean)).toMatchObject({ type: 'extraInfo' });
    await clean.send(RPC.EXTRA_INFO, encodeExtraInfoResp(Buffer.from('A')));
    expect(await readReply(clean)).toMatchObject({ type: 'reqCall', id: 2 });
    clean.close();
    await waitUntil(() => env.runner.connectionCount() === 1, 'the cleanly closed connection gone');
    expect(env.lines(/^connection closed mid-frame or mid-call/)).toHaveLength(2);
    await env.stillServes();
  });

  it('no answer to an ExtraInfo question within --extra-info-timeout: the connection is closed, an error line', async () => {
    const varReader = definePlugin<unknown>({ name: 'var-reader', async onRequest(_c, req) { await req.var('a'); } });
    const env = await setup([varReader], { extraInfoTimeoutMs: 50 });
    const token = await env.client.prepareConf('route#w#x#1', [{ name: 'var-reader', value: '{}' }]);
    const conn = await RawConnection.connect(env.socketPath);
    await conn.send(RPC.HTTP_REQ_CALL, reqCall(1, token));
    expect(await readReply(conn)).toMatchObject({ type: 'extraInfo' });
    await conn.closed;
    expect(env.lines(/did not answer an ExtraInfo question in time; closing the connection/, ERROR)).toMatchObject([{ question: 'var', timeoutMs: 50 }]);
    await env.stillServes();
  });
});
