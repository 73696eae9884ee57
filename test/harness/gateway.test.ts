/**
 * The gateway emulator checked against APISIX's recorded behaviour:
 * - for the client request each recorded HTTPReqCall stands for, it must send the runner the
 *   same logical message (read with the runner's own decoder);
 * - given each recorded runner answer (sent byte for byte), it must do to the client and the
 *   upstream what the vector's `apisix_effect` says APISIX does.
 * A scripted fake runner is used here because these checks need to see and choose the exact
 * frames; the emulator against the real runner is covered by test/e2e/peer.test.ts.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { connect } from 'node:net';
import { request } from 'undici';
import { ErrCode, decodeExtraInfoResp, decodeHttpReqCall, encodeError, encodeExtraInfoReq, encodeHttpReqCallResp, encodeHttpRespCallResp, encodePrepareConfResp, type ExtraInfoQuestion } from '../../src/protocol/messages.js';
import { RPC, ipToBytes, storedFields } from './apisix-codec.js';
import { GatewayEmulator, type GatewayRoute } from './gateway.js';
import { startFakeRunner, type FakeRunner } from './fake-runner.js';
import { createTempDir } from './temp-dir.js';
import { Recorder } from './http-recorder.js';
import { loadVectors, type JsonEntry } from './conformance-vectors.js';
import { normalizedUri, parseArgs, uriSafeEncode, encodeArgs } from './nginx-uri.js';
import { nginxWire } from './nginx-response.js';
import { waitUntil } from './wait.js';

/** The gateway's upstream: the suite's recorder, answering like a plain upstream with two cookies. */
function startUpstream(): Promise<Recorder> {
  return new Recorder('upstream', {
    answer: (_rec, res) => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-upstream', 'yes');
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.end('{"from":"upstream"}');
    },
  }).start();
}

/** Sends raw request bytes and resolves with the raw response head once it arrives. */
function sendRaw(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let got = '';
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) { sock.destroy(); resolve(got); }
    });
    sock.on('error', reject);
    sock.on('close', () => resolve(got));
    sock.write(raw);
  });
}

