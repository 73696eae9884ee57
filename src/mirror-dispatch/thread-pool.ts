/**
 * Dispatch worker threads. The RPC thread keeps every target's limits, queue and circuit
 * breakers (admission is synchronous and costs no message); a ThreadNode stands for a node
 * whose connection pool lives in a worker and forwards requests there: through the worker's
 * copies ring (thread-protocol.ts) or, for the rest, in one message per event-loop turn. A
 * ring copy whose answer is thrown away is counted (sendCounted): the worker reports its node's
 * outcomes in batches and this thread keeps no record per copy. A worker that dies is
 * detected, its in-flight requests are counted as errors, and it is restarted with the same
 * nodes (the new one first, so copies started by the lost ones' callbacks reach it).
 */
import { Worker } from 'node:worker_threads';
import type { CircuitBreaker } from './circuit-breaker.js';
import { BatchFlush } from './batch-flush.js';
import { headOfRawCopy } from './copy-head.js';
import { InvalidRequestError, requestHead } from './h1/request-head.js';
import type { CountedOutcomes, DoneCallback, NodeTransport } from './http-node.js';
import { PendingTable } from './pending-table.js';
import { ByteRing } from './shm-ring.js';
import {
  COUNTED, eachDone, ownBytes, ShapeBook, writeCopy, type DoneMessage, type EachNodeOutcomes, type FromWorker, type SendMessage, type ToWorker, type WorkerData,
} from './thread-protocol.js';
import type { DispatchRequest, NodeSpec, ResponseSink, TargetSpec } from './types.js';

/**
 * A worker's young generation: 12 MiB (three 4 MiB semi-spaces) instead of V8's default, which
 * grows to 48 MiB under a steady stream of copies. Measured with `bench/rss.mjs
 * --mirror-threads 2`: 13-17 MiB less resident memory at steady state, for about 0.6 µs more
 * GC per copy (docs/performance.md, "Footprint, third pass").
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 12 };

/**
 * Ring sizes per worker: copies to it (a copy whose record does not fit, e.g. a large body,
 * goes as a message instead) and outcomes back.
 */
const COPIES_RING_BYTES = 4 * 1024 * 1024;
const DONE_RING_BYTES = 256 * 1024;

/** Ring sizes (bytes, powers of two, at least 64): the defaults above, smaller in tests of a full ring. */
export interface RingSizes {
  readonly copiesBytes: number;
  readonly doneBytes: number;
}

/**
 * Starts a worker on thread-worker: the compiled .js next to this file, or, when running from
 * the TypeScript sources (tests, `tsx`), the .ts file through tsx's loader API.
 */
function startWorker(nice: number): Worker {
  const workerData: WorkerData = { nice };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./thread-worker.js', import.meta.url), { stdout: false, stderr: false, resourceLimits: WORKER_LIMITS, workerData });
  const entry = JSON.stringify(new URL('./thread-worker.ts', import.meta.url).href);
  return new Worker(`import('tsx/esm/api').then((m) => m.tsImport(${entry}, ${entry}))`, { eval: true, stdout: false, stderr: false, resourceLimits: WORKER_LIMITS, workerData });
}

type NodeMessage = Extract<ToWorker, { t: 'node' }>;

/** A node whose ring copies are counted (sendCounted): its copies in flight and where their outcomes go. */
interface CountedNode {
  readonly id: number;
  readonly http: boolean;
  inflight: number;
  readonly report: CountedOutcomes;
}

class WorkerSlot {
  worker!: Worker;
  /** Requests sent and not answered; a ring copy's outcome may still come back as a message when the done ring is full. */
  private readonly pending = new PendingTable();
  readonly nodes = new Map<number, NodeMessage>();
  /** Nodes whose ring copies are counted, by node id. */
  private readonly counted = new Map<number, CountedNode>();
  private readonly closeWaiters = new Map<number, () => void>();
  private outbox: SendMessage[] = [];
  private transfer: ArrayBuffer[] = [];
  private readonly flusher = new BatchFlush(() => this.flush());
  private stopping = false;
  private copies!: ByteRing;
  /** The shapes written in full on the copies ring (a new ring starts a new book). */
  private shapes!: ShapeBook;
  private doneRing!: ByteRing;
  /** Copies sent through the ring whose outcome has not been read yet. */
  private ringInflight = 0;
  /** Sleeping on the done ring (the worker wakes this thread). */
  private doneWaiting = false;
  /** Inside drainDone. */
  private draining = false;
  restarts = 0;
  /** Times the worker had to be woken (an Atomics.notify) for copies written to its ring. */
  wakes = 0;
  /** Times this thread woke up for outcomes on the done ring (its sleep there ended). */
  doneWakes = 0;

