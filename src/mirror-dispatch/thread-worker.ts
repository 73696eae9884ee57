/**
 * Entry of a dispatch worker thread: owns the nodes' connection pools (HttpNode / GrpcNode)
 * and sends what the RPC thread hands it, answering with outcomes in batches.
 */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { CircuitBreaker } from './circuit-breaker.js';
import { GrpcNode } from './grpc-node.js';
import { HttpNode, type NodeTransport } from './http-node.js';
import { headOfRawCopy } from './copy-head.js';
import { InvalidRequestError } from './h1/request-head.js';
import { ByteRing, LookPacer, StaleWaker } from './shm-ring.js';
import {
  BadRecordError, isCountedRecord, readCopy, ShapeTable, writeDone, writeOutcomes, type DoneMessage, type FromWorker, type RingCopy, type ToWorker, type WorkerData,
} from './thread-protocol.js';
import type { DispatchOutcome, DispatchRequest, ResponseSink } from './types.js';

const port = parentPort;
if (!port) throw new Error('thread-worker.ts runs only as a worker thread');

// Below the RPC thread's priority (mirror_thread_nice): on Linux a nice value belongs to a thread,
// and setpriority(PRIO_PROCESS, 0) sets the calling one's. Elsewhere it would set the whole
// process's, RPC thread included, so it is not done. Raising one's own nice value needs no
// privilege; if a sandbox refuses it anyway, the thread runs at the process's priority.
const nice = (workerData as WorkerData | undefined)?.nice ?? 0;
if (nice > 0 && process.platform === 'linux') {
  try {
    setPriority(nice);
  } catch {
    // left at the process's priority
  }
}

const now = (): number => performance.now();
const nodes = new Map<number, NodeTransport>();
let outbox: DoneMessage[] = [];
const transfer: ArrayBuffer[] = [];
let flushing = false;

let copies: ByteRing | undefined;
let doneRing: ByteRing | undefined;
let doneWritten = false;
/** Copies from the ring for a node whose 'node' message has not been read yet. */
const early = new Map<number, RingCopy[]>();
/**
 * The highest node id announced to this thread. The RPC thread numbers nodes in increasing order
 * and never reuses an id, and posts their 'node' messages in that order (on a restart too:
 * thread-pool.ts re-posts its nodes in insertion order). So a ring copy for an id above it is
 * early (its message is on the way), and one for an id at or below it whose node is not here
 * is late (the node was closed) or not this thread's: an error. No state is kept per closed
 * node, so a target whose DNS addresses change every few seconds for months leaves nothing behind.
 */
let announced = -1;

/**
 * How the RPC thread learns of outcomes (thread-pool.ts, awaitDone). It reads the done ring
 * each time it sends a copy, and otherwise sleeps on it. While copies come slowly (a few ms apart: this
 * worker sleeps between them) each batch of outcomes wakes it at once. While they stream
 * (this worker polls), its next copies read them: it is woken only for outcomes it left
 * unread for POLL_MS (the copies stopped), at most once per POLL_MS, so a stream costs the
 * RPC thread neither wake-ups nor a timer (docs/performance.md, "Mirror dispatch, sixth pass").
 */
let doneWaker: StaleWaker | undefined;

function outcomesWritten(): void {
  // Copies come slowly: the RPC thread sends none that would read these outcomes soon.
  doneWaker!.written(!copiesPacer.polling);
}

/**
 * Outcomes of counted copies that ended without an error code, by node and outcome: their
 * durations in microseconds, written to the done ring as one record each at the end of the
 * turn (writeOutcomes), so the RPC thread settles them together.
 */
const counted = new Map<number, Map<DispatchOutcome, number[]>>();

function countedDone(nodeId: number, o: DispatchOutcome, micros: number, c: string | undefined, e: string | undefined): void {
  if (c === undefined) {
    let byOutcome = counted.get(nodeId);
    if (!byOutcome) counted.set(nodeId, (byOutcome = new Map()));
    const list = byOutcome.get(o);
    if (list) list.push(micros);
    else byOutcome.set(o, [micros]);
    scheduleFlush();
    return;
  }
  // A failure is written at once, after the outcomes before it: the RPC thread's circuit
  // breaker counts failures in a row.
  writeCounted();
  writeNodeOutcomes(nodeId, o, [micros], c, e);
}

