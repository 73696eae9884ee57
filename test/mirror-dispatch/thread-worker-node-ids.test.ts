/**
 * A dispatch worker thread (thread-worker.ts) driven as the RPC thread drives it: its two rings
 * and its messages, with the real worker, a real HTTP server and real ring bytes. How it tells a
 * copy that came before its node's 'node' message (held, then sent) from one that came after
 * the node was closed, or for an id it never had (an error at once, NO_NODE), without keeping
 * anything per closed node.
 */
import http from 'node:http';
import type net from 'node:net';
import { Worker } from 'node:worker_threads';
import { afterEach, expect, it } from 'vitest';
import { ByteRing } from '../../src/mirror-dispatch/shm-ring.js';
import { COUNTED, ShapeBook, eachDone, writeCopy, type FromWorker, type ToWorker } from '../../src/mirror-dispatch/thread-protocol.js';
import { localTargetSpec } from './target-spec.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function startWorker(): Worker {
  // As thread-pool.ts starts it from the TypeScript sources.
  const entry = JSON.stringify(new URL('../../src/mirror-dispatch/thread-worker.ts', import.meta.url).href);
  return new Worker(`import('tsx/esm/api').then((m) => m.tsImport(${entry}, ${entry}))`, { eval: true });
}

interface Outcome { outcome: string; code: string | undefined; message: string | undefined }

it('holds a copy for a node not announced yet, and fails one for a closed node or an id below the highest announced', async () => {
  const seen: string[] = [];
  const server = http.createServer((req, res) => { seen.push(req.url!); req.resume(); req.on('end', () => res.end('ok')); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const port = (server.address() as net.AddressInfo).port;
  const spec = localTargetSpec(port);

  const worker = startWorker();
  cleanups.push(async () => { await worker.terminate(); });
  const copies = ByteRing.create(64 * 1024);
  const done = ByteRing.create(64 * 1024);
  const closed = new Set<number>();
  const outcomes = new Map<number, Outcome>();
  worker.on('message', (m: FromWorker) => {
    if (m.t === 'closed') closed.add(m.id);
    // Outcomes that did not fit the done ring come as messages (not expected with this ring).
    if (m.t === 'done') for (const d of m.batch) outcomes.set(d.r, { outcome: d.o, code: d.c, message: d.e });
  });
  const post = (m: ToWorker): void => worker.postMessage(m);
  post({ t: 'rings', copies: copies.shared, done: done.shared });
  const announce = (id: number): void => post({ t: 'node', id, node: spec.nodes[0]!, target: spec, tlsName: undefined });
  const send = (nodeId: number, reqId: number, path: string): void => {
    expect(writeCopy(copies, nodeId, reqId, 'GET', `GET ${path} HTTP/1.1\r\nhost: h\r\n\r\n`, path, undefined)).toBe(true);
    copies.wake();
  };
  /** The outcome of request `reqId`, read from the done ring as the RPC thread reads it (bounded wait). */
  const outcomeOf = async (reqId: number): Promise<Outcome> => {
    for (let i = 0; i < 500 && !outcomes.has(reqId); i++) {
      done.drain((bytes, at) => eachDone(bytes, done.ints, at, (r, outcome, code, message) => outcomes.set(r, { outcome, code, message })));
      if (!outcomes.has(reqId)) await new Promise((r) => setTimeout(r, 10));
    }
    const got = outcomes.get(reqId);
    if (!got) throw new Error(`no outcome for request ${reqId} within 5 s`);
    return got;
  };

  // Node 5's copy comes before its message: held, and sent once the message is read.
  send(5, 1, '/early');
  await new Promise((r) => setTimeout(r, 50));
  expect(outcomes.has(1)).toBe(false);
  announce(5);
  expect((await outcomeOf(1)).outcome).toBe('2xx');

  // An id below the highest announced that this thread never had: refused at once, not held.
  send(2, 2, '/never-announced');
  expect(await outcomeOf(2)).toMatchObject({ outcome: 'error', code: 'NO_NODE' });

  // After node 5 is closed, a late copy for it is refused.
  post({ t: 'close', id: 5, graceMs: 0 });
  for (let i = 0; i < 500 && !closed.has(5); i++) await new Promise((r) => setTimeout(r, 10));
  expect(closed.has(5)).toBe(true);
  send(5, 3, '/late');
  expect(await outcomeOf(3)).toMatchObject({ outcome: 'error', code: 'NO_NODE' });

  // A higher id is still early: held until its message, then sent.
  send(9, 4, '/later-node');
  await new Promise((r) => setTimeout(r, 50));
  expect(outcomes.has(4)).toBe(false);
  announce(9);
  expect((await outcomeOf(4)).outcome).toBe('2xx');

  expect(seen).toEqual(['/early', '/later-node']);
}, 30_000);

it('fails a ring record it cannot read (BAD_RING_RECORD), counted or not, and goes on with the next copies', async () => {
  const seen: string[] = [];
  const server = http.createServer((req, res) => { seen.push(req.url!); req.resume(); req.on('end', () => res.end('ok')); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const spec = localTargetSpec((server.address() as net.AddressInfo).port);

  const worker = startWorker();
  cleanups.push(async () => { await worker.terminate(); });
  const copies = ByteRing.create(64 * 1024);
  const done = ByteRing.create(64 * 1024);
  const post = (m: ToWorker): void => worker.postMessage(m);
  post({ t: 'rings', copies: copies.shared, done: done.shared });
  post({ t: 'node', id: 1, node: spec.nodes[0]!, target: spec, tlsName: undefined });

  // A book that believes the conf's shape was already written: its records carry the shape's id
  // alone, which this worker's ring never carried in full (the mismatch BadRecordError names).
  const book = new ShapeBook();
  const edits = { headersSet: [], headersRemove: new Set<string>(), markHeader: undefined, correlationHeader: undefined };
  const raw = { bytes: Buffer.from('call'), spans: [], edits, correlationId: undefined, uriRule: undefined };
  expect(writeCopy(ByteRing.create(4096), 1, 1, 'GET', raw, '/', undefined, book)).toBe(true);
  expect(writeCopy(copies, 1, 7, 'GET', raw, '/unreadable', undefined, book)).toBe(true);
  expect(writeCopy(copies, 1, COUNTED, 'GET', raw, '/unreadable-counted', undefined, book)).toBe(true);
  expect(writeCopy(copies, 1, 8, 'GET', 'GET /after HTTP/1.1\r\nhost: h\r\n\r\n', '/after', undefined)).toBe(true);
  copies.wake();

  const outcomes = new Map<number, { outcome: string; code: string | undefined }>();
  const counted: Array<{ nodeId: number; outcome: string; n: number; code: string | undefined }> = [];
  for (let i = 0; i < 500 && !(outcomes.has(7) && outcomes.has(8) && counted.length > 0); i++) {
    done.drain((bytes, at) => eachDone(bytes, done.ints, at,
      (r, outcome, code) => outcomes.set(r, { outcome, code }),
      (nodeId, outcome, n, _src, _first, code) => counted.push({ nodeId, outcome, n, code })));
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(outcomes.get(7)).toEqual({ outcome: 'error', code: 'BAD_RING_RECORD' });
  expect(counted).toContainEqual({ nodeId: 1, outcome: 'error', n: 1, code: 'BAD_RING_RECORD' });
  // The thread went on: the copy behind them was sent and answered; the unreadable ones never left.
  expect(outcomes.get(8)?.outcome).toBe('2xx');
  expect(seen).toEqual(['/after']);
}, 30_000);
