/**
 * Outcomes through a worker's done ring reach the copy they belong to, when copies are sent
 * from inside outcome callbacks (a target's queue starts its next copy there). The RPC thread
 * reads the done ring each time it sends a copy (thread-pool.ts, sentThroughRing) and request
 * ids are reused slots (pending-table.ts): a read of the ring nested in a read would take the
 * record being read a second time and settle, with it, the copy that just took its id.
 * Each copy's path decides its answer (404 or 200), so a misplaced outcome shows.
 */
import http from 'node:http';
import type net from 'node:net';
import { it, expect } from 'vitest';
import type { DispatchOutcome } from '../../src/mirror-dispatch/types.js';
import { oneThreadNode } from './thread-node.js';

const CHAINS = 16;
const LENGTH = 60;

it('copies sent from outcome callbacks each get their own outcome, once', async () => {
  let received = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => { received++; res.writeHead(req.url!.startsWith('/missing') ? 404 : 200).end(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const { threads, node } = oneThreadNode(port);
  try {
    const wrong: string[] = [];
    const outcomes = new Map<string, DispatchOutcome[]>();
    const chain = (c: number): Promise<void> => new Promise((finish) => {
      const next = (k: number): void => {
        if (k === LENGTH) return finish();
        const uri = `/${(c + k) % 3 === 0 ? 'missing' : 'ok'}/${c}/${k}`;
        const expected: DispatchOutcome = uri.startsWith('/missing') ? '4xx' : '2xx';
        const req = { method: 'GET', uri, headers: [['host', 'h']] as [string, string][], body: undefined, sizeBytes: 0 };
        node.send(req, undefined, (o) => {
          const seen = outcomes.get(uri) ?? [];
          seen.push(o);
          outcomes.set(uri, seen);
          if (o !== expected) wrong.push(`${uri}: ${o}`);
          // The next copy of this chain, sent from inside the outcome's callback.
          next(k + 1);
        });
      };
      next(0);
    });
    await Promise.all(Array.from({ length: CHAINS }, (_, c) => chain(c)));
    expect(wrong).toEqual([]);
    expect(outcomes.size).toBe(CHAINS * LENGTH);
    expect([...outcomes.values()].every((o) => o.length === 1)).toBe(true);
    expect(received).toBe(CHAINS * LENGTH);
  } finally {
    await threads.close();
    server.closeAllConnections();
    server.close();
  }
}, 60000);
