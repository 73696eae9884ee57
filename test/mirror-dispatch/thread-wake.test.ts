/**
 * How copies reach a worker without costing the RPC thread a wake-up each (thread-worker.ts,
 * `consume`): while copies flow, the worker polls its ring by timer, so a stream of copies
 * written in separate event-loop turns needs no `Atomics.notify`; once copies stop, it goes
 * to sleep on the ring, and the next copy wakes it (one notify) and is sent. Outcomes come
 * back without the worker waking the RPC thread: the pool reads the done ring by timer.
 * Causes, not timings: the turns are 2 ms apart (the worker would sleep between them if it
 * did not poll), far below the 50 ms the worker keeps polling after the last copy.
 */
import http from 'node:http';
import type net from 'node:net';
import { it, expect } from 'vitest';
import { DispatchThreads } from '../../src/mirror-dispatch/thread-pool.js';
import { CircuitBreaker } from '../../src/mirror-dispatch/circuit-breaker.js';
import type { DispatchOutcome } from '../../src/mirror-dispatch/types.js';
import { localTargetSpec } from './target-spec.js';

const TURNS = 40;

it('a stream of copies in separate turns needs no wake-up per turn; a copy after the worker fell asleep wakes it once', async () => {
  let received = 0;
  const server = http.createServer((req, res) => { req.resume(); req.on('end', () => { received++; res.writeHead(200).end('ok'); }); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const threads = new DispatchThreads(1, () => undefined);
  try {
    const spec = localTargetSpec(port, { connectMs: 5000, sendMs: 5000, readMs: 5000 });
    const breaker = new CircuitBreaker({ failures: 3, baseMs: 1000, maxMs: 10000 }, () => performance.now(), Math.random);
    const node = threads.createNode(spec.nodes[0]!, spec, breaker, undefined);
    const req = { method: 'GET', uri: '/', headers: [['host', 'h']] as [string, string][], body: undefined, sizeBytes: 0 };
    const send = (): Promise<DispatchOutcome> => new Promise((r) => node.send(req, undefined, (o) => r(o)));

    // The worker is up (it loads its modules first: copies written meanwhile wait in the ring).
    expect(await send()).toBe('2xx');
    const before = threads.handoff[0]!.wakes;
    // Copies in TURNS turns, 2 ms apart.
    const outcomes: Promise<DispatchOutcome>[] = [];
    for (let i = 0; i < TURNS; i++) {
      outcomes.push(send());
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(await Promise.all(outcomes)).toEqual(new Array(TURNS).fill('2xx'));
    const [streaming] = threads.handoff;
    // A stall of the machine longer than 50 ms between two turns costs one wake-up; a worker
    // that slept between turns would need about one per turn.
    expect(streaming!.wakes - before).toBeLessThanOrEqual(3);

    // No copies: the worker stops polling and sleeps on its ring (bounded wait).
    for (let i = 0; i < 500 && !threads.handoff[0]!.asleep; i++) await new Promise((r) => setTimeout(r, 10));
    expect(threads.handoff[0]!.asleep).toBe(true);
    // The next copy must wake it, once, and be sent.
    expect(await send()).toBe('2xx');
    expect(threads.handoff[0]!.wakes).toBe(streaming!.wakes + 1);
    expect(received).toBe(TURNS + 2);
  } finally {
    await threads.close();
    server.closeAllConnections();
    server.close();
  }
}, 30000);