/** Writes the counted outcomes gathered so far. */
function writeCounted(): void {
  if (counted.size === 0) return;
  for (const [nodeId, byOutcome] of counted) {
    for (const [o, micros] of byOutcome) writeNodeOutcomes(nodeId, o, micros, undefined, undefined);
  }
  counted.clear();
}

function writeNodeOutcomes(nodeId: number, o: DispatchOutcome, micros: number[], c: string | undefined, e: string | undefined): void {
  if (writeOutcomes(doneRing!, nodeId, o, micros, c, e)) {
    doneWritten = true;
    scheduleFlush();
  } else {
    port!.postMessage({ t: 'counted', n: nodeId, o, us: micros, c, e } satisfies FromWorker);
  }
}

function flush(): void {
  flushing = false;
  writeCounted();
  if (doneWritten) {
    doneWritten = false;
    outcomesWritten();
  }
  if (outbox.length === 0) return;
  const msg: FromWorker = { t: 'done', batch: outbox };
  port!.postMessage(msg, transfer.splice(0));
  outbox = [];
}

function report(d: DoneMessage, body?: ArrayBuffer): void {
  outbox.push(d);
  if (body) transfer.push(body);
  scheduleFlush();
}

function scheduleFlush(): void {
  if (!flushing) {
    flushing = true;
    setImmediate(flush);
  }
}

/** An outcome of a copy that came through the ring: back through the done ring (or a message when it is full). */
function ringDone(reqId: number, o: DispatchOutcome, c?: string, e?: string): void {
  if (writeDone(doneRing!, reqId, o, c, e)) {
    doneWritten = true;
    scheduleFlush();
  } else {
    report({ r: reqId, o, c, e, s: undefined });
  }
}

function sendFromRing(copy: RingCopy): void {
  if (copy.counted) {
    const nodeId = copy.nodeId;
    const sentAt = now();
    sendRingCopy(copy, (o, c, e) => countedDone(nodeId, o, Math.round((now() - sentAt) * 1000), c, e));
  } else {
    const reqId = copy.reqId;
    sendRingCopy(copy, (o, c, e) => ringDone(reqId, o, c, e));
  }
}

function sendRingCopy(copy: RingCopy, done: (o: DispatchOutcome, c?: string, e?: string) => void): void {
  const node = nodes.get(copy.nodeId);
  if (node instanceof HttpNode) {
    let head: string | Buffer;
    if (Buffer.isBuffer(copy.head)) {
      head = copy.head;
    } else {
      // A raw copy: its head is built here, off the RPC thread (copy-head.ts).
      try {
        head = headOfRawCopy(copy.head, copy.method, copy.uri, copy.body?.length, node.spec.authority);
      } catch (err) {
        const code = err instanceof InvalidRequestError ? err.code : 'INVALID_REQUEST';
        done('error', code, err instanceof Error ? err.message : String(err));
        return;
      }
    }
    node.sendHead(head, copy.method, copy.body, undefined, done);
  } else if (node || copy.nodeId <= announced) {
    done('error', 'NO_NODE', `node ${copy.nodeId} not an HTTP node of this thread (closed, or another thread's)`);
  } else {
    // Written to the ring before the node's message was read here: sent when it is.
    let list = early.get(copy.nodeId);
    if (!list) early.set(copy.nodeId, (list = []));
    list.push(copy);
  }
}

/** The shapes (conf edits and URI rules) written in full on the copies ring so far. */
let shapes = new ShapeTable();

function drainCopies(): number {
  if (!copies) return 0;
  const ints = copies.ints;
  return copies.drain((bytes, at) => {
    let copy: RingCopy;
    try {
      copy = readCopy(bytes, ints, at, shapes);
    } catch (err) {
      // Not expected (both ends follow ShapeBook): fail this copy, keep the thread.
      if (!(err instanceof BadRecordError)) throw err;
      failRecord(ints, at, err);
      return;
    }
    sendFromRing(copy);
  });
}

/** The outcome of a copy record that could not be read: an error, reported as its kind says. */
function failRecord(ints: Int32Array, at: number, err: BadRecordError): void {
  const i = at >> 2;
  const nodeId = ints[i]! >>> 0;
  if (isCountedRecord(ints, at)) countedDone(nodeId, 'error', 0, err.code, err.message);
  else ringDone(ints[i + 1]! >>> 0, 'error', err.code, err.message);
}