/** Entries grouped by name (order of distinct names is Lua table order in APISIX: unspecified). */
function byName(entries: readonly { name: string; value?: string | undefined }[]): [string, (string | null)[]][] {
  const m = new Map<string, (string | null)[]>();
  for (const e of entries) {
    const list = m.get(e.name) ?? [];
    list.push(e.value === undefined ? null : e.value);
    m.set(e.name, list);
  }
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

const vectors = loadVectors();
const reqCallVectors = vectors.filter((v) => v.json.direction === 'apisix_to_runner' && v.json.message === 'A6.HTTPReqCall.Req');
const dirs = createTempDir();
let upstream: Recorder;

beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(async () => {
  await upstream.close();
  dirs.remove();
});

describe('nginx URI helpers', () => {
  it('normalise, parse, encode and escape like nginx / ngx_lua', () => {
    expect(normalizedUri('/caf%C3%A9/a%20b/%7Euser')).toBe('/café/a b/~user');
    expect(normalizedUri('//a/./b/../c')).toBe('/a/c');
    expect([...parseArgs('flag&a=1&a=2&y=&q=hello%20world&p=a+b')]).toEqual([
      ['flag', [true]], ['a', ['1', '2']], ['y', ['']], ['q', ['hello world']], ['p', ['a b']],
    ]);
    expect(encodeArgs(parseArgs('flag&a=1&a=2&y='))).toBe('flag&a=1&a=2&y=');
    expect(uriSafeEncode('/new path/ü')).toBe('/new%20path/%C3%BC');
    expect(uriSafeEncode('/a%20b')).toBe('/a%2520b');
    expect(uriSafeEncode('/x"<>\\^`{|}#?')).toBe('/x%22%3C%3E%5C%5E%60%7B%7C%7D%23%3F');
  });
});

describe.each(reqCallVectors.map((v) => [v.json.name, v] as const))('emulator builds HTTPReqCall like APISIX: %s', (name, v) => {
  it('sends the same logical message for the recorded client request', async () => {
    const ctx = v.json.context as { plugin: string; client_request: string; generate_id: { worker_id: number; count: number } };
    const content = v.json.content as { id: number; conf_token: number; method: number; path: string; args: JsonEntry[]; headers: JsonEntry[] };
    const postReq = ctx.plugin === 'ext-plugin-post-req';
    const captured: Buffer[] = [];
    let calls = 0;
    const fake: FakeRunner = await startFakeRunner(dirs.file(`${name.slice(-12)}.sock`), (type, payload, reply) => {
      if (type === RPC.PREPARE_CONF) return reply.raw(encodePrepareConfResp(content.conf_token));
      if (type !== RPC.HTTP_REQ_CALL) return;
      calls++;
      if (postReq && calls === 1) {
        // Stands in for the route's proxy-rewrite, which runs before ext-plugin-post-req.
        return reply.raw(encodeHttpReqCallResp(0, {
          type: 'rewrite',
          rewrite: { path: '/v2/café/a b', headers: [{ name: 'host', value: 'backend.internal:8080' }], args: [{ name: 'x', value: '1' }, { name: 'x', value: '2' }], respHeaders: [] },
        }));
      }
      captured.push(payload);
      reply.raw(encodeHttpReqCallResp(decodeHttpReqCall(payload).id, { type: 'none' }));
    });
    const route: GatewayRoute = {
      id: '1',
      uri: '/',
      upstream: upstream.url,
      plugins: postReq
        ? { 'ext-plugin-pre-req': { conf: [{ name: 'stand-in', value: '{}' }] }, 'ext-plugin-post-req': { conf: [{ name: 'x', value: '{}' }] } }
        : { 'ext-plugin-pre-req': { conf: [{ name: 'x', value: '{}' }] } },
    };
    const gw = await GatewayEmulator.start({
      socketPath: fake.socketPath,
      routes: [route],
      workerId: ctx.generate_id.worker_id,
      initialCounter: ctx.generate_id.count - (postReq ? 1 : 0),
    });
    try {
      const port = Number(new URL(gw.url).port);
      await sendRaw(port, ctx.client_request);
      await waitUntil(() => captured.length === 1, 'one call captured');
      const payload = captured[0]!;
      const m = decodeHttpReqCall(payload);
      expect(m.id).toBe(content.id);
      expect(m.confToken).toBe(content.conf_token);
      expect(m.methodCode).toBe(content.method);
      expect(m.path).toBe(content.path);
      expect(byName(m.args)).toEqual(byName(content.args));
      expect(byName(m.headers)).toEqual(byName(content.headers));
      // Our client connects from 127.0.0.1: src_ip must be that address's $binary_remote_addr.
      expect(Buffer.from(m.srcIpBytes!).toString('hex')).toBe(Buffer.from(ipToBytes('127.0.0.1')).toString('hex'));
      expect(storedFields(payload, ['id', 'src_ip', 'method', 'path', 'args', 'headers', 'conf_token'])).toEqual(v.json.root_table.fields_present);
    } finally {
      await gw.close();
      await fake.close();
    }
  });
});

describe('emulator applies recorded runner answers like APISIX (apisix_effect)', () => {
  const frameOf = (name: string): Buffer => vectors.find((x) => x.json.name === name)!.frame;

  async function withAnswer(reqCallAnswer: Buffer | undefined, respCallAnswer: Buffer | undefined, run: (gw: GatewayEmulator) => Promise<void>): Promise<void> {
    const fake = await startFakeRunner(dirs.file('eff.sock'), (type, _p, reply) => {
      if (type === RPC.PREPARE_CONF) reply.raw(encodePrepareConfResp(1));
      else if (type === RPC.HTTP_REQ_CALL && reqCallAnswer) reply.raw(reqCallAnswer);
      else if (type === RPC.HTTP_RESP_CALL && respCallAnswer) reply.raw(respCallAnswer);
    });
    const plugins: GatewayRoute['plugins'] = {};
    if (reqCallAnswer) plugins['ext-plugin-pre-req'] = { conf: [{ name: 'x', value: '{}' }] };
    if (respCallAnswer) plugins['ext-plugin-post-resp'] = { conf: [{ name: 'x', value: '{}' }] };
    const gw = await GatewayEmulator.start({ socketPath: fake.socketPath, routes: [{ id: '9', uri: '/', upstream: upstream.url, plugins }] });
    try {
      await run(gw);
    } finally {
      await gw.close();
      await fake.close();
    }
  }

  it('Stop: status, set/add headers, body', async () => {
    await withAnswer(frameOf('runner_http_req_call_resp_stop'), undefined, async (gw) => {
      const before = upstream.received.length;
      const res = await request(`${gw.url}/x`);
      expect(res.statusCode).toBe(405);
      expect(res.headers['x-resp']).toBe('foo');
      expect(res.headers['x-same']).toEqual(['one', 'two']);
      expect(await res.body.text()).toBe('cat');
      expect(upstream.received.length).toBe(before);
    });
  });

  it('Stop with nothing: 200 and no body', async () => {
    await withAnswer(frameOf('runner_http_req_call_resp_stop_default_status'), undefined, async (gw) => {
      const res = await request(`${gw.url}/x`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('');
    });
  });

  it('Rewrite with every field', async () => {
    await withAnswer(frameOf('runner_http_req_call_resp_rewrite_all'), undefined, async (gw) => {
      const before = upstream.received.length;
      const res = await request(`${gw.url}/orig?a=0&d=1&keep=1`, { method: 'POST', headers: { 'x-delete': 'gone', 'x-change': 'foo' }, body: 'old body' });
      await res.body.text();
      const seen = upstream.received[before]!;
      const [path, query] = seen.url.split('?') as [string, string];
      expect(path).toBe('/new%20path/%C3%BC');
      expect([...parseArgs(query)]).toEqual([['a', ['foo', 'bar']], ['keep', ['1']], ['e', ['']]]);
      expect(seen.header('x-delete')).toBeUndefined();
      expect(seen.header('x-change')).toBe('bar');
      expect(seen.header('host')).toBe('new.example:8080');
      expect(seen.text).toBe('new body\n');
      expect(res.headers['x-resp']).toEqual(['1', '2']);
      expect(res.headers['content-type']).toBe('application/json');
    });
  });

  it('Rewrite of a percent-encoded path is escaped again', async () => {
    await withAnswer(frameOf('runner_http_req_call_resp_rewrite_path_only'), undefined, async (gw) => {
      const before = upstream.received.length;
      await (await request(`${gw.url}/orig?q=1`)).body.text();
      expect(upstream.received[before]!.url).toBe('/a%2520b?q=1');
    });
  });

  it('no action: the request goes on unchanged', async () => {
    await withAnswer(frameOf('runner_http_req_call_resp_no_action'), undefined, async (gw) => {
      const before = upstream.received.length;
      const res = await request(`${gw.url}/same/path?flag&a=1&a=2`, { headers: { 'x-multi': ['v1', 'v2'] } });
      expect(await res.body.text()).toBe('{"from":"upstream"}');
      expect(upstream.received[before]!.url).toBe('/same/path?flag&a=1&a=2');
      expect(upstream.received[before]!.headerValues('x-multi')).toEqual(['v1', 'v2']);
    });
  });

  it('an error answer is a 503', async () => {
    await withAnswer(frameOf('runner_err_service_unavailable'), undefined, async (gw) => {
      const res = await request(`${gw.url}/x`);
      expect(res.statusCode).toBe(503);
      await res.body.text();
    });
  });

  it('post-resp full answer: status, headers replaced, body', async () => {
    await withAnswer(undefined, frameOf('runner_http_resp_call_resp_full'), async (gw) => {
      const res = await request(`${gw.url}/x`);
      expect(res.statusCode).toBe(304);
      expect(res.headers['x-runner']).toBe('Test-Runner');
      expect(res.headers['x-same']).toEqual(['one', 'two']);
      expect(res.headers['x-upstream']).toBeUndefined();
      await res.body.text();
    });
  });

  it('post-resp body only: upstream status and headers kept, body replaced', async () => {
    await withAnswer(undefined, frameOf('runner_http_resp_call_resp_body_only'), async (gw) => {
      const res = await request(`${gw.url}/x`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-upstream']).toBe('yes');
      expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
      expect(await res.body.text()).toBe('replaced body');
    });
  });

  it('an unknown route is a 404 without calling the runner', async () => {
    const fake = await startFakeRunner(dirs.file('nr.sock'), () => undefined);
    const gw = await GatewayEmulator.start({ socketPath: fake.socketPath, routes: [{ id: '1', uri: '/only', upstream: upstream.url, plugins: { 'ext-plugin-pre-req': { conf: [] } } }] });
    try {
      const res = await request(`${gw.url}/other`);
      expect(res.statusCode).toBe(404);
      await res.body.text();
      expect(fake.received.length).toBe(0);
    } finally {
      await gw.close();
      await fake.close();
    }
  });

  it('answers ExtraInfo questions from the request (vars, custom route vars, body)', async () => {
    const questions: ExtraInfoQuestion[] = [
      'uri', 'args', 'is_args', 'request_uri', 'real_request_uri', 'remote_addr', 'host', 'server_port', 'request_method', 'scheme',
      'http_x_custom', 'arg_a', 'route_tag', 'not_a_var',
    ].map((name) => ({ kind: 'var', name }) as const);
    questions.push({ kind: 'reqBody' });
    const answers: (string | undefined)[] = [];
    let next = 0;
    const fake = await startFakeRunner(dirs.file('xi.sock'), (type, payload, reply) => {
      if (type === RPC.PREPARE_CONF) return reply.raw(encodePrepareConfResp(1));
      if (type === RPC.EXTRA_INFO) answers.push(decodeExtraInfoResp(payload)?.toString('utf8'));
      if (type === RPC.HTTP_REQ_CALL || type === RPC.EXTRA_INFO) {
        const q = questions[next++];
        reply.raw(q ? encodeExtraInfoReq(q) : encodeHttpReqCallResp(0, { type: 'none' }));
      }
    });
    const gw = await GatewayEmulator.start({
      socketPath: fake.socketPath,
      routes: [{ id: 'xi', uri: '/xi/', upstream: upstream.url, vars: { route_tag: 'blue' }, plugins: { 'ext-plugin-pre-req': { conf: [{ name: 'x', value: '{}' }] } } }],
    });
    try {
      const res = await request(`${gw.url}/xi/a%20b?a=1&a=2`, { method: 'POST', headers: { host: 'Example.COM:8080', 'x-custom': 'c' }, body: 'the body' });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      expect(answers).toEqual([
        // request_uri is APISIX's normalised one (apisix/init.lua); the raw one is real_request_uri.
        '/xi/a b', 'a=1&a=2', '?', '/xi/a b?a=1&a=2', '/xi/a%20b?a=1&a=2', '127.0.0.1', 'example.com', new URL(gw.url).port, 'POST', 'http',
        'c', '1', 'blue', undefined, 'the body',
      ]);
    } finally {
      await gw.close();
      await fake.close();
    }
  });
});

describe('nginx response framing (nginx-response.ts)', () => {
  const wire = (status: number, headers: [string, string[]][], body: string | undefined, method = 'GET') =>
    nginxWire({ method, status, headers: new Map(headers), body: body === undefined ? undefined : Buffer.from(body) });

  it('a body without content-length is chunked; one with it is sent as is, even when the length is wrong', () => {
    const chunked = wire(200, [['content-type', ['text/plain']]], 'hello');
    expect(chunked.headerLines).toEqual(['Content-Type: text/plain', 'Transfer-Encoding: chunked', 'Connection: close']);
    expect(chunked.bytes.toString('latin1').endsWith('\r\n\r\n5\r\nhello\r\n0\r\n\r\n')).toBe(true);
    const stale = wire(200, [['content-length', ['100']]], 'hello');
    expect(stale.headerLines).toEqual(['Content-Length: 100', 'Connection: close']);
    expect(stale.bytes.toString('latin1').endsWith('\r\n\r\nhello')).toBe(true);
  });

  it('a transfer-encoding or connection set through ngx.header is written besides nginx\'s own', () => {
    const w = wire(200, [['transfer-encoding', ['chunked']], ['connection', ['keep-alive']]], 'x');
    expect(w.headerLines.filter((l) => l.startsWith('Transfer-Encoding'))).toHaveLength(2);
    expect(w.headerLines.filter((l) => l.startsWith('Connection'))).toHaveLength(2);
  });

  it('HEAD, 204 and 304 carry no body; 204 also loses content-type and content-length', () => {
    const head = wire(200, [['content-length', ['5']]], 'hello', 'HEAD');
    expect(head.headerLines).toContain('Content-Length: 5');
    expect(head.bytes.toString('latin1').endsWith('\r\n\r\n')).toBe(true);
    const noContent = wire(204, [['content-type', ['a/b']], ['content-length', ['5']], ['x', ['1']]], 'hello');
    expect(noContent.headerLines).toEqual(['X: 1', 'Connection: close']);
    expect(noContent.bytes.toString('latin1').endsWith('\r\n\r\n')).toBe(true);
    const notModified = wire(304, [['etag', ['"e"']]], 'hello');
    expect(notModified.headerLines).toEqual(['Etag: "e"', 'Connection: close']);
  });
});

describe('post-resp answers applied as init.lua / ext-plugin-post-resp.lua do', () => {
  /** One client GET through a post-resp route whose runner answers `answer` to HTTPRespCall. */
  interface Through { status: number; headers: Record<string, string | string[] | undefined>; body: string; lines: readonly string[]; error?: Error }
  async function through(answer: Buffer, preReq?: Buffer): Promise<Through> {
    const fake = await startFakeRunner(dirs.file('pr.sock'), (type, _p, reply) => {
      if (type === RPC.PREPARE_CONF) reply.raw(encodePrepareConfResp(1));
      else if (type === RPC.HTTP_REQ_CALL && preReq) reply.raw(preReq);
      else if (type === RPC.HTTP_RESP_CALL) reply.raw(answer);
    });
    const plugins: GatewayRoute['plugins'] = { 'ext-plugin-post-resp': { conf: [{ name: 'x', value: '{}' }] } };
    if (preReq) plugins['ext-plugin-pre-req'] = { conf: [{ name: 'x', value: '{}' }] };
    const gw = await GatewayEmulator.start({ socketPath: fake.socketPath, routes: [{ id: 'pr', uri: '/', upstream: upstream.url, plugins }] });
    try {
      try {
        const res = await request(`${gw.url}/p`);
        const body = await res.body.text();
        return { status: res.statusCode, headers: res.headers, body, lines: gw.events.at(-1)!.headerLines };
      } catch (err) {
        // The client could not read the answer: what went on the wire is in the event.
        return { status: 0, headers: {}, body: '', lines: gw.events.at(-1)?.headerLines ?? [], error: err as Error };
      }
    } finally {
      await gw.close();
      await fake.close();
    }
  }
  const UPSTREAM_BODY = '{"from":"upstream"}';

  it('with headers: exactly those are set (lower-cased, repeats added, valueless unsets), none of the upstream\'s', async () => {
    const r = await through(
      encodeHttpRespCallResp(0, { status: 0, headers: [{ name: 'X-A', value: '1' }, { name: 'x-a', value: '2' }, { name: 'x-resp', value: undefined }] }),
      encodeHttpReqCallResp(0, { type: 'rewrite', rewrite: { headers: [], args: [], respHeaders: [{ name: 'x-resp', value: 'pre' }, { name: 'x-keep', value: 'pre' }] } }),
    );
    expect(r.status).toBe(200);
    expect(r.headers['x-a']).toEqual(['1', '2']);
    expect(r.headers['x-resp']).toBeUndefined();
    expect(r.headers['x-keep']).toBe('pre');
    expect(r.headers['content-type']).toBeUndefined();
    expect(r.headers['x-upstream']).toBeUndefined();
    expect(r.body).toBe(UPSTREAM_BODY);
  });

  it('without headers: the upstream\'s minus init.lua\'s exclude list (content-type lost), body streamed', async () => {
    const r = await through(encodeHttpRespCallResp(0, { status: 202, headers: [] }));
    expect(r.status).toBe(202);
    expect(r.headers['x-upstream']).toBe('yes');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['content-type']).toBeUndefined();
    expect(r.body).toBe(UPSTREAM_BODY);
    // The upstream's content-length is excluded: nginx chunks the streamed body.
    expect(r.lines).toContain('Transfer-Encoding: chunked');
  });

  it('a header list with a stale content-length reaches the client as is (the bug the runner must avoid)', async () => {
    // Shorter body than announced: real nginx leaves the client waiting; the emulator closes, so it fails at once.
    const shorter = await through(encodeHttpRespCallResp(0, { status: 0, headers: [{ name: 'content-length', value: '100' }], body: Buffer.from('short') }));
    expect(shorter.error).toBeInstanceOf(Error);
    expect(shorter.lines).toContain('Content-Length: 100');
    const longer = await through(encodeHttpRespCallResp(0, { status: 0, headers: [{ name: 'content-length', value: '3' }], body: Buffer.from('a longer body') }));
    expect(longer.body).toBe('a l');
    // A copied transfer-encoding: nginx's chunked filter adds its own, so it is on the wire twice.
    const te = await through(encodeHttpRespCallResp(0, { status: 0, headers: [{ name: 'transfer-encoding', value: 'chunked' }], body: Buffer.from('x') }));
    expect(te.lines.filter((l) => l.startsWith('Transfer-Encoding'))).toHaveLength(2);
  });

  it('status 0 with a body takes the upstream\'s status; a zero-length body is no body', async () => {
    const withBody = await through(encodeHttpRespCallResp(0, { status: 0, headers: [{ name: 'x', value: '1' }], body: Buffer.from('new') }));
    expect(withBody).toMatchObject({ status: 200, body: 'new' });
    const empty = await through(encodeHttpRespCallResp(0, { status: 201, headers: [{ name: 'x', value: '1' }], body: Buffer.alloc(0) }));
    expect(empty).toMatchObject({ status: 201, body: UPSTREAM_BODY });
  });

  it('an error answer: status 503 with the upstream\'s body and none of its headers (the header handler never ran)', async () => {
    const r = await through(encodeError(ErrCode.SERVICE_UNAVAILABLE));
    expect(r.status).toBe(503);
    expect(r.body).toBe(UPSTREAM_BODY);
    expect(r.headers['x-upstream']).toBeUndefined();
  });
});

describe('variables as apisix/core/ctx.lua and apisix/init.lua give them', () => {
  it('cookie_*, raw arg_*, joined http_*, method, route_id', async () => {
    const names = ['cookie_sid', 'cookie_none', 'arg_q', 'arg_Q', 'arg_flag', 'http_x_multi', 'http_cookie', 'method', 'route_id', 'service_id'];
    const answers: (string | undefined)[] = [];
    let next = 0;
    const fake = await startFakeRunner(dirs.file('vars.sock'), (type, payload, reply) => {
      if (type === RPC.PREPARE_CONF) return reply.raw(encodePrepareConfResp(1));
      if (type === RPC.EXTRA_INFO) answers.push(decodeExtraInfoResp(payload)?.toString('utf8'));
      if (type === RPC.HTTP_REQ_CALL || type === RPC.EXTRA_INFO) {
        const name = names[next++];
        reply.raw(name ? encodeExtraInfoReq({ kind: 'var', name }) : encodeHttpReqCallResp(0, { type: 'none' }));
      }
    });
    const gw = await GatewayEmulator.start({ socketPath: fake.socketPath, routes: [{ id: 'route-7', uri: '/v/', upstream: upstream.url, plugins: { 'ext-plugin-pre-req': { conf: [{ name: 'x', value: '{}' }] } } }] });
    try {
      const res = await request(`${gw.url}/v/?q=a%20b&flag`, { method: 'DELETE', headers: { cookie: ['sid=s1; other=o', 'sid=s2'], 'x-multi': ['1', '2'] } });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      expect(answers).toEqual(['s1', undefined, 'a%20b', 'a%20b', '', '1, 2', 'sid=s1; other=o; sid=s2', 'DELETE', 'route-7', undefined]);
    } finally {
      await gw.close();
      await fake.close();
    }
  });
});
