/**
 * Messages between the RPC thread and a dispatch worker thread. The RPC thread keeps the
 * targets' limits, queues and circuit breakers (admission must be synchronous); a worker owns
 * the nodes' connection pools and does the HTTP/gRPC work. An HTTP copy whose answer is thrown
 * away travels as a record in the copies ring (shm-ring.ts) and its outcome comes back in the
 * done ring; everything else (gRPC, compared copies, records too big for the ring) travels in
 * messages, one batch per event-loop turn, bodies as transferred ArrayBuffers.
 */
import { writeLatin1, writeUtf8 } from './ascii-bytes.js';
import type { RawCopy } from './copy-head.js';
import type { HeadEdits } from './copy-headers.js';
import type { UriRule } from './copy-uri.js';
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
  /** HTTP: the request head, ready to write (h1/request-head.ts, or bytes built by the caller). */
  readonly hd: string | Uint8Array | undefined;
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

/** What a worker is started with (`workerData`). */
export interface WorkerData {
  /** Nice value the worker gives itself on Linux; 0: none. */
  readonly nice: number;
}

export type FromWorker =
  | { readonly t: 'done'; readonly batch: DoneMessage[] }
  /** A node's counted outcomes that did not fit the done ring (as writeOutcomes writes them). */
  | { readonly t: 'counted'; readonly n: number; readonly o: DispatchOutcome; readonly us: number[]; readonly c: string | undefined; readonly e: string | undefined }
  | { readonly t: 'closed'; readonly id: number };

/** A copy of a Buffer's bytes in an ArrayBuffer of its own, so it can be transferred. */
export function ownBytes(b: Buffer | Uint8Array): Uint8Array {
  const out = new Uint8Array(b.byteLength);
  out.set(b);
  return out;
}

// ---- ring records (shm-ring.ts) -------------------------------------------------------------
// An HTTP copy whose answer is thrown away travels through the copies ring instead of a
// message. A record starts with 15 int32:
//   0 node id, 1 request id (0 for a counted copy), 2 kind (HEAD: a built head; RAW: header
//   bytes to build it from; plus COUNTED for a copy whose outcome is counted per node),
//   3 body bytes (-1: no body), 4 method bytes, 5 head bytes (HEAD) or URI bytes (RAW; 0
//   when the worker builds the URI), 6 (RAW) shape bytes (-1: the shape is known by its id),
//   7 correlation id bytes (-1: none), 8 payload bytes, 9 spans, 10 (RAW) 1 when the worker
//   builds the URI from the payload by the shape's URI rule, else 0, 11 padding before the
//   payload (RAW: 0-7 bytes, see writeCopy), 12 padding before the body, 13 (RAW) shape id,
//   14 (RAW) 1 when the reader forgets the shapes it has before reading this record's shape
// then (RAW) the spans as int32, and the method (latin1), the head or the URI (UTF-8), (RAW)
// the shape as JSON (its conf's header edits and URI rule: in full the first time on a ring,
// see ShapeBook), the correlation id and the call's payload, and the body.
// Its outcome comes back through the done ring: request id, outcome index, code bytes,
// message bytes as int32, then the code and the message (UTF-8). A counted copy has no
// request id: the worker reports its node's outcomes in batches (writeOutcomes): node id,
// NODE_RECORD + outcome index, code bytes, message bytes (each -1 when absent) and the count
// n as int32, then n durations in microseconds as int32, then the code and the message; the
// RPC thread settles a batch at once (docs/performance.md, "Mirror dispatch, ninth pass"). Node and request ids are
// uint32: the pool counts them up from 0, and one read back as a negative int32 (past 2^31)
// would match no pending copy. An id outside uint32 is refused, so that copy goes as a
// message, which carries any number.

const isRingId = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

const KIND_HEAD = 0;
const KIND_RAW = 1;
/** Added to the kind of a counted copy (writeCopy's reqId COUNTED). */
const KIND_COUNTED = 2;
const COPY_HEADER = 60;

/** writeCopy's request id for a copy whose outcome the worker counts per node (writeOutcomes). */
export const COUNTED = -1;

/** A done-ring record of a node's outcomes has NODE_RECORD + outcome index where a request's has its outcome. */
const NODE_RECORD = 64;
/** A duration past int32 microseconds (35 minutes) is written as this. */
const MAX_MICROS = 0x7fffffff;

