/**
 * A worker that dies while the RPC thread waits for outcomes on its done ring: a copy sent
 * through the new worker's ring right after the restart still gets its outcome (found by the
 * ring tests: the pool used to stop waiting on the new ring; it now polls whichever ring is
 * current).
 */
import http from 'node:http';
import type net from 'node:net';
import { it, expect } from 'vitest';
import { DispatchThreads } from '../../src/mirror-dispatch/thread-pool.js';
import { CircuitBreaker } from '../../src/mirror-dispatch/circuit-breaker.js';
import type { DispatchOutcome, TargetSpec } from '../../src/mirror-dispatch/types.js';
import { localTargetSpec } from './target-spec.js';

async function serve(hold: boolean): Promise<{ server: http.Server; port: number }> {
  // hold: reads the request and never answers (the copy stays in flight in the worker).
  const server = http.createServer((req, res) => { req.resume(); if (!hold) req.on('end', () => res.writeHead(200).end('ok')); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port };
}
const spec = (port: number): TargetSpec => localTargetSpec(port, { connectMs: 5000, sendMs: 5000, readMs: 20000 });

it('a ring copy sent right after a worker crash gets its outcome', async () => {
  const slow = await serve(true);
  const fast = await serve(false);
  const threads = new DispatchThreads(1, () => undefined);
  try {
    const br = (): CircuitBreaker => new CircuitBreaker({ failures: 3, baseMs: 1000, maxMs: 10000 }, () => performance.now(), Math.random);
    const a = threads.createNode(spec(slow.port).nodes[0]!, spec(slow.port), br(), undefined);
    const b = threads.createNode(spec(fast.port).nodes[0]!, spec(fast.port), br(), undefined);
    const req = { method: 'GET', uri: '/', headers: [['host', 'h']] as [string, string][], body: undefined, sizeBytes: 0 };
    const reached = new Promise((r) => slow.server.once('request', r));
    const aDone = new Promise<DispatchOutcome>((r) => a.send(req, undefined, (o) => r(o)));
    // The copy is in the worker: the RPC side polls the done ring (ringInflight 1).
    await reached;
    let bDone: Promise<DispatchOutcome> | undefined;
    const w = threads.workers[0]!;
    // Right after the pool's own exit handler (crashed(): new rings, worker restarted), before the
    // old ring's next poll: a copy for the other node goes through the new ring.
    w.on('exit', () => { bDone = new Promise<DispatchOutcome>((r) => b.send(req, undefined, (o) => r(o))); });
    await w.terminate();
    expect(await aDone).toBe('error');
    let timer: NodeJS.Timeout | undefined;
    const got = await Promise.race([bDone!, new Promise<string>((r) => { timer = setTimeout(() => r('never settled'), 8000); })]);
    clearTimeout(timer);
    expect(got).toBe('2xx');
  } finally {
    await threads.close();
    for (const s of [slow, fast]) { s.server.closeAllConnections(); s.server.close(); }
  }
}, 30000);
