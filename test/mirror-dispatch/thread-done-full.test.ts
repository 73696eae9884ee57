/**
 * Outcomes that do not fit the done ring come back as messages and settle as if they had come
 * through it: counted copies (thread-worker.ts writeNodeOutcomes → a 'counted' message) and
 * copies with a callback (ringDone → a 'done' message). The pool runs with a 64-byte done ring,
 * so a failure's record (its error code and message take more than 64 bytes) never fits, and a
 * batch of more than eleven counted outcomes never does: these paths are taken for certain.
 */
import http from 'node:http';
import net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { DispatchThreads } from '../../src/mirror-dispatch/thread-pool.js';
import { CircuitBreaker } from '../../src/mirror-dispatch/circuit-breaker.js';
import type { CountedOutcomes, NodeTransport } from '../../src/mirror-dispatch/http-node.js';
import type { DispatchOutcome, DispatchRequest } from '../../src/mirror-dispatch/types.js';
import { localTargetSpec } from './target-spec.js';

const TINY = { copiesBytes: 1 << 20, doneBytes: 64 };
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A port nothing listens on (bound, then closed). */
async function refusedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function okServer(): Promise<{ port: number; requests: () => number }> {
  let n = 0;
  const server = http.createServer((req, res) => {
    n++;
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-length': '0' }).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => { server.closeAllConnections(); server.close(); });
  return { port: (server.address() as net.AddressInfo).port, requests: () => n };
}

interface Tally { n: number; outcomes: Map<string, number>; codes: Set<string> }

/** One worker with a 64-byte done ring and one counted node on `port`; the outcomes it reports, tallied. */
function countedNode(port: number): { node: NodeTransport; tally: Tally } {
  const threads = new DispatchThreads(1, () => undefined, TINY);
  cleanups.push(() => threads.close());
  const spec = localTargetSpec(port, { connectMs: 2000, sendMs: 2000, readMs: 2000 });
  const breaker = new CircuitBreaker({ failures: 1000, baseMs: 1000, maxMs: 10000 }, () => performance.now(), Math.random);
  const tally: Tally = { n: 0, outcomes: new Map(), codes: new Set() };
  const report: CountedOutcomes = (outcome, n, _micros, _first, code) => {
    tally.n += n;
    tally.outcomes.set(outcome, (tally.outcomes.get(outcome) ?? 0) + n);
    if (code !== undefined) tally.codes.add(code);
  };
  return { node: threads.createNode(spec.nodes[0]!, spec, breaker, undefined, report), tally };
}

const request = (port: number): DispatchRequest => ({
  method: 'GET', uri: '/copy', headers: [['host', `127.0.0.1:${port}`]], body: undefined, sizeBytes: 0,
});

async function until(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !done(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!done()) throw new Error(`timed out waiting for ${what}`);
}

it('settles counted copies to a refused port through messages: every failure, with its code', async () => {
  const port = await refusedPort();
  const { node, tally } = countedNode(port);
  let sent = 0;
  for (let i = 0; i < 20; i++) if (node.sendCounted!(request(port))) sent++;
  expect(sent).toBe(20);
  await until('20 counted failures', () => tally.n >= 20);
  expect(tally.n).toBe(20);
  expect(tally.outcomes.get('error')).toBe(20);
  expect([...tally.codes]).toEqual(['ECONNREFUSED']);
});

it('settles a burst of counted copies, through the ring or (a batch of more than eleven) a message, each copy once', async () => {
  const server = await okServer();
  const { node, tally } = countedNode(server.port);
  for (let i = 0; i < 60; i++) expect(node.sendCounted!(request(server.port))).toBe(true);
  await until('60 counted outcomes', () => tally.n >= 60);
  // Settled once each: nothing more arrives after a pause.
  await new Promise((r) => setTimeout(r, 200));
  expect(tally.n).toBe(60);
  expect(tally.outcomes.get('2xx')).toBe(60);
  expect(server.requests()).toBe(60);
});

it('calls back every copy sent with a callback whose outcome does not fit the done ring', async () => {
  const port = await refusedPort();
  const threads = new DispatchThreads(1, () => undefined, TINY);
  cleanups.push(() => threads.close());
  const spec = localTargetSpec(port, { connectMs: 2000, sendMs: 2000, readMs: 2000 });
  const breaker = new CircuitBreaker({ failures: 1000, baseMs: 1000, maxMs: 10000 }, () => performance.now(), Math.random);
  const node = threads.createNode(spec.nodes[0]!, spec, breaker, undefined);
  const got: { o: DispatchOutcome; c: string | undefined }[] = [];
  for (let i = 0; i < 10; i++) node.send(request(port), undefined, (o, c) => { got.push({ o, c }); });
  await until('10 callbacks', () => got.length >= 10);
  await new Promise((r) => setTimeout(r, 200));
  expect(got).toHaveLength(10);
  expect(got.every((g) => g.o === 'error' && g.c === 'ECONNREFUSED')).toBe(true);
});