const OUTCOMES: readonly DispatchOutcome[] = ['1xx', '2xx', '3xx', '4xx', '5xx', 'grpc_ok', 'grpc_error', 'timeout', 'error', 'dropped'];
const OUTCOME_INDEX = new Map(OUTCOMES.map((o, i) => [o, i]));

/**
 * A raw copy's shape: its conf's header edits and, when the worker builds the URI, the conf's
 * URI rule, as JSON. A ring carries each shape in full once (ShapeBook) and then only its id,
 * so neither thread handles the JSON per copy.
 */
interface Shape {
  readonly id: number;
  readonly json: Buffer;
  readonly rule: UriRule | undefined;
}

let nextShapeId = 0;
/** Shapes per edits object (a conf's): without a URI rule, and with the last rule it came with. */
const shapesByEdits = new WeakMap<HeadEdits, { plain: Shape | undefined; ruled: Shape | undefined }>();
function shapeOf(edits: HeadEdits, rule: UriRule | undefined): Shape {
  let entry = shapesByEdits.get(edits);
  if (entry === undefined) shapesByEdits.set(edits, (entry = { plain: undefined, ruled: undefined }));
  const known = rule === undefined ? entry.plain : entry.ruled;
  if (known !== undefined && known.rule === rule) return known;
  const json = Buffer.from(JSON.stringify([
    edits.headersSet, [...edits.headersRemove], edits.markHeader ?? null, edits.correlationHeader ?? null,
    rule ? [rule.path ?? null, rule.pathConcatMode, rule.query] : null,
  ]), 'utf8');
  const shape: Shape = { id: nextShapeId, json, rule };
  nextShapeId = (nextShapeId + 1) % 0x7fffffff;
  if (rule === undefined) entry.plain = shape;
  else entry.ruled = shape;
  return shape;
}

/**
 * The writer's side of one ring's shapes: those written in full since the reader last forgot
 * them. Past `limit` shapes (conf churn), the next record tells the reader to forget them all,
 * and both start again.
 */
export class ShapeBook {
  private readonly written = new Set<number>();
  constructor(private readonly limit = 256) {}

  has(id: number): boolean {
    return this.written.has(id);
  }

  /** Whether writing a new shape first makes the reader forget the ones it has. */
  get full(): boolean {
    return this.written.size >= this.limit;
  }

  /** A record carrying shape `id` in full was committed (after telling the reader to forget, when `forgot`). */
  wrote(id: number, forgot: boolean): void {
    if (forgot) this.written.clear();
    this.written.add(id);
  }
}

/** A shape read back: the edits object and the rule (one object per shape, so per-conf caches keyed by them keep working). */
interface ReadShape {
  readonly edits: HeadEdits;
  readonly rule: UriRule | undefined;
}

/** The reader's side of one ring's shapes (thread-worker.ts has one per ring). */
export class ShapeTable {
  readonly shapes = new Map<number, ReadShape>();
}

function parseShape(json: string): ReadShape {
  const [set, remove, mark, corr, rule] = JSON.parse(json) as [
    [string, string][], string[], string | null, string | null, [string | null, UriRule['pathConcatMode'], UriRule['query']] | null,
  ];
  return {
    edits: { headersSet: set, headersRemove: new Set(remove), markHeader: mark ?? undefined, correlationHeader: corr ?? undefined },
    rule: rule ? { path: rule[0] ?? undefined, pathConcatMode: rule[1], query: rule[2] } : undefined,
  };
}

/** Whether the copy record at `at` is a counted copy's (for a reader that could not read the rest). */
export function isCountedRecord(ints: Int32Array, at: number): boolean {
  return ints[(at >> 2) + 2]! >= KIND_COUNTED;
}

/** A ring record a reader cannot use (a shape it was never sent); the worker fails that copy. */
export class BadRecordError extends Error {
  readonly code = 'BAD_RING_RECORD';
}

/**
 * Writes a copy into the ring: its built head, or (RawCopy) the header bytes and edits to
 * build it from. False when it does not fit now (the caller sends a message instead).
 */