  /** Whether the worker sleeps on its copies ring now (it polls while copies flow). */
  get workerAsleep(): boolean {
    return this.copies.consumerAsleep;
  }

  constructor(
    readonly index: number,
    private readonly onCrash: (index: number, reason: string, lost: number) => void,
    private readonly ringSizes: RingSizes,
    private readonly nice: number,
  ) {
    this.start();
  }

  private start(): void {
    const worker = startWorker(this.nice);
    this.worker = worker;
    this.copies = ByteRing.create(this.ringSizes.copiesBytes);
    this.shapes = new ShapeBook();
    this.doneRing = ByteRing.create(this.ringSizes.doneBytes);
    this.ringInflight = 0;
    worker.postMessage({ t: 'rings', copies: this.copies.shared, done: this.doneRing.shared } satisfies ToWorker);
    worker.unref();
    worker.on('message', (msg: FromWorker) => this.receive(msg));
    let reason = 'exited';
    worker.on('error', (err) => { reason = err.message; });
    worker.on('exit', (code) => {
      if (this.worker !== worker || this.stopping) return;
      this.crashed(`${reason} (exit code ${code})`);
    });
    for (const n of this.nodes.values()) worker.postMessage(n);
  }

  private crashed(reason: string): void {
    // Outcomes the worker wrote before it died still count as outcomes; a sleep on its done
    // ring ends (and goes on on the new worker's ring).
    this.drainDone();
    this.doneRing.wake();
    const lost = this.pending.clear();
    const lostCounted: { node: CountedNode; n: number }[] = [];
    for (const node of this.counted.values()) {
      if (node.inflight > 0) lostCounted.push({ node, n: node.inflight });
      node.inflight = 0;
    }
    const closing = [...this.closeWaiters];
    this.closeWaiters.clear();
    // Nodes being closed are not sent to the new worker: their 'closed' never comes.
    for (const [id] of closing) this.counted.delete(id);
    this.outbox = [];
    this.transfer = [];
    this.restarts++;
    // The new worker first: a copy sent from the callbacks below goes to its ring.
    this.start();
    this.onCrash(this.index, reason, lost.length + lostCounted.reduce((sum, x) => sum + x.n, 0));
    const message = `mirror thread ${this.index} died: ${reason}`;
    for (const p of lost) {
      p.sink?.onFailure('error', 'MIRROR_THREAD_CRASH');
      p.done('error', 'MIRROR_THREAD_CRASH', message);
    }
    for (const { node, n } of lostCounted) node.report('error', n, undefined, 0, 'MIRROR_THREAD_CRASH', message);
    for (const [, resolve] of closing) resolve();
  }

  /**
   * Reads the outcomes the worker wrote to the done ring; returns how many. An outcome's
   * callback may send a queued copy or close a node, which would read the ring again from
   * the record being read, whose id may belong to the copy just sent: a nested call reads
   * nothing (the outer one goes on to the end).
   */
  private drainDone(): number {
    if (this.draining) return 0;
    const ring = this.doneRing;
    const ints = ring.ints;
    this.draining = true;
    try {
      return ring.drain((bytes, at) => eachDone(bytes, ints, at, this.settleFromRing, this.settleCounted));
    } finally {
      this.draining = false;
    }
  }

  /**
   * While ring copies are out, sleeps on the done ring; the worker wakes this thread at once
   * for outcomes of copies that came slowly, and only for outcomes left unread for a
   * millisecond while copies stream, since each copy sent reads the ring first
   * (sentThroughRing). So a stream of copies costs this thread neither a timer nor a wake-up
   * (thread-worker.ts, outcomesWritten; docs/performance.md, "Mirror dispatch, sixth pass").
   */
  private awaitDone(): void {
    if (this.doneWaiting || this.ringInflight === 0 || this.stopping) return;
    this.doneWaiting = true;
    const ring = this.doneRing;
    void ring.sleep().then(() => {
      this.doneWaiting = false;
      this.doneWakes++;
      // A worker that crashed meanwhile has a new ring: wait on that one.
      if (ring === this.doneRing) this.drainDone();
      this.awaitDone();
    });
  }

  private readonly settleFromRing = (r: number, o: DoneMessage['o'], c: string | undefined, e: string | undefined): void => {
    this.settle(r, o, c, e, undefined);
  };

  /**
   * A node's counted outcomes (done ring or message): settled together. Never more than the
   * node has in flight: a dead worker's last message, read after its copies were counted as
   * lost, settles nothing.
   */
  private readonly settleCounted: EachNodeOutcomes = (nodeId, o, n, micros, first, c, e) => {
    const node = this.counted.get(nodeId);
    const k = node === undefined ? 0 : Math.min(n, node.inflight);
    if (k <= 0) return;
    node!.inflight -= k;
    this.ringInflight -= k;
    node!.report(o, k, micros, first, c, e);
  };

