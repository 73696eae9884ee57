/**
 * The mirror's own HTTP/1.1 client (HttpNode over h1/connection) against a raw TCP server on
 * 127.0.0.1 that shows exactly what went over the wire: copies of one turn share one write on
 * one connection, answers are matched in order, requests the server surely did not process are
 * sent again (once), others fail with a code an operator can read, and nothing a client sent
 * can smuggle a second request to the target.
 */
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { describe, it, expect, afterEach } from 'vitest';
import { CircuitBreaker } from '../../src/mirror-dispatch/circuit-breaker.js';
import { HttpNode } from '../../src/mirror-dispatch/http-node.js';
import type { DispatchOutcome, DispatchRequest, DispatchResponse, ResponseSink, TargetSpec } from '../../src/mirror-dispatch/types.js';
import { waitUntil } from '../harness/wait.js';
import { RawHttpServer, answer, type RawReply, type RawRequest } from './raw-http-server.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Result {
  outcome: DispatchOutcome;
  code?: string;
  message?: string;
}

async function setup(reply: (req: RawRequest) => RawReply, opts: { pipelining?: number; maxConcurrency?: number; readMs?: number } = {}) {
  const server = await RawHttpServer.start(reply);
  cleanups.push(() => server.close());
  const origin = `http://127.0.0.1:${server.port}`;
  const spec = { label: origin, authority: `127.0.0.1:${server.port}`, hostname: '127.0.0.1', port: server.port, weight: 1 };
  const target: TargetSpec = {
    label: origin, protocol: 'http', tls: false, tlsVerify: true, tlsCa: undefined, nodes: [spec], resolveAll: false, resolveEveryMs: 30_000,
    timeouts: { connectMs: 5000, sendMs: 5000, readMs: opts.readMs ?? 5000 },
    limits: { maxConcurrency: opts.maxConcurrency ?? 32, maxQueue: 0, maxQueueBytes: 0 },
    breaker: { failures: 3, baseMs: 1000, maxMs: 10_000 },
    ...(opts.pipelining ? { pipelining: opts.pipelining } : {}),
  };
  const now = (): number => performance.now();
  const node = new HttpNode(spec, target, new CircuitBreaker(target.breaker, now, Math.random), now);
  cleanups.push(() => node.close(0));
  const send = (req: Partial<DispatchRequest> & { uri: string }, sink?: ResponseSink): Promise<Result> => new Promise((resolve) => {
    node.send({ method: 'GET', headers: [['host', 'client.example']], body: undefined, sizeBytes: 0, ...req }, sink, (outcome, code, message) => resolve({ outcome, code, message }));
  });
  return { server, node, send };
}

function sinkFor(maxBodyBytes: number): { sink: ResponseSink; got: Promise<DispatchResponse> } {
  let resolve!: (r: DispatchResponse) => void;
  const got = new Promise<DispatchResponse>((r) => { resolve = r; });
  return {
    got,
    sink: { maxBodyBytes, onResponse: resolve, onFailure: (o, c) => { throw new Error(`sink failure ${o} ${c}`); } },
  };
}

