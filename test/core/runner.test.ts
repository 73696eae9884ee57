import { afterEach, describe, expect, it } from 'vitest';
import { lstatSync, writeFileSync, statSync, existsSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createConnection } from 'node:net';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ApisixClient } from '../harness/apisix-client.js';
import { definePlugin, type Plugin } from '../../src/plugin-api/index.js';
import { createSayPlugin } from '../../src/plugins/say/index.js';
import { createRewritePlugin } from '../../src/plugins/rewrite/index.js';
import { startRunner } from '../../src/runner.js';
import { RawConnection } from '../harness/raw-connection.js';
import { RPC, encodeExtraInfoResp, encodeHttpReqCallReq, encodePrepareConfReq, encodeHttpRespCallReq } from '../harness/apisix-codec.js';
import { GET, runnerWithClient } from '../harness/test-runner.js';
import { decodeFrame, readReply } from '../harness/frames.js';
import { encodeHttpReqCallResp } from '../../src/protocol/messages.js';
import { waitUntil } from '../harness/wait.js';
import { createTempDir } from '../harness/temp-dir.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function setup(extra: Plugin<unknown>[] = [], options: Parameters<typeof runnerWithClient>[0] = {}) {
  const env = await runnerWithClient({ plugins: () => [createSayPlugin(), createRewritePlugin(), ...extra] as Plugin<unknown>[], ...options });
  cleanups.push(env.close);
  return env;
}

const route = (key: string, ...conf: Array<[string, unknown]>) => ({
  key,
  conf: conf.map(([name, value]) => ({ name, value: typeof value === 'string' ? value : JSON.stringify(value) })),
});

