/**
 * Entry of a dispatch worker thread: owns the nodes' connection pools (HttpNode / GrpcNode)
 * and sends what the RPC thread hands it, answering with outcomes in batches.
 */
import { parentPort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { CircuitBreaker } from './circuit-breaker.js';
import { GrpcNode } from './grpc-node.js';
import { HttpNode, type NodeTransport } from './http-node.js';
import type { DoneMessage, FromWorker, ToWorker } from './thread-protocol.js';
import type { DispatchOutcome, DispatchRequest, ResponseSink } from './types.js';

const port = parentPort;
if (!port) throw new Error('thread-worker.ts runs only as a worker thread');

const now = (): number => performance.now();
const nodes = new Map<number, NodeTransport>();
let outbox: DoneMessage[] = [];
const transfer: ArrayBuffer[] = [];
let flushing = false;

function flush(): void {
  flushing = false;
  if (outbox.length === 0) return;
  const msg: FromWorker = { t: 'done', batch: outbox };
  port!.postMessage(msg, transfer.splice(0));
  outbox = [];
}

function report(d: DoneMessage, body?: ArrayBuffer): void {
  outbox.push(d);
  if (body) transfer.push(body);
  if (!flushing) {
    flushing = true;
    setImmediate(flush);
  }
}

port.on('message', (msg: ToWorker) => {
  switch (msg.t) {
    case 'node': {
      // The breaker lives on the RPC thread; this one is only there to satisfy the interface.
      const breaker = new CircuitBreaker({ failures: 1, baseMs: 1, maxMs: 1 }, now, Math.random);
      nodes.set(msg.id, msg.target.protocol === 'grpc'
        ? new GrpcNode(msg.node, msg.target, breaker)
        : new HttpNode(msg.node, msg.target, breaker, now, msg.tlsName));
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
        if (s.hd !== undefined && node instanceof HttpNode) node.sendHead(s.hd, s.m, body, sink, done);
        else node.send(req, sink, done);
      }
      break;
    case 'close': {
      const node = nodes.get(msg.id);
      nodes.delete(msg.id);
      void (node ? node.close(msg.graceMs) : Promise.resolve()).then(() => port.postMessage({ t: 'closed', id: msg.id } satisfies FromWorker));
      break;
    }
  }
});