/**
 * How the worker waits for copies (shm-ring.ts LookPacer). A look that found copies is followed
 * by another in POLL_MS by the worker's own timer, and so on until COOL_LOOKS looks in a row
 * found none: while copies come, even a few per millisecond, the RPC thread never has to wake
 * it. Waking a thread on another core cost the RPC thread 3-5 µs per wake-up on this project's
 * VM. Then it sleeps on the ring (`Atomics.waitAsync`) until the RPC thread's next copy wakes
 * it (docs/performance.md, "Mirror dispatch, fifth pass" to "seventh pass").
 */
const POLL_MS = 1;

/** How this worker waits for copies (module-wide: outcomesWritten asks whether it polls). */
const copiesPacer = new LookPacer();

async function consume(): Promise<void> {
  for (;;) {
    const next = copiesPacer.next(drainCopies());
    if (next === 'timer') await new Promise<void>((r) => setTimeout(r, POLL_MS));
    else await copies!.sleep();
  }
}

port.on('message', (msg: ToWorker) => {
  // Copies written before this message was sent come first (a 'close' must see them).
  if (msg.t !== 'rings') drainCopies();
  switch (msg.t) {
    case 'rings':
      copies = new ByteRing(msg.copies);
      shapes = new ShapeTable();
      doneRing = new ByteRing(msg.done);
      doneWaker = new StaleWaker(doneRing, (check) => setTimeout(check, POLL_MS));
      void consume();
      break;
    case 'node': {
      // The breaker lives on the RPC thread; this one is only there to satisfy the interface.
      const breaker = new CircuitBreaker({ failures: 1, baseMs: 1, maxMs: 1 }, now, Math.random);
      if (msg.id > announced) announced = msg.id;
      nodes.set(msg.id, msg.target.protocol === 'grpc'
        ? new GrpcNode(msg.node, msg.target, breaker)
        : new HttpNode(msg.node, msg.target, breaker, now, msg.tlsName));
      const waiting = early.get(msg.id);
      if (waiting) {
        early.delete(msg.id);
        for (const c of waiting) sendFromRing(c);
      }
      break;
    }
    case 'send':
      for (const s of msg.batch) {
        const node = nodes.get(s.n);
        if (!node) {
          report({ r: s.r, o: 'error', c: 'NO_NODE', e: `node ${s.n} not in this thread`, s: undefined });
          continue;
        }
        const headers: [string, string][] = [];
        if (s.h) for (let i = 0; i < s.h.length; i += 2) headers.push([s.h[i]!, s.h[i + 1]!]);
        const body = s.b ? Buffer.from(s.b.buffer, s.b.byteOffset, s.b.byteLength) : undefined;
        const req: DispatchRequest = {
          method: s.m, uri: s.u, headers, body, sizeBytes: 0,
          ...(s.g ? { grpcMessages: s.g.map((g) => Buffer.from(g.buffer, g.byteOffset, g.byteLength)) } : {}),
        };
        let answer: DoneMessage['s'];
        let answerBytes: ArrayBuffer | undefined;
        const sink: ResponseSink | undefined = s.k === undefined ? undefined : {
          maxBodyBytes: s.k,
          onResponse: (r) => {
            const own = new Uint8Array(r.body.byteLength);
            own.set(r.body);
            answerBytes = own.buffer;
            answer = { status: r.status, headers: { ...r.headers }, body: own, truncated: r.truncated, bodyBytes: r.bodyBytes, bodySha256: r.bodySha256 };
          },
          onFailure: () => undefined,
        };
        const done = (o: DispatchOutcome, c?: string, e?: string): void => report({ r: s.r, o, c, e, s: answer }, answerBytes);
        if (s.hd !== undefined && node instanceof HttpNode) node.sendHead(typeof s.hd === 'string' ? s.hd : Buffer.from(s.hd.buffer, s.hd.byteOffset, s.hd.byteLength), s.m, body, sink, done);
        else node.send(req, sink, done);
      }
      break;
    case 'close': {
      const node = nodes.get(msg.id);
      nodes.delete(msg.id);
      void (node ? node.close(msg.graceMs) : Promise.resolve()).then(() => {
        // The node's last outcomes go before 'closed' (the RPC thread reads the ring first).
        writeCounted();
        port.postMessage({ t: 'closed', id: msg.id } satisfies FromWorker);
      });
      break;
    }
  }
});
