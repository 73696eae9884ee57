/**
 * Messages between the RPC thread and a dispatch worker thread. The RPC thread keeps the
 * targets' limits, queues and circuit breakers (admission must be synchronous); a worker owns
 * the nodes' connection pools and does the HTTP/gRPC work. Requests travel in batches (one
 * postMessage per event-loop turn), bodies as transferred ArrayBuffers.
 */
import type { ByteRing } from './shm-ring.js';
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
  /** The worker's two rings (shm-ring.ts): copies to it, outcomes from it. Sent first. */
  | { readonly t: 'rings'; readonly copies: SharedArrayBuffer; readonly done: SharedArrayBuffer }
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

// ---- ring records (shm-ring.ts) -------------------------------------------------------------
// An HTTP copy whose answer is thrown away travels through the copies ring instead of a
// message: nodeId, reqId, head bytes, body bytes (-1: no body) as int32, then the method's
// length (one byte), the method (latin1), the head (UTF-8, as the connection writes it) and
// the body. Its outcome comes back through the done ring: reqId, outcome index, code bytes,
// message bytes as int32, then the code and the message (UTF-8). Node and request ids are
// uint32: the pool counts them up from 0, and one read back as a negative int32 (past 2^31)
// would match no pending copy. An id outside uint32 is refused, so that copy goes as a
// message, which carries any number.

const OUTCOMES: readonly DispatchOutcome[] = ['1xx', '2xx', '3xx', '4xx', '5xx', 'grpc_ok', 'grpc_error', 'timeout', 'error', 'dropped'];
const OUTCOME_INDEX = new Map(OUTCOMES.map((o, i) => [o, i]));

const isRingId = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

/** Writes a copy into the ring; false when it does not fit now (the caller sends a message instead). */
export function writeCopy(ring: ByteRing, nodeId: number, reqId: number, method: string, head: string, body: Buffer | undefined): boolean {
  if (method.length > 255 || !isRingId(nodeId) || !isRingId(reqId)) return false;
  const bodyLen = body ? body.byteLength : -1;
  const at = ring.reserve(17 + method.length + head.length * 3 + (body ? body.byteLength : 0));
  if (at < 0) return false;
  const { bytes, ints } = ring;
  let p = at + 17;
  p += bytes.write(method, p, 'latin1');
  const headBytes = bytes.write(head, p, 'utf8');
  p += headBytes;
  if (body) {
    bytes.set(body, p);
    p += body.byteLength;
  }
  const i = at >> 2;
  ints[i] = nodeId;
  ints[i + 1] = reqId;
  ints[i + 2] = headBytes;
  ints[i + 3] = bodyLen;
  bytes[at + 16] = method.length;
  ring.commit(at, p - at);
  return true;
}

/** A copy read from the ring; `body` is a copy of its bytes (the ring's room is reused). */
export interface RingCopy {
  readonly nodeId: number;
  readonly reqId: number;
  readonly method: string;
  readonly head: string;
  readonly body: Buffer | undefined;
}

export function readCopy(bytes: Buffer, ints: Int32Array, at: number): RingCopy {
  const i = at >> 2;
  const headBytes = ints[i + 2]!;
  const bodyLen = ints[i + 3]!;
  const ml = bytes[at + 16]!;
  let p = at + 17;
  const method = bytes.toString('latin1', p, p + ml);
  p += ml;
  const head = bytes.toString('utf8', p, p + headBytes);
  p += headBytes;
  return { nodeId: ints[i]! >>> 0, reqId: ints[i + 1]! >>> 0, method, head, body: bodyLen < 0 ? undefined : Buffer.from(bytes.subarray(p, p + bodyLen)) };
}

/** Writes an outcome into the done ring; false when it does not fit now. */
export function writeDone(ring: ByteRing, reqId: number, outcome: DispatchOutcome, code: string | undefined, message: string | undefined): boolean {
  if (!isRingId(reqId)) return false;
  const c = code ?? '';
  const m = message ?? '';
  const at = ring.reserve(16 + (c.length + m.length) * 3);
  if (at < 0) return false;
  const { bytes, ints } = ring;
  let p = at + 16;
  const cb = bytes.write(c, p, 'utf8');
  p += cb;
  const mb = bytes.write(m, p, 'utf8');
  p += mb;
  const i = at >> 2;
  ints[i] = reqId;
  ints[i + 1] = code === undefined ? -1 - OUTCOME_INDEX.get(outcome)! : OUTCOME_INDEX.get(outcome)!;
  ints[i + 2] = cb;
  ints[i + 3] = message === undefined ? -1 : mb;
  ring.commit(at, p - at);
  return true;
}

/** An outcome read from the done ring. */
export interface RingDone {
  readonly reqId: number;
  readonly outcome: DispatchOutcome;
  readonly code: string | undefined;
  readonly message: string | undefined;
}

export function readDone(bytes: Buffer, ints: Int32Array, at: number): RingDone {
  const i = at >> 2;
  const o = ints[i + 1]!;
  const cb = ints[i + 2]!;
  const mb = ints[i + 3]!;
  const p = at + 16;
  return {
    reqId: ints[i]! >>> 0,
    outcome: OUTCOMES[o < 0 ? -1 - o : o]!,
    code: o < 0 ? undefined : bytes.toString('utf8', p, p + cb),
    message: mb < 0 ? undefined : bytes.toString('utf8', p + cb, p + cb + mb),
  };
}
