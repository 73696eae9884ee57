/**
 * How copies reach a worker (thread-worker.ts, `consume`): a worker that found copies reads its
 * ring by a 1 ms timer until COOL_LOOKS looks in a row found none, so a stream of copies, even
 * a slow one, needs no `Atomics.notify` per copy; at a trickle it sleeps on the ring between
 * copies and each copy wakes it once. Outcomes come back either way (thread-pool.ts,
 * `awaitDone`). Causes, not timings: the stream writes ten copies every event-loop turn, the
 * slow stream one every millisecond or so, the trickle one every 20 ms (well past the COOL_LOOKS
 * looks), and the bounds leave room for a machine that stalls now and then.
 */
import http from 'node:http';
import type net from 'node:net';
import { it, expect } from 'vitest';
import type { DispatchOutcome } from '../../src/mirror-dispatch/types.js';
import { oneThreadNode } from './thread-node.js';

const TURNS = 100;
const PER_TURN = 10;
const STREAM = TURNS * PER_TURN;
const SLOW = 80;
const TRICKLE = 20;

it('a stream of copies needs a few wake-ups, not one per turn, even a slow one; a trickle wakes the sleeping worker once per copy', async () => {
  let received = 0;
  const server = http.createServer((req, res) => { req.resume(); req.on('end', () => { received++; res.writeHead(200).end('ok'); }); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const { threads, node } = oneThreadNode(port);
  try {
    const req = { method: 'GET', uri: '/', headers: [['host', 'h']] as [string, string][], body: undefined, sizeBytes: 0 };
    const send = (): Promise<DispatchOutcome> => new Promise((r) => node.send(req, undefined, (o) => r(o)));
    const wakes = (): number => threads.handoff[0]!.wakes;
    const asleep = async (): Promise<boolean> => {
      for (let i = 0; i < 500 && !threads.handoff[0]!.asleep; i++) await new Promise((r) => setTimeout(r, 10));
      return threads.handoff[0]!.asleep;
    };

    // The worker is up (it loads its modules first: copies written meanwhile wait in the ring).
    expect(await send()).toBe('2xx');
    expect(await asleep()).toBe(true);

    // A stream: PER_TURN copies per event-loop turn.
    let before = wakes();
    const outcomes: Promise<DispatchOutcome>[] = [];
    for (let i = 0; i < TURNS; i++) {
      for (let k = 0; k < PER_TURN; k++) outcomes.push(send());
      await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all(outcomes)).toEqual(new Array(STREAM).fill('2xx'));
    // One to start, and one after each moment the stream slowed below a copy per millisecond
    // (measured: 1-5 for 1,000 copies; the policy itself is tested in shm-ring.test.ts).
    expect(wakes() - before).toBeLessThanOrEqual(STREAM / 10);

    // A slow stream, one copy per timer tick (about a millisecond): each look finds one copy at
    // most, and the worker still polls through it. (Polling started only at two copies per look
    // before: then every copy here woke it.)
    expect(await asleep()).toBe(true);
    before = wakes();
    const slow: Promise<DispatchOutcome>[] = [];
    for (let i = 0; i < SLOW; i++) {
      slow.push(send());
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(await Promise.all(slow)).toEqual(new Array(SLOW).fill('2xx'));
    expect(wakes() - before).toBeLessThanOrEqual(SLOW / 4);

    // A trickle: the worker sleeps between copies, so each one wakes it (no timer loop).
    expect(await asleep()).toBe(true);
    before = wakes();
    for (let i = 0; i < TRICKLE; i++) {
      expect(await send()).toBe('2xx');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(wakes() - before).toBeGreaterThanOrEqual(TRICKLE / 2);
    expect(await asleep()).toBe(true);
    expect(received).toBe(1 + STREAM + SLOW + TRICKLE);
  } finally {
    await threads.close();
    server.closeAllConnections();
    server.close();
  }
}, 60000);