  private settle(r: number, o: DoneMessage['o'], c: string | undefined, e: string | undefined, s: DoneMessage['s']): void {
    const pending = this.pending;
    if (!pending.has(r)) return;
    const done = pending.done(r);
    const sink = pending.sink(r);
    if (pending.isRing(r)) this.ringInflight--;
    if (sink && s) {
      sink.onResponse({
        status: s.status, headers: s.headers, body: Buffer.from(s.body.buffer, s.body.byteOffset, s.body.byteLength),
        truncated: s.truncated, bodyBytes: s.bodyBytes, bodySha256: s.bodySha256, node: pending.node(r),
      });
    } else if (sink && c !== undefined) {
      sink.onFailure(o, c);
    }
    pending.release(r);
    done(o, c, e);
  }

  private receive(msg: FromWorker): void {
    // Outcomes in the ring were written before this message was sent ('closed' must see them).
    this.drainDone();
    if (msg.t === 'closed') {
      this.counted.delete(msg.id);
      this.closeWaiters.get(msg.id)?.();
      this.closeWaiters.delete(msg.id);
      return;
    }
    if (msg.t === 'counted') {
      this.settleCounted(msg.n, msg.o, msg.us.length, msg.us, 0, msg.c, msg.e);
      return;
    }
    for (const d of msg.batch) this.settle(d.r, d.o, d.c, d.e, d.s);
  }

  /** Adds a node; with `report`, its ring copies may be counted (sendCounted): returns its entry. */
  addNode(msg: NodeMessage, report: CountedOutcomes | undefined): CountedNode | undefined {
    this.nodes.set(msg.id, msg);
    this.worker.postMessage(msg);
    if (!report) return undefined;
    const node: CountedNode = { id: msg.id, http: msg.target.protocol === 'http', inflight: 0, report };
    this.counted.set(msg.id, node);
    return node;
  }

  /**
   * An HTTP copy whose answer is thrown away, through the ring with no request id: its outcome
   * comes back counted with its node's others (thread-worker.ts, countedDone), so this thread
   * keeps no record and calls no callback per copy. False when it does not fit the ring now
   * (or its head cannot be built here): the caller sends it with a callback instead.
   */
  sendCounted(node: CountedNode, req: DispatchRequest): boolean {
    if (!node.http) return false;
    let written: boolean;
    if (req.raw) {
      written = writeCopy(this.copies, node.id, COUNTED, req.method, req.raw, req.uri, req.body, this.shapes);
    } else {
      let head: string | Buffer;
      try {
        head = req.head ?? requestHead(req.method, req.uri, req.headers, req.body?.length, this.nodes.get(node.id)!.node.authority);
      } catch {
        return false;
      }
      written = writeCopy(this.copies, node.id, COUNTED, req.method, head, '', req.body);
    }
    if (!written) return false;
    node.inflight++;
    this.sentThroughRing();
    return true;
  }