describe('HTTPReqCall through a real socket', () => {
  it('say answers with a Stop carrying status, headers and body; PrepareConf is sent once per key', async () => {
    const { client } = await setup();
    const r = route('route#1#ext-plugin-pre-req#1', ['say', { body: 'hello', status: 418, headers: { 'x-a': '1' } }]);
    for (let i = 0; i < 3; i++) {
      const out = await client.httpReqCall(r, GET);
      expect(out.kind).toBe('stop');
      if (out.kind !== 'stop') return;
      expect(out.stop.status).toBe(418);
      expect(out.stop.body?.toString()).toBe('hello');
      expect(out.stop.headers).toEqual(expect.arrayContaining([{ name: 'x-a', value: '1' }, { name: 'x-resp-a6-runner', value: 'TypeScript' }]));
    }
    expect(client.stats.prepareConfSent).toBe(1);
  });

  it('say with an empty body lets the request go on (no action)', async () => {
    const { client } = await setup();
    const out = await client.httpReqCall(route('r2', ['say', { body: '' }]), GET);
    expect(out.kind).toBe('none');
  });

  it('echoes the call id in the reply', async () => {
    const { socketPath, client } = await setup();
    const token = await client.prepareConf('k', [{ name: 'say', value: '{"body":"x"}' }]);
    const conn = await RawConnection.connect(socketPath);
    // say's answer is encoded once and re-stamped: every call must still get its own id.
    for (const id of [0x7654321, 0, 0xffffffff, 42]) {
      await conn.send(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id, confToken: token, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/', args: [], headers: [] }));
      const reply = await readReply(conn, 2000);
      expect(reply).toMatchObject({ type: 'reqCall', id, action: { kind: 'stop', stop: { status: 200, body: Buffer.from('x') } } });
    }
    conn.close();
  });

  it('a call no plugin changed gets the no-action answer with its own id, byte for byte what the builder encodes', async () => {
    const { socketPath, client } = await setup();
    // say with an empty body edits nothing: the answer comes from the re-stamped template.
    const token = await client.prepareConf('k-none', [{ name: 'say', value: '{"body":""}' }]);
    const conn = await RawConnection.connect(socketPath);
    const ids = [0x7654321, 0, 0xffffffff, 42, 0x80000000];
    for (const id of ids) {
      await conn.send(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id, confToken: token, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/', args: [], headers: [] }));
      const frame = await conn.readFrame(2000);
      expect(decodeFrame(frame)).toMatchObject({ type: 'reqCall', id, action: { kind: 'none' } });
      expect(frame.payload).toEqual(encodeHttpReqCallResp(id, { type: 'none' }).subarray(4));
    }
    conn.close();
  });

  it('rewrite merges path, header set/delete, multi-value and deleted args, body and response headers into one Rewrite', async () => {
    const { client } = await setup();
    const conf = {
      path: '/a b',
      headers: { set: { 'x-set': 'v' }, remove: ['x-drop'] },
      args: { set: { multi: ['1', '2'] }, remove: ['gone'] },
      body: 'new body',
      response_headers: { 'x-resp': 'r' },
    };
    const out = await client.httpReqCall(route('r3', ['rewrite', conf]), GET);
    expect(out.kind).toBe('rewrite');
    if (out.kind !== 'rewrite') return;
    expect(out.rewrite.path).toBe('/a b');
    expect(out.rewrite.headers).toEqual(expect.arrayContaining([{ name: 'x-set', value: 'v' }, { name: 'x-drop' }]));
    expect(out.rewrite.args).toEqual([{ name: 'multi', value: '1' }, { name: 'multi', value: '2' }, { name: 'gone' }]);
    expect(out.rewrite.body?.toString()).toBe('new body');
    expect(out.rewrite.respHeaders).toEqual([{ name: 'x-resp', value: 'r' }]);
  });

  it('rewrite resolves $var in header values through ExtraInfo, each var asked once', async () => {
    const { client } = await setup();
    const conf = { headers: { set: { 'x-client': '$remote_addr:$server_port', 'x-again': '${remote_addr}' } } };
    const out = await client.httpReqCall(route('r4', ['rewrite', conf]), { ...GET, vars: { remote_addr: '10.0.0.1', server_port: 9080 } });
    expect(out.kind).toBe('rewrite');
    if (out.kind !== 'rewrite') return;
    expect(out.rewrite.headers).toEqual(expect.arrayContaining([{ name: 'x-client', value: '10.0.0.1:9080' }, { name: 'x-again', value: '10.0.0.1' }]));
    expect(out.extraInfoAsked).toEqual([{ kind: 'var', name: 'remote_addr' }, { kind: 'var', name: 'server_port' }]);
  });

  it('a plugin reads headers, args, source IP, vars and the body; later plugins see earlier edits', async () => {
    const seen: Record<string, unknown> = {};
    const reader = definePlugin<unknown>({
      name: 'reader',
      async onRequest(_c, req) {
        const [uri, body, missing] = await Promise.all([req.var('request_uri'), req.body(), req.var('nope')]);
        Object.assign(seen, {
          method: req.method,
          path: req.path,
          srcIp: req.srcIp,
          host: req.header('HOST'),
          cookies: req.headerValues('cookie'),
          flag: req.arg('flag'),
          a: req.argValues('a'),
          uri,
          body: body?.toString(),
          missing,
          edited: req.header('x-set'),
        });
      },
    });
    const { client } = await setup([reader]);
    const out = await client.httpReqCall(route('r5', ['rewrite', { headers: { set: { 'x-set': 'yes' } } }], ['reader', {}]), {
      method: 'POST',
      path: '/p',
      args: [{ name: 'flag' }, { name: 'a', value: '1' }, { name: 'a', value: '2' }],
      headers: [{ name: 'host', value: 'h' }, { name: 'cookie', value: 'c1' }, { name: 'cookie', value: 'c2' }],
      srcIp: '2001:db8::1',
      vars: { request_uri: '/p?flag&a=1&a=2' },
      body: 'payload',
    });
    expect(out.kind).toBe('rewrite');
    expect(seen).toEqual({
      method: 'POST', path: '/p', srcIp: '2001:db8::1', host: 'h', cookies: ['c1', 'c2'], flag: '', a: ['1', '2'],
      uri: '/p?flag&a=1&a=2', body: 'payload', missing: undefined, edited: 'yes',
    });
    // Three questions, answered one at a time, in the order asked.
    expect(out.extraInfoAsked).toEqual([{ kind: 'var', name: 'request_uri' }, { kind: 'reqBody' }, { kind: 'var', name: 'nope' }]);
  });

  it('the first Stop wins and later plugins are not run', async () => {
    let ran = false;
    const after = definePlugin<unknown>({ name: 'after', onRequest: () => void (ran = true) });
    const { client } = await setup([after]);
    const out = await client.httpReqCall(route('r6', ['say', { body: 'stop' }], ['after', {}]), GET);
    expect(out.kind).toBe('stop');
    expect(ran).toBe(false);
  });
});

describe('HTTPRespCall', () => {
  it('post-resp plugins read status, headers and the upstream body and change them', async () => {
    const changer = definePlugin<unknown>({
      name: 'changer',
      async onResponse(_c, res) {
        const body = await res.body();
        res.setStatus(res.upstreamStatus + 1);
        res.setHeader('x-len', String(body?.length ?? -1));
        res.deleteHeader('server');
        res.setBody(`wrapped(${body?.toString()}) ${res.header('content-type')}`);
      },
    });
    const { client } = await setup([changer]);
    const out = await client.httpRespCall(route('p1', ['changer', {}]), {
      status: 200,
      headers: [{ name: 'Content-Type', value: 'text/plain' }, { name: 'Server', value: 'up' }],
      respBody: 'abc',
    });
    expect(out).toMatchObject({ kind: 'respCall', status: 201 });
    if (out.kind !== 'respCall') return;
    // The whole set goes back (APISIX replaces the response's headers with a non-empty list):
    // upstream headers kept, edits applied, content-length of the new body, deletions as valueless entries.
    expect(out.headers).toEqual([{ name: 'Content-Type', value: 'text/plain' }, { name: 'x-len', value: '3' }, { name: 'content-length', value: '23' }, { name: 'server' }]);
    expect(out.body?.toString()).toBe('wrapped(abc) text/plain');
    expect(out.extraInfoAsked).toEqual([{ kind: 'respBody' }]);
  });

  it('a route without response plugins keeps the upstream response (status 0, nothing replaced)', async () => {
    const { client } = await setup();
    const out = await client.httpRespCall(route('p2', ['say', { body: '' }]), { status: 404, headers: [] });
    expect(out).toMatchObject({ kind: 'respCall', status: 0 });
    if (out.kind === 'respCall') expect(out.body).toBeUndefined();
  });
});

describe('errors', () => {
  it('an unknown conf token gets CONF_TOKEN_NOT_FOUND; the client re-prepares and succeeds', async () => {
    const { client, runner, logs } = await setup();
    const r = route('t1', ['say', { body: 'ok' }]);
    expect((await client.httpReqCall(r, GET)).kind).toBe('stop');
    runner.confs.clear(); // what a runner restart or expiry does
    const out = await client.httpReqCall(r, GET);
    expect(out).toMatchObject({ kind: 'stop', tries: 2 });
    expect(client.stats.prepareConfSent).toBe(2);
    expect(logs.some((l) => l['msg'] === 'unknown conf token; APISIX will prepare the conf again')).toBe(true);
  });

  it('a fail-closed plugin with an invalid conf answers BAD_REQUEST for the route and logs the field once', async () => {
    const { client, logs } = await setup();
    const r = route('route#9#ext-plugin-pre-req#3', ['say', { body: 'x', status: 99 }]);
    for (let i = 0; i < 3; i++) {
      const out = await client.httpReqCall(r, GET);
      expect(out).toMatchObject({ kind: 'error', status: 503, errCode: 0 });
    }
    const errors = logs.filter((l) => String(l['msg']).startsWith('invalid conf for plugin "say" on route route#9#ext-plugin-pre-req#3'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ field: '/status', plugin: 'say', route: 'route#9#ext-plugin-pre-req#3' });
    expect(String(errors[0]!['msg'])).toMatch(/must be >= 200/);
  });

  it('a fail-open plugin with an invalid conf is left out and the rest of the chain runs', async () => {
    const open = definePlugin<unknown>({ name: 'observer', failurePolicy: 'open', confSchema: { type: 'object', required: ['must'] }, onRequest: () => undefined });
    const { client, logs } = await setup([open]);
    const out = await client.httpReqCall(route('o1', ['observer', {}], ['say', { body: 'still works' }]), GET);
    expect(out.kind).toBe('stop');
    expect(logs.some((l) => l['plugin'] === 'observer' && l['field'] === '/must' && /fail-open/.test(String(l['msg'])))).toBe(true);
  });

  it('a plugin that throws: fail-closed → SERVICE_UNAVAILABLE, fail-open → skipped; the runner keeps serving', async () => {
    const boom = definePlugin<unknown>({ name: 'boom', onRequest: () => { throw new Error('kaboom'); } });
    const boomOpen = definePlugin<unknown>({ name: 'boom-open', failurePolicy: 'open', onRequest: async () => { throw new Error('kaboom'); } });
    const { client, logs } = await setup([boom, boomOpen]);
    expect(await client.httpReqCall(route('b1', ['boom', {}]), GET)).toMatchObject({ kind: 'error', errCode: 1 });
    expect(await client.httpReqCall(route('b2', ['boom-open', {}], ['say', { body: 'ok' }]), GET)).toMatchObject({ kind: 'stop' });
    expect(logs.filter((l) => l['plugin'] === 'boom' && l['level'] === 50)).toHaveLength(1);
    expect(await client.httpReqCall(route('b3', ['say', { body: 'ok' }]), GET)).toMatchObject({ kind: 'stop' });
  });

  it('unknown message type, garbage payload and a stray ExtraInfo answer get BAD_REQUEST on a connection that stays usable', async () => {
    const { socketPath, client } = await setup();
    const token = await client.prepareConf('g', [{ name: 'say', value: '{"body":"fine"}' }]);
    const conn = await RawConnection.connect(socketPath);
    const read = () => readReply(conn, 2000);
    await conn.send(9, Buffer.from('whatever'));
    expect(await read()).toEqual({ type: 'error', code: 0 });
    await conn.send(RPC.HTTP_REQ_CALL, Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8]));
    expect(await read()).toEqual({ type: 'error', code: 0 });
    await conn.send(RPC.HTTP_REQ_CALL, Buffer.alloc(0));
    expect(await read()).toEqual({ type: 'error', code: 0 });
    await conn.send(RPC.EXTRA_INFO, encodeExtraInfoResp('x'));
    expect(await read()).toEqual({ type: 'error', code: 0 });
    await conn.send(RPC.PREPARE_CONF, Buffer.from([8, 0, 0, 0, 250, 255, 255, 255, 0, 0, 0, 0]));
    expect(await read()).toEqual({ type: 'error', code: 0 });
    await conn.send(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id: 5, confToken: token, srcIp: new Uint8Array([1, 1, 1, 1]), method: 'GET', path: '/', args: [], headers: [] }));
    expect(await read()).toMatchObject({ type: 'reqCall', id: 5, action: { kind: 'stop' } });
    conn.close();
  });

  it('a malformed header entry is answered BAD_REQUEST when a plugin reads the headers, and costs nothing when none does', async () => {
    const reader = definePlugin<unknown>({ name: 'header-reader', failurePolicy: 'open', onRequest: (_c, req) => void req.header('host') });
    const { socketPath, client } = await setup([reader]);
    const readerToken = await client.prepareConf('hr', [{ name: 'header-reader', value: '{}' }]);
    const sayToken = await client.prepareConf('sy', [{ name: 'say', value: '{"body":"ok"}' }]);
    const corrupt = (token: number): Buffer => {
      const p = Buffer.from(encodeHttpReqCallReq({ id: 9, confToken: token, srcIp: new Uint8Array([1, 1, 1, 1]), method: 'GET', path: '/', args: [], headers: [{ name: 'host', value: 'h' }] }));
      const root = p.readUInt32LE(0);
      const vtable = root - p.readInt32LE(root);
      const off = p.readUInt16LE(vtable + 4 + 2 * 5); // headers: field id 5
      const vec = root + off + p.readUInt32LE(root + off);
      const entry = vec + 4 + p.readUInt32LE(vec + 4);
      p.writeInt32LE(-0x7fff0000, entry); // its vtable now lies far outside the payload
      return p;
    };
    const conn = await RawConnection.connect(socketPath);
    const read = () => readReply(conn, 2000);
    // Even a fail-open plugin cannot swallow it: the payload, not the plugin, is at fault.
    await conn.send(RPC.HTTP_REQ_CALL, corrupt(readerToken));
    expect(await read()).toEqual({ type: 'error', code: 0 });
    await conn.send(RPC.HTTP_REQ_CALL, corrupt(sayToken));
    expect(await read()).toMatchObject({ type: 'reqCall', id: 9, action: { kind: 'stop' } });
    conn.close();
  });

  it('a frame announcing more than the limit gets BAD_REQUEST and the connection is closed; others are unaffected', async () => {
    const { socketPath, client } = await setup([], { maxPayloadBytes: 1024 });
    const conn = await RawConnection.connect(socketPath);
    await conn.sendRaw(Buffer.from([2, 0, 0x10, 0]));
    const frame = await conn.readFrame(2000);
    expect(decodeFrame(frame)).toEqual({ type: 'error', code: 0 });
    await conn.closed;
    expect((await client.httpReqCall(route('after', ['say', { body: 'ok' }]), GET)).kind).toBe('stop');
  });

  it('a peer that keeps its side open after the oversize answer is disconnected anyway', async () => {
    const { socketPath, runner } = await setup([], { maxPayloadBytes: 1024 });
    const sock = createConnection({ path: socketPath, allowHalfOpen: true });
    const got: Buffer[] = [];
    sock.on('data', (d: Buffer) => got.push(d));
    sock.on('error', () => undefined);
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.write(Buffer.from([2, 0, 0x10, 0]));
    // We never end our side: the runner's end() alone would leave its socket half-open.
    await new Promise<void>((resolve) => sock.once('end', () => resolve()));
    expect(Buffer.concat(got)[0]).toBe(0);
    await waitUntil(() => runner.connectionCount() === 0, 'the runner drops the half-open connection');
    expect(runner.connectionCount()).toBe(0);
    sock.destroy();
  });

  it('a truncated frame followed by a close, and a close mid-ExtraInfo, cost the runner nothing', async () => {
    const varReader = definePlugin<unknown>({ name: 'var-reader', async onRequest(_c, req) { req.setHeader('x', (await req.var('a')) ?? ''); } });
    const { socketPath, client, runner } = await setup([varReader]);
    const c1 = await RawConnection.connect(socketPath);
    await c1.sendRaw(Buffer.from([2, 0, 1, 0, 1, 2, 3]));
    c1.close();
    const token = await client.prepareConf('v', [{ name: 'var-reader', value: '{}' }]);
    const c2 = await RawConnection.connect(socketPath);
    await c2.send(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id: 1, confToken: token, srcIp: new Uint8Array([1, 1, 1, 1]), method: 'GET', path: '/', args: [], headers: [] }));
    const q = await c2.readFrame(2000);
    expect(decodeFrame(q)).toMatchObject({ type: 'extraInfo', question: { kind: 'var', name: 'a' } });
    c2.close();
    await c2.closed;
    const out = await client.httpReqCall({ key: 'v', conf: [{ name: 'var-reader', value: '{}' }] }, { ...GET, vars: { a: 'A' } });
    expect(out).toMatchObject({ kind: 'rewrite', rewrite: { headers: [{ name: 'x', value: 'A' }] } });
    // Only the client's pooled connection remains.
    await waitUntil(() => runner.connectionCount() <= 1, 'the two broken connections are gone');
    expect(runner.connectionCount()).toBe(1);
  });

  it('an ExtraInfo question APISIX never answers makes the runner close that connection after the timeout', async () => {
    const varReader = definePlugin<unknown>({ name: 'var-reader', async onRequest(_c, req) { await req.var('a'); } });
    const { socketPath, client, logs } = await setup([varReader], { extraInfoTimeoutMs: 100 });
    const token = await client.prepareConf('v', [{ name: 'var-reader', value: '{}' }]);
    const conn = await RawConnection.connect(socketPath);
    await conn.send(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ id: 1, confToken: token, srcIp: new Uint8Array([1, 1, 1, 1]), method: 'GET', path: '/', args: [], headers: [] }));
    await conn.readFrame(2000); // the question, left unanswered
    await conn.closed;
    expect(logs.some((l) => /did not answer an ExtraInfo question in time/.test(String(l['msg'])))).toBe(true);
    expect((await client.httpReqCall({ key: 's', conf: [{ name: 'say', value: '{"body":"ok"}' }] }, GET)).kind).toBe('stop');
  });

  it('PrepareConf of a route without conf gets a token whose calls do nothing', async () => {
    const { socketPath } = await setup();
    const conn = await RawConnection.connect(socketPath);
    await conn.send(RPC.PREPARE_CONF, encodePrepareConfReq({ key: 'empty' }));
    const prepared = await readReply(conn, 2000);
    expect(prepared.type).toBe('prepareConf');
    if (prepared.type !== 'prepareConf') return;
    await conn.send(RPC.HTTP_RESP_CALL, encodeHttpRespCallReq({ id: 3, status: 200, headers: [], confToken: prepared.confToken }));
    expect(await readReply(conn, 2000)).toMatchObject({ type: 'respCall', id: 3, status: 0 });
    conn.close();
  });
});

