/**
 * The dispatch engine on its own (no APISIX, no sampling): the response sink seam a shadow
 * comparison will read the mirror's answer through, on the RPC thread and from a worker.
 */
import http from 'node:http';
import type net from 'node:net';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { DispatchEngine, type DispatchObserver, type DispatchResponse, type ResponseSink, type TargetSpec } from '../../src/mirror-dispatch/index.js';
import { localTargetSpec } from './target-spec.js';

let server: http.Server;
let port: number;
beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size') ?? '0');
      res.writeHead(201, { 'x-answer': 'yes', 'content-type': 'text/plain' }).end('a'.repeat(size));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const noop = (): void => undefined;
const observer: DispatchObserver = {
  sent: noop, finished: noop, refused: noop, inflight: noop, queued: noop, failed: noop, nodeState: noop, dropped: noop, threadRestarted: noop,
};

const spec = (): TargetSpec => localTargetSpec(port);

function read(maxBodyBytes: number): { sink: ResponseSink; answer: Promise<DispatchResponse> } {
  let resolve!: (r: DispatchResponse) => void;
  let reject!: (e: Error) => void;
  const answer = new Promise<DispatchResponse>((res, rej) => { resolve = res; reject = rej; });
  return { sink: { maxBodyBytes, onResponse: resolve, onFailure: (o, code) => reject(new Error(`${o} ${code}`)) }, answer };
}

describe.each([1, 2])('response sink, threads %i', (threads) => {
  it('hands the answer (status, headers, body up to the cap) to the sink', async () => {
    const engine = new DispatchEngine({ observer, closeGraceMs: 100, threads });
    try {
      const target = engine.acquire(spec());
      const small = read(100);
      expect(target.submit({ method: 'GET', uri: '/?size=10', headers: [['host', 'h']], body: undefined, sizeBytes: 10 }, small.sink)).toBe('started');
      const a = await small.answer;
      expect(a).toMatchObject({ status: 201, truncated: false, node: `http://127.0.0.1:${port}` });
      expect(a.headers['x-answer']).toBe('yes');
      expect(a.body.toString()).toBe('a'.repeat(10));

      const big = read(100);
      target.submit({ method: 'POST', uri: '/?size=5000', headers: [['host', 'h']], body: Buffer.from('q'), sizeBytes: 10 }, big.sink);
      const b = await big.answer;
      expect(b.status).toBe(201);
      expect(b.truncated).toBe(true);
      expect(b.body.length).toBe(100);
    } finally {
      await engine.close();
    }
  });
});