  send(nodeId: number, node: string, req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void {
    const spec = this.nodes.get(nodeId);
    const http = spec !== undefined && spec.target.protocol === 'http';
    // A raw copy (header bytes and edits) goes through the ring as bytes and its head is built
    // in the worker: all the RPC thread does is copy bytes.
    if (http && req.raw && !sink) {
      const r = this.pending.add(done, sink, node, true);
      if (writeCopy(this.copies, nodeId, r, req.method, req.raw, req.uri, req.body, this.shapes)) {
        this.sentThroughRing();
        return;
      }
      this.pending.release(r);
    }
    // Otherwise an HTTP request travels as its head, one string or buffer (cheaper to clone
    // than the header list); one that may not be written is refused here, without a message.
    let head: string | Buffer | undefined;
    let flat: string[] | undefined;
    if (http && req.head) {
      head = req.head;
    } else if (http) {
      try {
        head = req.raw
          ? headOfRawCopy(req.raw, req.method, req.uri, req.body?.length, spec.node.authority)
          : requestHead(req.method, req.uri, req.headers, req.body?.length, spec.node.authority);
      } catch (err) {
        const code = err instanceof InvalidRequestError ? err.code : 'INVALID_REQUEST';
        sink?.onFailure('error', code);
        done('error', code, err instanceof Error ? err.message : String(err));
        return;
      }
    } else {
      flat = [];
      for (const [n, v] of req.headers) flat.push(n, v);
    }
    const r = this.pending.add(done, sink, node, false);
    // A copy whose answer is thrown away goes through the ring: no message, no clone.
    if (head !== undefined && !sink && writeCopy(this.copies, nodeId, r, req.method, head, '', req.body)) {
      this.pending.markRing(r);
      this.sentThroughRing();
      return;
    }
    let b: Uint8Array | undefined;
    if (req.body && req.body.byteLength > 0) {
      b = ownBytes(req.body);
      this.transfer.push(b.buffer as ArrayBuffer);
    } else if (req.body) {
      b = new Uint8Array(0);
    }
    let g: Uint8Array[] | undefined;
    if (req.grpcMessages) {
      g = req.grpcMessages.map((m) => ownBytes(m));
      for (const x of g) this.transfer.push(x.buffer as ArrayBuffer);
    }
    this.outbox.push({ n: nodeId, r, m: req.method, u: req.uri, h: flat, hd: typeof head === 'string' || head === undefined ? head : ownBytes(head), b, g, k: sink?.maxBodyBytes });
    // One message per event-loop turn: the copies of every reply written in this turn.
    this.flusher.added();
  }

  /**
   * A copy is in the ring: nothing is scheduled here (no flush per turn). A worker that sleeps
   * on the ring is woken at once (one Atomics.notify); under load the worker polls the ring
   * and this costs an atomic load (thread-worker.ts, consume).
   */
  private sentThroughRing(): void {
    this.ringInflight++;
    if (this.copies.wake()) this.wakes++;
    // Outcomes ready by now are read here: while copies stream, this is how they are read.
    if (this.doneRing.used !== 0) this.drainDone();
    this.awaitDone();
  }

  private flush(): void {
    // Outcomes are read here too: a 'send' message is handled after the ring's earlier copies.
    this.drainDone();
    this.awaitDone();
    if (this.outbox.length === 0) return;
    const msg: ToWorker = { t: 'send', batch: this.outbox };
    this.worker.postMessage(msg, this.transfer);
    this.outbox = [];
    this.transfer = [];
  }

  closeNode(id: number, graceMs: number): Promise<void> {
    this.flusher.now();
    this.nodes.delete(id);
    return new Promise<void>((resolve) => {
      this.closeWaiters.set(id, resolve);
      this.worker.postMessage({ t: 'close', id, graceMs } satisfies ToWorker);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.flusher.cancel();
    this.doneRing.wake();
    await this.worker.terminate();
  }
}

/** A node whose transport lives in a worker thread. */
class ThreadNode implements NodeTransport {
  constructor(
    readonly spec: NodeSpec,
    readonly breaker: CircuitBreaker,
    private readonly slot: WorkerSlot,
    private readonly id: number,
    private readonly counted: CountedNode | undefined,
  ) {}

  send(req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void {
    this.slot.send(this.id, this.spec.label, req, sink, done);
  }

  sendCounted(req: DispatchRequest): boolean {
    return this.counted !== undefined && this.slot.sendCounted(this.counted, req);
  }

  close(graceMs: number): Promise<void> {
    return this.slot.closeNode(this.id, graceMs);
  }
}

export class DispatchThreads {
  private readonly slots: WorkerSlot[] = [];
  private nextSlot = 0;
  private nextNode = 0;

  /** Workers start with the first node, so a runner without mirror targets starts none. */
  constructor(
    private readonly count: number,
    private readonly onCrash: (index: number, reason: string, lost: number) => void,
    private readonly ringSizes: RingSizes = { copiesBytes: COPIES_RING_BYTES, doneBytes: DONE_RING_BYTES },
    /** Nice value each worker gives itself on Linux (thread-worker.ts); 0: none. */
    private readonly nice = 0,
  ) {}

  /**
   * Creates a node in the next worker (round robin). With `counted`, its copies sent by
   * sendCounted report their outcomes there, in batches.
   */
  createNode(node: NodeSpec, target: TargetSpec, breaker: CircuitBreaker, tlsName: string | undefined, counted?: CountedOutcomes): NodeTransport {
    if (this.slots.length === 0) for (let i = 0; i < this.count; i++) this.slots.push(new WorkerSlot(i, this.onCrash, this.ringSizes, this.nice));
    const slot = this.slots[this.nextSlot++ % this.slots.length]!;
    const id = this.nextNode++;
    const entry = slot.addNode({ t: 'node', id, node, target, tlsName }, counted);
    return new ThreadNode(node, breaker, slot, id, entry);
  }

  /** The worker threads (for diagnostics and tests). */
  get workers(): readonly Worker[] {
    return this.slots.map((s) => s.worker);
  }

  /**
   * Per worker: wake-ups it needed for copies so far, whether it sleeps now, and the times
   * this thread woke up for its outcomes (diagnostics, tests).
   */
  get handoff(): ReadonlyArray<{ readonly wakes: number; readonly asleep: boolean; readonly doneWakes: number }> {
    return this.slots.map((s) => ({ wakes: s.wakes, asleep: s.workerAsleep, doneWakes: s.doneWakes }));
  }

  /** Restarts so far, all workers together. */
  get restarts(): number {
    return this.slots.reduce((n, s) => n + s.restarts, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.stop()));
  }
}