describe('socket file', () => {
  it('removes a stale socket, opens the new one to other users (0766), and removes it on close', async () => {
    const dir = createTempDir();
    cleanups.push(async () => dir.remove());
    const socketPath = dir.file('s.sock');
    // A process that listened and died without cleaning up leaves a stale socket file.
    execFileSync(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => process.exit(0))", socketPath]);
    expect(lstatSync(socketPath).isSocket()).toBe(true);
    const runner = await startRunner({ socketPath, plugins: () => [createSayPlugin()] as Plugin<unknown>[], logger: pino({ level: 'silent' }) });
    expect(statSync(socketPath).mode & 0o777).toBe(0o766);
    const client = new ApisixClient({ socketPath });
    expect((await client.httpReqCall({ key: 'k', conf: [{ name: 'say', value: '{"body":"up"}' }] }, GET)).kind).toBe('stop');
    await client.close();
    await runner.close();
    expect(existsSync(socketPath)).toBe(false);
  });

  it('refuses to delete a regular file or a directory at the socket path', async () => {
    const dir = createTempDir();
    cleanups.push(async () => dir.remove());
    const file = dir.file('file.sock');
    writeFileSync(file, 'precious');
    await expect(startRunner({ socketPath: file, plugins: () => [] })).rejects.toThrow(/refusing to listen on .*not a socket/);
    expect(existsSync(file)).toBe(true);
    const sub = dir.file('dir.sock');
    mkdirSync(sub);
    await expect(startRunner({ socketPath: sub, plugins: () => [] })).rejects.toThrow(/is a directory/);
  });
});

