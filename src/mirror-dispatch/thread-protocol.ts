/**
 * Messages between the RPC thread and a dispatch worker thread. The RPC thread keeps the
 * targets' limits, queues and circuit breakers (admission must be synchronous); a worker owns
 * the nodes' connection pools and does the HTTP/gRPC work. Requests travel in batches (one
 * postMessage per event-loop turn), bodies as transferred ArrayBuffers.
 */
import type { DispatchOutcome, NodeSpec, TargetSpec } from './types.js';

/** One request for a node living in the worker. */
export interface SendMessage {
  /** Node id. */
  readonly n: number;
  /** Request id (unique per worker). */
  readonly r: number;
  readonly m: string;
  readonly u: string;
  /** Headers, flat: name, value, name, value… (gRPC; HTTP requests come as `hd`). */
  readonly h: string[] | undefined;
  /** HTTP: the request head, ready to write (h1/request-head.ts). */
  readonly hd: string | undefined;
  readonly b: Uint8Array | undefined;
  readonly g: Uint8Array[] | undefined;
  /** maxBodyBytes of a response sink; absent when the answer is thrown away. */
  readonly k: number | undefined;
}

export type ToWorker =
  | { readonly t: 'node'; readonly id: number; readonly node: NodeSpec; readonly target: TargetSpec; readonly tlsName: string | undefined }
  | { readonly t: 'send'; readonly batch: SendMessage[] }
  | { readonly t: 'close'; readonly id: number; readonly graceMs: number };

export interface DoneMessage {
  readonly r: number;
  readonly o: DispatchOutcome;
  readonly c: string | undefined;
  readonly e: string | undefined;
  /** The answer, for a request that had a sink. */
  readonly s: {
    status: number; headers: Record<string, string | string[] | undefined>; body: Uint8Array; truncated: boolean;
    bodyBytes: number | undefined; bodySha256: string | undefined;
  } | undefined;
}

export type FromWorker =
  | { readonly t: 'done'; readonly batch: DoneMessage[] }
  | { readonly t: 'closed'; readonly id: number };

/** A copy of a Buffer's bytes in an ArrayBuffer of its own, so it can be transferred. */
export function ownBytes(b: Buffer | Uint8Array): Uint8Array {
  const out = new Uint8Array(b.byteLength);
  out.set(b);
  return out;
}