export function writeCopy(
  ring: ByteRing, nodeId: number, reqId: number, method: string, head: string | Buffer | RawCopy, uri: string, body: Buffer | undefined,
  book?: ShapeBook,
): boolean {
  const counted = reqId === COUNTED;
  if (method.length > 255 || !isRingId(nodeId) || (!counted && !isRingId(reqId))) return false;
  // Not Buffer.isBuffer: the global `Buffer` is a getter call per copy.
  const raw = typeof head === 'string' || head instanceof Uint8Array ? undefined : head;
  // The call's bytes' offset and length read once (each a typed-array getter).
  const payload = raw?.bytes;
  const payloadLength = payload === undefined ? 0 : payload.byteLength;
  const corr = raw?.correlationId;
  // A raw copy without its URI: the worker builds it from the payload by the conf's rule.
  const shape = raw ? shapeOf(raw.edits, raw.uriRule !== undefined && uri === '' ? raw.uriRule : undefined) : undefined;
  // In full the first time on this ring (or always, without a book), else its id alone.
  const inFull = shape !== undefined && (book === undefined || !book.has(shape.id));
  const forget = inFull && book !== undefined && book.full;
  let max = COPY_HEADER + method.length + (body ? body.byteLength + 7 : 0);
  if (raw) max += raw.spans.length * 4 + (uri.length + (corr?.length ?? 0)) * 3 + (inFull ? shape!.json.length : 0) + 7 + payloadLength;
  else max += typeof head === 'string' ? head.length * 3 : (head as Buffer).byteLength;
  const at = ring.reserve(max);
  if (at < 0) return false;
  const { bytes, ints } = ring;
  const i = at >> 2;
  let p = at + COPY_HEADER;
  if (raw) {
    const spans = raw.spans;
    const n = spans.length;
    const q = p >> 2;
    for (let k = 0; k < n; k++) ints[q + k] = spans[k]!;
    p += n * 4;
  }
  p += writeLatin1(bytes, method, p);
  if (raw) {
    const ub = shape!.rule ? 0 : writeUtf8(bytes, uri, p);
    p += ub;
    let sb = -1;
    if (inFull) {
      bytes.set(shape!.json, p);
      sb = shape!.json.length;
      p += sb;
    }
    const cb = corr === undefined ? -1 : bytes.write(corr, p, 'utf8');
    p += Math.max(0, cb);
    // The payload starts at the same address modulo 8 as the call's bytes: V8 copies into shared
    // memory word by word only when both sides are aligned alike, byte by byte otherwise, and
    // a 900-byte call then cost 330-500 ns instead of 60-110 (docs/performance.md, sixth pass).
    const pad = (payload!.byteOffset - (ring.bytesOffset + p)) & 7;
    p += pad;
    bytes.set(payload!, p);
    p += payloadLength;
    ints[i + 2] = counted ? KIND_RAW + KIND_COUNTED : KIND_RAW;
    ints[i + 5] = ub;
    ints[i + 6] = sb;
    ints[i + 7] = cb;
    ints[i + 8] = payloadLength;
    ints[i + 9] = raw.spans.length;
    ints[i + 10] = shape!.rule ? 1 : 0;
    ints[i + 11] = pad;
    ints[i + 13] = shape!.id;
    ints[i + 14] = forget ? 1 : 0;
  } else {
    let hb: number;
    if (typeof head === 'string') {
      hb = bytes.write(head, p, 'utf8');
    } else {
      bytes.set(head as Buffer, p);
      hb = (head as Buffer).byteLength;
    }
    p += hb;
    ints[i + 2] = counted ? KIND_HEAD + KIND_COUNTED : KIND_HEAD;
    ints[i + 5] = hb;
  }
  if (body) {
    // Aligned like its source too (see the payload above): a 64 KiB body copied byte by byte cost ~25 µs.
    const bodyPad = (body.byteOffset - (ring.bytesOffset + p)) & 7;
    p += bodyPad;
    bytes.set(body, p);
    p += body.byteLength;
    ints[i + 12] = bodyPad;
  }
  ints[i] = nodeId;
  ints[i + 1] = counted ? 0 : reqId;
  ints[i + 3] = body ? body.byteLength : -1;
  ints[i + 4] = method.length;
  ring.commit(at, p - at);
  if (inFull && book !== undefined) book.wrote(shape!.id, forget);
  return true;
}