describe('promises of the docs with no other test', () => {
  it('nothing is logged per request at info (README --log-level): only the start line for 30 calls of three kinds', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const varReader = definePlugin<unknown>({ name: 'var-reader', async onRequest(_c, req) { req.setHeader('x', (await req.var('a')) ?? ''); } });
    const { client } = await setup([varReader], { logger });
    const before = lines.length;
    for (let i = 0; i < 10; i++) {
      expect((await client.httpReqCall(route('s', ['say', { body: 'hi' }]), GET)).kind).toBe('stop');
      expect((await client.httpReqCall(route('r', ['rewrite', { path: '/new' }]), GET)).kind).toBe('rewrite');
      expect((await client.httpReqCall(route('v', ['var-reader', {}]), { ...GET, vars: { a: 'A' } })).kind).toBe('rewrite');
    }
    expect(lines.slice(before)).toEqual([]);
  });

  it('an empty conf value is taken as {} (plugin-authoring.md: confSchema)', async () => {
    const { client } = await setup();
    // rewrite with {} edits nothing: a token, and calls go on unchanged.
    expect(await client.httpReqCall({ key: 'empty-value', conf: [{ name: 'rewrite', value: '' }] }, GET)).toMatchObject({ kind: 'none' });
  });

  it('a conf evicted from the cache is handed to its plugin\'s releaseConf (plugin-authoring.md: the plugin object)', async () => {
    const released: unknown[] = [];
    const holder = definePlugin<{ n: number }>({ name: 'holder', releaseConf(conf) { released.push(conf); }, onRequest() {} });
    const { client } = await setup([holder], { maxConfs: 1 });
    await client.prepareConf('first', [{ name: 'holder', value: '{"n":1}' }]);
    expect(released).toEqual([]);
    await client.prepareConf('second', [{ name: 'holder', value: '{"n":2}' }]);
    expect(released).toEqual([{ n: 1 }]);
  });
});

describe('metrics', () => {
  it('apisix_runner_connections counts the connections APISIX holds open, and drops when they close (README Metrics)', async () => {
    const metrics = new Registry();
    const { socketPath, client, runner } = await setup([], { metrics });
    const connections = async (): Promise<number> => (await metrics.getSingleMetric('apisix_runner_connections')?.get())?.values[0]?.value ?? -1;
    expect((await client.httpReqCall(route('s', ['say', { body: 'hi' }]), GET)).kind).toBe('stop');
    const a = await RawConnection.connect(socketPath);
    const b = await RawConnection.connect(socketPath);
    await waitUntil(() => runner.connectionCount() === 3, 'three connections accepted');
    expect(await connections()).toBe(3);
    a.close();
    b.close();
    await waitUntil(() => runner.connectionCount() === 1, 'two connections closed');
    expect(await connections()).toBe(1);
  });
});
