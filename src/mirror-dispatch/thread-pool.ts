/**
 * Dispatch worker threads. The RPC thread keeps every target's limits, queue and circuit
 * breakers (admission is synchronous and costs no message); a ThreadNode stands for a node
 * whose connection pool lives in a worker and forwards requests there in one batch per
 * event-loop turn. A worker that dies is detected, its in-flight requests are counted as
 * errors, and it is restarted with the same nodes.
 */
import { Worker } from 'node:worker_threads';
import type { CircuitBreaker } from './circuit-breaker.js';
import { BatchFlush } from './batch-flush.js';
import { InvalidRequestError, requestHead } from './h1/request-head.js';
import type { DoneCallback, NodeTransport } from './http-node.js';
import { ownBytes, type FromWorker, type SendMessage, type ToWorker } from './thread-protocol.js';
import type { DispatchRequest, NodeSpec, ResponseSink, TargetSpec } from './types.js';

/**
 * A worker's young generation: 12 MiB (three 4 MiB semi-spaces) instead of V8's default, which
 * grows to 48 MiB under a steady stream of copies. Measured with `bench/rss.mjs
 * --mirror-threads 2`: 13-17 MiB less resident memory at steady state, for about 0.6 µs more
 * GC per copy (docs/performance.md, "Footprint, third pass").
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 12 };

/**
 * Starts a worker on thread-worker: the compiled .js next to this file, or, when running from
 * the TypeScript sources (tests, `tsx`), the .ts file through tsx's loader API.
 */
function startWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./thread-worker.js', import.meta.url), { stdout: false, stderr: false, resourceLimits: WORKER_LIMITS });
  const entry = JSON.stringify(new URL('./thread-worker.ts', import.meta.url).href);
  return new Worker(`import('tsx/esm/api').then((m) => m.tsImport(${entry}, ${entry}))`, { eval: true, stdout: false, stderr: false, resourceLimits: WORKER_LIMITS });
}

interface Pending {
  readonly done: DoneCallback;
  readonly sink: ResponseSink | undefined;
  readonly node: string;
}

type NodeMessage = Extract<ToWorker, { t: 'node' }>;

class WorkerSlot {
  worker!: Worker;
  private readonly pending = new Map<number, Pending>();
  readonly nodes = new Map<number, NodeMessage>();
  private readonly closeWaiters = new Map<number, () => void>();
  private outbox: SendMessage[] = [];
  private transfer: ArrayBuffer[] = [];
  private readonly flusher = new BatchFlush(() => this.flush());
  private nextReq = 0;
  private stopping = false;
  restarts = 0;

  constructor(readonly index: number, private readonly onCrash: (index: number, reason: string, lost: number) => void) {
    this.start();
  }

  private start(): void {
    const worker = startWorker();
    this.worker = worker;
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
    const lost = [...this.pending.values()];
    this.pending.clear();
    this.outbox = [];
    this.transfer = [];
    this.restarts++;
    this.onCrash(this.index, reason, lost.length);
    for (const p of lost) {
      p.sink?.onFailure('error', 'MIRROR_THREAD_CRASH');
      p.done('error', 'MIRROR_THREAD_CRASH', `mirror thread ${this.index} died: ${reason}`);
    }
    for (const resolve of this.closeWaiters.values()) resolve();
    this.closeWaiters.clear();
    this.start();
  }

  private receive(msg: FromWorker): void {
    if (msg.t === 'closed') {
      this.closeWaiters.get(msg.id)?.();
      this.closeWaiters.delete(msg.id);
      return;
    }
    for (const d of msg.batch) {
      const p = this.pending.get(d.r);
      if (!p) continue;
      this.pending.delete(d.r);
      if (p.sink && d.s) {
        p.sink.onResponse({
          status: d.s.status, headers: d.s.headers, body: Buffer.from(d.s.body.buffer, d.s.body.byteOffset, d.s.body.byteLength),
          truncated: d.s.truncated, bodyBytes: d.s.bodyBytes, bodySha256: d.s.bodySha256, node: p.node,
        });
      } else if (p.sink && d.c !== undefined) {
        p.sink.onFailure(d.o, d.c);
      }
      p.done(d.o, d.c, d.e);
    }
  }

  addNode(msg: NodeMessage): void {
    this.nodes.set(msg.id, msg);
    this.worker.postMessage(msg);
  }

  send(nodeId: number, node: string, req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void {
    // An HTTP request travels as its head, one string (cheaper to clone than the header list);
    // one that may not be written is refused here, without a message.
    let head: string | undefined;
    let flat: string[] | undefined;
    const spec = this.nodes.get(nodeId);
    if (spec && spec.target.protocol === 'http') {
      try {
        head = requestHead(req.method, req.uri, req.headers, req.body?.length, spec.node.authority);
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
    const r = this.nextReq++;
    this.pending.set(r, { done, sink, node });
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
    this.outbox.push({ n: nodeId, r, m: req.method, u: req.uri, h: flat, hd: head, b, g, k: sink?.maxBodyBytes });
    // One message per event-loop turn: the copies of every reply written in this turn.
    this.flusher.added();
  }

  private flush(): void {
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
  ) {}

  send(req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void {
    this.slot.send(this.id, this.spec.label, req, sink, done);
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
  constructor(private readonly count: number, private readonly onCrash: (index: number, reason: string, lost: number) => void) {}

  /** Creates a node in the next worker (round robin). */
  createNode(node: NodeSpec, target: TargetSpec, breaker: CircuitBreaker, tlsName: string | undefined): NodeTransport {
    if (this.slots.length === 0) for (let i = 0; i < this.count; i++) this.slots.push(new WorkerSlot(i, this.onCrash));
    const slot = this.slots[this.nextSlot++ % this.slots.length]!;
    const id = this.nextNode++;
    slot.addNode({ t: 'node', id, node, target, tlsName });
    return new ThreadNode(node, breaker, slot, id);
  }

  /** The worker threads (for diagnostics and tests). */
  get workers(): readonly Worker[] {
    return this.slots.map((s) => s.worker);
  }

  /** Restarts so far, all workers together. */
  get restarts(): number {
    return this.slots.reduce((n, s) => n + s.restarts, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.stop()));
  }
}