/** A copy read from the ring; its bytes are copies (the ring's room is reused). */
export interface RingCopy {
  readonly nodeId: number;
  /** 0 for a counted copy. */
  readonly reqId: number;
  /** Its outcome is counted per node (writeOutcomes), not reported by request id. */
  readonly counted: boolean;
  readonly method: string;
  /** The request head as the connection writes it, or the bytes to build it from. */
  readonly head: Buffer | RawCopy;
  /** The request target (RAW only; '' for a built head, which has it). */
  readonly uri: string;
  readonly body: Buffer | undefined;
}

/**
 * Reads a copy record. A raw copy's shape comes in full or by its id, from `table` (the ring's:
 * without one, only records carrying their shape in full can be read). Throws BadRecordError
 * for a shape id the table does not have.
 */
export function readCopy(bytes: Buffer, ints: Int32Array, at: number, table?: ShapeTable): RingCopy {
  const i = at >> 2;
  const bodyLen = ints[i + 3]!;
  const ml = ints[i + 4]!;
  let p = at + COPY_HEADER;
  const kind = ints[i + 2]!;
  const counted = kind >= KIND_COUNTED;
  if (kind === KIND_RAW || kind === KIND_RAW + KIND_COUNTED) {
    const nSpans = ints[i + 9]!;
    const spans: number[] = new Array<number>(nSpans);
    const q = p >> 2;
    for (let k = 0; k < nSpans; k++) spans[k] = ints[q + k]!;
    p += nSpans * 4;
    const method = bytes.toString('latin1', p, p + ml);
    p += ml;
    const ub = ints[i + 5]!;
    const uri = ub === 0 ? '' : bytes.toString('utf8', p, p + ub);
    p += ub;
    const sb = ints[i + 6]!;
    const id = ints[i + 13]!;
    if (table !== undefined && ints[i + 14] === 1) table.shapes.clear();
    let shape: ReadShape | undefined;
    if (sb >= 0) {
      shape = parseShape(bytes.toString('utf8', p, p + sb));
      table?.shapes.set(id, shape);
      p += sb;
    } else {
      shape = table?.shapes.get(id);
      if (shape === undefined) throw new BadRecordError(`copy record refers to shape ${id}, never written on this ring`);
    }
    const edits = shape.edits;
    const uriRule = ints[i + 10] === 1 ? shape.rule : undefined;
    const cb = ints[i + 7]!;
    const correlationId = cb < 0 ? undefined : bytes.toString('utf8', p, p + cb);
    p += Math.max(0, cb) + ints[i + 11]!;
    const pb = ints[i + 8]!;
    // The payload and the body out of the ring, each into memory of its own at the same
    // address modulo 8 as in the ring (ownAligned), so both copies move words.
    const payload = ownAligned(bytes, p, pb);
    return {
      nodeId: ints[i]! >>> 0, reqId: ints[i + 1]! >>> 0, counted, method, uri,
      head: { bytes: payload, spans, edits, correlationId, uriRule },
      body: bodyLen < 0 ? undefined : ownAligned(bytes, p + pb + ints[i + 12]!, bodyLen),
    };
  }
  const method = bytes.toString('latin1', p, p + ml);
  p += ml;
  const hb = ints[i + 5]!;
  return {
    nodeId: ints[i]! >>> 0, reqId: ints[i + 1]! >>> 0, counted, method, uri: '',
    head: Buffer.from(bytes.subarray(p, p + hb)),
    body: bodyLen < 0 ? undefined : ownAligned(bytes, p + hb + ints[i + 12]!, bodyLen),
  };
}

/**
 * A copy of ring bytes [at, at + n) in memory of its own, at the same address modulo 8 (see
 * writeCopy): Buffer.allocUnsafe's memory starts 8-aligned, so `k` bytes in.
 */