describe('mirror HTTP/1.1 client', () => {
  it('writes the copies of one turn on one connection in one write, and matches the answers in order', async () => {
    const { server, send } = await setup((req) => answer(200, req.target));
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => send({ uri: `/copy/${i}` })));
    expect(results.map((r) => r.outcome)).toEqual(Array(8).fill('2xx'));
    expect(server.sockets).toHaveLength(1);
    expect(server.requests.map((r) => r.target)).toEqual(Array.from({ length: 8 }, (_, i) => `/copy/${i}`));
    // All eight heads came in the server's first read: one write on the client's side.
    const first = server.reads[0]![0]!.toString('latin1');
    expect(first.match(/^GET \/copy\/\d HTTP\/1\.1\r\n/gm)).toHaveLength(8);
  });

  it('by default pipelines up to 32 copies of one turn on a connection (one write), the 33rd on a second', async () => {
    const { server, send } = await setup((req) => answer(200, req.target));
    const results = await Promise.all(Array.from({ length: 33 }, (_, i) => send({ uri: `/t/${i}` })));
    expect(results.every((r) => r.outcome === '2xx')).toBe(true);
    expect(server.sockets).toHaveLength(2);
    expect([0, 1].map((c) => server.requests.filter((r) => r.connection === c).length)).toEqual([32, 1]);
    const first = server.reads[0]![0]!.toString('latin1');
    expect(first.match(/^GET \/t\/\d+ HTTP\/1\.1\r\n/gm)).toHaveLength(32);
  });

  it('opens another connection when the pipelining depth is reached', async () => {
    const { server, send } = await setup((req) => answer(200, req.target), { pipelining: 3 });
    const results = await Promise.all(Array.from({ length: 7 }, (_, i) => send({ uri: `/d/${i}` })));
    expect(results.every((r) => r.outcome === '2xx')).toBe(true);
    expect(server.sockets).toHaveLength(3);
    const perConnection = [0, 1, 2].map((c) => server.requests.filter((r) => r.connection === c).length);
    expect(perConnection).toEqual([3, 3, 1]);
  });

  it('sends the requests behind an answer that says "connection: close" again, on a new connection', async () => {
    const { server, send } = await setup((req) => (req.connection === 0 && req.index === 1
      ? answer(200, 'last', 'connection: close\r\n')
      : answer(200, req.target)));
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => send({ method: i === 3 ? 'POST' : 'GET', uri: `/c/${i}`, body: i === 3 ? Buffer.from('p') : undefined })));
    expect(results.map((r) => r.outcome)).toEqual(['2xx', '2xx', '2xx', '2xx']);
    // The server processed every request exactly once: 0 and 1 on the first connection, 2 and
    // 3 (a POST too: the server said it would not read them) on the second.
    const answered = (c: number): string[] => server.requests.filter((r) => r.connection === c).map((r) => r.target);
    expect(answered(1)).toEqual(['/c/2', '/c/3']);
    expect(server.requests.filter((r) => r.connection === 0 && r.index <= 1).map((r) => r.target)).toEqual(['/c/0', '/c/1']);
  });

  it('asks a GET again when a kept-alive connection turns out closed, but never a POST', async () => {
    // The second request on any connection finds it closed unanswered, as when the server's
    // idle timeout fires while the copy is on its way.
    const { server, send } = await setup((req) => (req.index === 1 ? 'close' : answer(200)), { maxConcurrency: 1 });
    expect((await send({ uri: '/warm' })).outcome).toBe('2xx');
    expect((await send({ uri: '/get-again' })).outcome).toBe('2xx');
    expect(server.requests.filter((r) => r.target === '/get-again').map((r) => r.connection)).toEqual([0, 1]);

    const post = await send({ method: 'POST', uri: '/post-once', body: Buffer.from('x') });
    expect(post).toMatchObject({ outcome: 'error', code: 'CONNECTION_CLOSED' });
    expect(server.requests.filter((r) => r.target === '/post-once')).toHaveLength(1);
  });

  it('cuts an answer over 1 MiB that nobody reads, and sends what was behind it again', async () => {
    const big = `HTTP/1.1 200 OK\r\ncontent-length: ${4 * 1024 * 1024}\r\n\r\n${'x'.repeat(4 * 1024 * 1024)}`;
    const { server, send } = await setup((req) => (req.target === '/big' ? big : answer(200)));
    const [a, b] = await Promise.all([send({ uri: '/big' }), send({ uri: '/behind' })]);
    expect(a.outcome).toBe('2xx');
    expect(b.outcome).toBe('2xx');
    expect(server.requests.filter((r) => r.target === '/behind').map((r) => r.connection)).toEqual([0, 1]);
  });

  it('hands a sink the status, repeated headers and the chunked body reassembled', async () => {
    const chunked = 'HTTP/1.1 201 Created\r\nset-cookie: a=1\r\nset-cookie: b=2\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n';
    const { send } = await setup(() => chunked);
    const { sink, got } = sinkFor(1024);
    expect((await send({ uri: '/s' }, sink)).outcome).toBe('2xx');
    const r = await got;
    expect(r).toMatchObject({ status: 201, truncated: false, bodyBytes: 5, headers: { 'set-cookie': ['a=1', 'b=2'], 'transfer-encoding': 'chunked' } });
    expect(r.body.toString()).toBe('abcde');
  });

  it('answers that arrive in many reads keep their bytes: each read is copied out of the shared read buffer', async () => {
    // A server that answers three pipelined requests with 3,000-byte bodies of different bytes,
    // in 1,024-byte pieces a few milliseconds apart (the second head is cut in two): the client
    // reads them one piece at a time, and every body and partial head it keeps would be
    // overwritten by the next read were it a view of the buffer reads land in (src/socket-reads.ts).
    const bodies = ['a', 'b', 'c'].map((ch) => Buffer.alloc(3000, ch));
    const wire = Buffer.concat(bodies.map((b) => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${b.length}\r\n\r\n`), b])));
    const server = net.createServer((socket) => {
      let seen = '';
      socket.on('data', (d) => {
        seen += d.toString('latin1');
        if (seen.split('\r\n\r\n').length - 1 < 3) return;
        let at = 0;
        const next = (): void => {
          if (socket.destroyed || at >= wire.length) return;
          socket.write(wire.subarray(at, at + 1024));
          at += 1024;
          setTimeout(next, 3);
        };
        next();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;
    const spec = { label: 'pieces', authority: `127.0.0.1:${port}`, hostname: '127.0.0.1', port, weight: 1 };
    const target: TargetSpec = {
      label: 'pieces', protocol: 'http', tls: false, tlsVerify: true, tlsCa: undefined, nodes: [spec], resolveAll: false, resolveEveryMs: 30_000,
      timeouts: { connectMs: 5000, sendMs: 5000, readMs: 5000 },
      limits: { maxConcurrency: 32, maxQueue: 0, maxQueueBytes: 0 },
      breaker: { failures: 3, baseMs: 1000, maxMs: 10_000 },
    };
    const now = (): number => performance.now();
    const node = new HttpNode(spec, target, new CircuitBreaker(target.breaker, now, Math.random), now);
    cleanups.push(() => node.close(0));
    const sinks = bodies.map(() => sinkFor(4096));
    const done = sinks.map(({ sink }, i) => new Promise<DispatchOutcome>((resolve) => {
      node.send({ method: 'GET', uri: `/piece/${i}`, headers: [['host', 'client.example']], body: undefined, sizeBytes: 0 }, sink, (o) => resolve(o));
    }));
    expect(await Promise.all(done)).toEqual(['2xx', '2xx', '2xx']);
    const got = await Promise.all(sinks.map((s) => s.got));
    expect(got.map((r) => r.body)).toEqual(bodies);
  });

  it('keeps a sink\'s body up to its cap and hashes the whole body', async () => {
    const { send } = await setup(() => answer(200, 'abcdefghij'));
    const { sink, got } = sinkFor(4);
    await send({ uri: '/cap' }, sink);
    const r = await got;
    expect(r.body.toString()).toBe('abcd');
    expect(r).toMatchObject({ truncated: true, bodyBytes: 10, bodySha256: '72399361da6a7754fec986dca5b7cbaf1c810a28ded4abaf56b2106d06cb78b0' });
  });

  it('reads HEAD answers as head only when pipelined with others', async () => {
    const { send } = await setup((req) => (req.method === 'HEAD' ? 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n' : answer(200, 'hello')));
    const { sink, got } = sinkFor(100);
    const results = await Promise.all([send({ method: 'HEAD', uri: '/h' }), send({ uri: '/g' }, sink)]);
    expect(results.map((r) => r.outcome)).toEqual(['2xx', '2xx']);
    expect((await got).body.toString()).toBe('hello');
  });

  it('skips interim 1xx answers and reads a body that runs until the connection closes', async () => {
    const { server, send } = await setup((req) => (req.index === 0 && req.connection === 0
      ? 'HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil close'
      : answer(204)));
    const { sink, got } = sinkFor(100);
    const done = send({ uri: '/close' }, sink);
    await waitUntil(() => server.requests.length === 1, 'request seen');
    server.sockets[0]!.end();
    expect((await done).outcome).toBe('2xx');
    expect((await got).body.toString()).toBe('until close');
    expect((await send({ uri: '/next' })).outcome).toBe('2xx');
    expect(server.sockets).toHaveLength(2);
  });

  it('fails a garbled answer with BAD_RESPONSE', async () => {
    const { send } = await setup(() => 'SSH-2.0-OpenSSH_9.6\r\n\r\n');
    expect(await send({ uri: '/x' })).toMatchObject({ outcome: 'error', code: 'BAD_RESPONSE', message: expect.stringMatching(/not an HTTP\/1.x status line/) });
  });

  it('never writes a request whose header would end a line early', async () => {
    const { server, send } = await setup(() => answer(200));
    const r = await send({ uri: '/x', headers: [['host', 'h'], ['x-evil', 'a\r\nGET /smuggled HTTP/1.1']] });
    expect(r).toMatchObject({ outcome: 'error', code: 'INVALID_REQUEST' });
    expect(await send({ uri: '/x y' })).toMatchObject({ outcome: 'error', code: 'INVALID_REQUEST' });
    expect(await send({ uri: '/x', headers: [['bad name', 'v']] })).toMatchObject({ outcome: 'error', code: 'INVALID_REQUEST' });
    expect(await send({ uri: '/x', body: Buffer.from('abc'), headers: [['content-length', '1']] })).toMatchObject({ outcome: 'error', code: 'INVALID_REQUEST' });
    expect(await send({ uri: '/x', headers: [['transfer-encoding', 'chunked']] })).toMatchObject({ outcome: 'error', code: 'INVALID_REQUEST' });
    expect(server.sockets).toHaveLength(0);
  });

  it('writes a body with its content-length and a host when the copy has none', async () => {
    const { server, send } = await setup(() => answer(200));
    await send({ method: 'PUT', uri: '/b', headers: [], body: Buffer.from('caf\u00e9', 'utf8') });
    const req = server.requests[0]!;
    expect(req.headers).toEqual([['host', `127.0.0.1:${server.port}`], ['content-length', '5']]);
    expect(req.body.toString('utf8')).toBe('caf\u00e9');
  });

  it('writes non-ASCII header values as the UTF-8 bytes APISIX read', async () => {
    const { server, send } = await setup(() => answer(200));
    await send({ uri: '/caf%C3%A9', headers: [['host', 'h'], ['x-name', 'Zo\u00eb \u2603']] });
    const raw = Buffer.concat(server.reads[0]!);
    expect(raw.includes(Buffer.from('x-name: Zo\u00eb \u2603\r\n', 'utf8'))).toBe(true);
  });

  it('fails a request the target never answers with READ_TIMEOUT, and only that connection', async () => {
    const { server, send } = await setup((req) => (req.target === '/slow' ? 'hang' : answer(200)), { readMs: 200 });
    const r = await send({ uri: '/slow' });
    expect(r).toMatchObject({ outcome: 'timeout', code: 'READ_TIMEOUT' });
    expect((await send({ uri: '/fine' })).outcome).toBe('2xx');
    expect(server.requests.map((q) => [q.target, q.connection])).toEqual([['/slow', 0], ['/fine', 1]]);
  });

  it('closes an idle connection a second before the server\'s announced keep-alive timeout', async () => {
    const { server, send } = await setup(() => answer(200, '', 'keep-alive: timeout=1\r\n'));
    expect((await send({ uri: '/k' })).outcome).toBe('2xx');
    // timeout=1 leaves no idle time at all: the client closes at its next sweep.
    await waitUntil(() => server.clientClosed.has(0), 'client closed the idle connection');
    expect((await send({ uri: '/k2' })).outcome).toBe('2xx');
    expect(server.sockets).toHaveLength(2);
  });

  it('counts a refused connect with the socket\'s code, for the breaker', async () => {
    const { server, send } = await setup(() => answer(200));
    await server.close();
    expect(await send({ uri: '/x' })).toMatchObject({ outcome: 'error', code: 'ECONNREFUSED' });
  });
});