function ownAligned(bytes: Buffer, at: number, n: number): Buffer {
  const k = (bytes.byteOffset + at) & 7;
  const own = Buffer.allocUnsafe(n + k);
  own.set(bytes.subarray(at, at + n), k);
  return own.subarray(k, k + n);
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

/**
 * Writes a node's outcomes into the done ring: `micros.length` counted copies that ended with
 * `outcome`, their durations in microseconds, and (a failure, one copy) its code and message.
 * False when it does not fit now.
 */
export function writeOutcomes(ring: ByteRing, nodeId: number, outcome: DispatchOutcome, micros: readonly number[], code: string | undefined, message: string | undefined): boolean {
  const n = micros.length;
  if (!isRingId(nodeId) || n === 0) return false;
  const c = code ?? '';
  const m = message ?? '';
  const at = ring.reserve(20 + n * 4 + (c.length + m.length) * 3);
  if (at < 0) return false;
  const { bytes, ints } = ring;
  const i = at >> 2;
  for (let k = 0; k < n; k++) {
    const us = micros[k]!;
    ints[i + 5 + k] = us >= 0 && us < MAX_MICROS ? us : us < 0 ? 0 : MAX_MICROS;
  }
  let p = at + 20 + n * 4;
  const cb = code === undefined ? -1 : bytes.write(c, p, 'utf8');
  p += Math.max(0, cb);
  const mb = message === undefined ? -1 : bytes.write(m, p, 'utf8');
  p += Math.max(0, mb);
  ints[i] = nodeId;
  ints[i + 1] = NODE_RECORD + OUTCOME_INDEX.get(outcome)!;
  ints[i + 2] = cb;
  ints[i + 3] = mb;
  ints[i + 4] = n;
  ring.commit(at, p - at);
  return true;
}

/**
 * Reads a node's outcomes (writeOutcomes) for `each`: `n` copies, their durations in
 * microseconds at `ints[first]` to `ints[first + n - 1]` (read them before returning).
 */
export type EachNodeOutcomes = (
  nodeId: number, outcome: DispatchOutcome, n: number, micros: ArrayLike<number>, first: number, code: string | undefined, message: string | undefined,
) => void;

/** A node's outcomes read from the done ring (tests; the RPC thread uses eachDone). */
export interface RingNodeOutcomes {
  readonly nodeId: number;
  readonly outcome: DispatchOutcome;
  readonly micros: number[];
  readonly code: string | undefined;
  readonly message: string | undefined;
}

/** Whether the done-ring record at `at` is a node's outcomes (writeOutcomes), not a request's. */
export function isNodeRecord(ints: Int32Array, at: number): boolean {
  return ints[(at >> 2) + 1]! >= NODE_RECORD;
}

export function readNodeOutcomes(bytes: Buffer, ints: Int32Array, at: number): RingNodeOutcomes {
  let got: RingNodeOutcomes | undefined;
  eachNodeRecord(bytes, ints, at, (nodeId, outcome, n, src, first, code, message) => {
    got = { nodeId, outcome, micros: Array.from({ length: n }, (_, k) => src[first + k]!), code, message };
  });
  return got!;
}

function eachNodeRecord(bytes: Buffer, ints: Int32Array, at: number, each: EachNodeOutcomes): void {
  const i = at >> 2;
  const n = ints[i + 4]!;
  const cb = ints[i + 2]!;
  const mb = ints[i + 3]!;
  const p = at + 20 + n * 4;
  each(
    ints[i]! >>> 0, OUTCOMES[ints[i + 1]! - NODE_RECORD]!, n, ints, i + 5,
    cb < 0 ? undefined : bytes.toString('utf8', p, p + cb),
    mb < 0 ? undefined : bytes.toString('utf8', p + Math.max(0, cb), p + Math.max(0, cb) + mb),
  );
}

/** An outcome read from the done ring. */
export interface RingDone {
  readonly reqId: number;
  readonly outcome: DispatchOutcome;
  readonly code: string | undefined;
  readonly message: string | undefined;
}

/**
 * readDone without the object: hands a request's outcome to `each`, or a node's outcomes
 * (writeOutcomes) to `eachNode` (ignored without one).
 */
export function eachDone(
  bytes: Buffer, ints: Int32Array, at: number,
  each: (reqId: number, outcome: DispatchOutcome, code: string | undefined, message: string | undefined) => void,
  eachNode?: EachNodeOutcomes,
): void {
  const i = at >> 2;
  const o = ints[i + 1]!;
  if (o >= NODE_RECORD) {
    if (eachNode) eachNodeRecord(bytes, ints, at, eachNode);
    return;
  }
  const mb = ints[i + 3]!;
  if (o < 0 && mb < 0) {
    each(ints[i]! >>> 0, OUTCOMES[-1 - o]!, undefined, undefined);
    return;
  }
  const d = readDone(bytes, ints, at);
  each(d.reqId, d.outcome, d.code, d.message);
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
