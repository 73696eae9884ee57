/**
 * The rings between the RPC thread and a dispatch worker: thread-protocol's copy and outcome
 * records (writeCopy/readCopy, writeDone/readDone) round-trip whatever they are given or refuse
 * it without a trace, and a ByteRing carries 20,000 records between real threads (a producer
 * worker to the main thread, and the main thread to a consumer worker that sleeps on the ring
 * as thread-worker.ts does): every record once, in order, intact, with the producer meeting a
 * full ring and retrying.
 */
import { isDeepStrictEqual } from 'node:util';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { afterAll, describe, it, expect } from 'vitest';
import { ByteRing } from '../../src/mirror-dispatch/shm-ring.js';
import {
  BadRecordError, COUNTED, eachDone, isCountedRecord, isNodeRecord, readCopy, readDone, readNodeOutcomes, ShapeBook, ShapeTable,
  writeCopy, writeDone, writeOutcomes, type RingCopy, type RingDone, type RingNodeOutcomes,
} from '../../src/mirror-dispatch/thread-protocol.js';
import type { RawCopy } from '../../src/mirror-dispatch/copy-head.js';
import type { DispatchOutcome } from '../../src/mirror-dispatch/types.js';
import { FC_RUNS, fcParams, timeoutFor } from '../reliability/fc-config.js';

const OUTCOMES: readonly DispatchOutcome[] = ['1xx', '2xx', '3xx', '4xx', '5xx', 'grpc_ok', 'grpc_error', 'timeout', 'error', 'dropped'];

interface CopyCase {
  readonly nodeId: number;
  readonly reqId: number;
  readonly method: string;
  readonly head: string;
  readonly body: Buffer | undefined;
}

interface DoneCase {
  readonly reqId: number;
  readonly outcome: DispatchOutcome;
  readonly code: string | undefined;
  readonly message: string | undefined;
}

/** Ids as the pool hands them out: counters from 0 that keep growing (past 2^31 after 2^31 copies). */
const id = fc.oneof(
  fc.integer({ min: 0, max: 1000 }),
  fc.integer({ min: 2 ** 31 - 3, max: 2 ** 31 + 3 }),
  fc.integer({ min: 2 ** 32 - 3, max: 2 ** 32 - 1 }),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }),
);
/** Text as a request head or an error message may hold it: any Unicode (accents, CJK, emoji). */
const text = (maxLength: number): fc.Arbitrary<string> => fc.oneof(
  fc.string({ unit: 'binary', maxLength, size: 'max' }),
  fc.string({ unit: 'grapheme', maxLength, size: 'max' }),
  fc.constantFrom('', 'GET /é?q=ü HTTP/1.1\r\nx-名前: 値 🚀\r\n\r\n'),
);
const method = fc.oneof(
  fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'M'),
  fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}$/),
  fc.constant('X'.repeat(255)),
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.constant(Buffer.alloc(0)),
  // At any offset in its memory (the ring aligns its copy alike).
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 340, size: 'max' }), fc.nat(15)).map(([b, at]) => {
    const memory = Buffer.alloc(b.length + 16);
    memory.set(b, at);
    return memory.subarray(at, at + b.length);
  }),
);
// Sizes such that every record fits an empty 4 KiB ring (largest record 1,020 bytes: a 52-byte
// record header, up to 7 bytes of padding before the body, a 255-byte method, a head of 60 code points = up to 120 UTF-16 units reserved
// at 3 bytes each, a 340-byte body) and a batch of them does not: refusals and retries happen.
// A grapheme may be several code points: the head is held to 120 UTF-16 units by filtering.
// A counted copy (COUNTED: no request id) now and then.
const copyCase: fc.Arbitrary<CopyCase> = fc.record({ nodeId: id, reqId: fc.oneof(id, fc.constant(COUNTED)), method, head: text(60).filter((h) => h.length <= 120), body });
const doneCase: fc.Arbitrary<DoneCase> = fc.record({
  reqId: id,
  outcome: fc.constantFrom(...OUTCOMES),
  code: fc.option(text(20), { nil: undefined }),
  message: fc.option(text(100), { nil: undefined }),
// An outcome record reserves 16 bytes + 3 per UTF-16 unit of code and message: keep it within
// the largest record (graphemes may be several code points each).
}).filter((d) => 16 + ((d.code?.length ?? 0) + (d.message?.length ?? 0)) * 3 <= 1020);
/**
 * A node's counted outcomes (writeOutcomes): durations as the worker measures them, and some
 * it never should (negative, past int32 microseconds), which are written clamped.
 */
const nodeCase: fc.Arbitrary<RingNodeOutcomes> = fc.record({
  nodeId: id,
  outcome: fc.constantFrom(...OUTCOMES),
  micros: fc.array(fc.oneof(fc.nat(5_000_000), fc.constantFrom(-3, 2 ** 31 - 1, 2 ** 31, 2 ** 40)), { minLength: 1, maxLength: 40 }),
  code: fc.option(text(20), { nil: undefined }),
  message: fc.option(text(60), { nil: undefined }),
}).filter((d) => 20 + d.micros.length * 4 + ((d.code?.length ?? 0) + (d.message?.length ?? 0)) * 3 <= 1020);

/** Every record the ring holds, read with `read`. */
function drainWith<R>(ring: ByteRing, read: (bytes: Buffer, ints: Int32Array, at: number) => R): R[] {
  const out: R[] = [];
  ring.drain((bytes, at) => out.push(read(bytes, ring.ints, at)));
  return out;
}

const drainCopies = (ring: ByteRing): RingCopy[] => drainWith(ring, readCopy);
/** Request and node outcomes as the RPC thread reads them (eachDone with both readers), checked against the readers' objects. */
const drainMixed = (ring: ByteRing): (RingDone | RingNodeOutcomes)[] => drainWith(ring, (bytes, ints, at) => {
  let got: RingDone | RingNodeOutcomes | undefined;
  let calls = 0;
  eachDone(bytes, ints, at, (reqId, outcome, code, message) => { calls++; got = { reqId, outcome, code, message }; }, (nodeId, outcome, n, src, first, code, message) => {
    calls++;
    got = { nodeId, outcome, micros: Array.from({ length: n }, (_, k) => src[first + k]!), code, message };
  });
  expect(calls).toBe(1);
  expect(got).toEqual(isNodeRecord(ints, at) ? readNodeOutcomes(bytes, ints, at) : readDone(bytes, ints, at));
  return got!;
});
/** Outcomes as the RPC thread reads them (eachDone), checked against readDone's object on the way. */
const drainDones = (ring: ByteRing): RingDone[] => drainWith(ring, (bytes, ints, at) => {
  let got: RingDone | undefined;
  eachDone(bytes, ints, at, (reqId, outcome, code, message) => { got = { reqId, outcome, code, message }; });
  expect(got).toEqual(readDone(bytes, ints, at));
  return got!;
});

/** What the other end must read: the same fields, a body as its own bytes. */
const asRead = (c: CopyCase): RingCopy => ({ nodeId: c.nodeId, reqId: c.reqId === COUNTED ? 0 : c.reqId, counted: c.reqId === COUNTED, method: c.method, head: Buffer.from(c.head, 'utf8'), uri: '', body: c.body === undefined ? undefined : Buffer.from(c.body) });

/** The ring's header words (written, read, asleep, spare), to show a refused write left no trace. */
const headerOf = (ring: ByteRing): number[] => Array.from(new Int32Array(ring.shared, 0, 4));

/**
 * Batches of large records shrink slowly (a million steps is not unusual): past this, fast-check
 * stops and reports the smallest failing batch found so far, instead of running for ever.
 */
const SHRINK_TIME_LIMIT_MS = 20_000;

/**
 * Writes `cases` through a 4 KiB ring in order, reading it back; a write refused because the
 * ring is full must leave the header as it was and succeed once the ring is drained.
 */
function throughRing<C, R>(cases: readonly C[], write: (ring: ByteRing, c: C) => boolean, drain: (ring: ByteRing) => R[], onRefused: () => void): R[] {
  const ring = ByteRing.create(4096);
  const read: R[] = [];
  for (const c of cases) {
    const before = headerOf(ring);
    if (write(ring, c)) {
      // A writer that ran past its reservation would show here.
      expect(ring.used).toBeLessThanOrEqual(ring.capacity);
      continue;
    }
    onRefused();
    expect(headerOf(ring)).toEqual(before);
    read.push(...drain(ring));
    expect(write(ring, c)).toBe(true);
  }
  read.push(...drain(ring));
  return read;
}

describe('thread-protocol ring records', () => {
  it('request ids past 2^31 come back as written (the pool counts them up from 0 and never wraps)', () => {
    // A reqId read back as a negative number matches no pending copy: its outcome would be lost.
    const copies = ByteRing.create(4096);
    const done = ByteRing.create(4096);
    for (const reqId of [2 ** 31 - 1, 2 ** 31, 2 ** 31 + 7, 2 ** 32 - 1]) {
      expect(writeCopy(copies, 2 ** 31 + 1, reqId, 'GET', 'GET / HTTP/1.1\r\n\r\n', '', undefined)).toBe(true);
      expect(writeDone(done, reqId, '2xx', undefined, undefined)).toBe(true);
    }
    expect(drainCopies(copies).map((c) => [c.nodeId, c.reqId])).toEqual([2 ** 31 - 1, 2 ** 31, 2 ** 31 + 7, 2 ** 32 - 1].map((r) => [2 ** 31 + 1, r]));
    expect(drainDones(done).map((d) => d.reqId)).toEqual([2 ** 31 - 1, 2 ** 31, 2 ** 31 + 7, 2 ** 32 - 1]);
  });

  // -1 as a request id is COUNTED (a copy without one), round-tripped above.
  it.each([2 ** 32, 2 ** 40, -2, 1.5, Number.NaN])('an id a record cannot carry (%s) is refused, so the copy goes as a message with its id intact', (bad) => {
    const ring = ByteRing.create(4096);
    const before = headerOf(ring);
    expect(writeCopy(ring, bad, 1, 'GET', 'GET / HTTP/1.1\r\n\r\n', '', undefined)).toBe(false);
    expect(writeCopy(ring, 1, bad, 'GET', 'GET / HTTP/1.1\r\n\r\n', '', undefined)).toBe(false);
    expect(writeDone(ring, bad, 'error', 'E', 'm')).toBe(false);
    expect(headerOf(ring)).toEqual(before);
    expect(drainCopies(ring)).toEqual([]);
  });

  it('a copy that can never fit is refused without a trace: method over 255 bytes, head or body past the largest record', () => {
    const ring = ByteRing.create(4096); // largest record: 1,020 bytes
    const before = headerOf(ring);
    expect(writeCopy(ring, 1, 1, 'X'.repeat(256), 'h', '', undefined)).toBe(false);
    expect(writeCopy(ring, 1, 1, 'GET', 'h'.repeat(400), '', undefined)).toBe(false);
    expect(writeCopy(ring, 1, 1, 'GET', 'h', '', Buffer.alloc(1020))).toBe(false);
    expect(writeDone(ring, 1, 'error', 'c'.repeat(200), 'm'.repeat(200))).toBe(false);
    expect(headerOf(ring)).toEqual(before);
    // The same ring still takes what fits, right after.
    expect(writeCopy(ring, 1, 1, 'GET', 'h'.repeat(300), '', Buffer.alloc(10, 1))).toBe(true);
    expect(drainCopies(ring)).toEqual([{ nodeId: 1, reqId: 1, counted: false, method: 'GET', head: Buffer.from('h'.repeat(300)), uri: '', body: Buffer.alloc(10, 1) }]);
  });

  it('copies round-trip in order: ids, method, UTF-8 head, body absent / empty / bytes; a refused one leaves no trace and fits once drained', () => {
    let refused = 0;
    fc.assert(fc.property(fc.array(copyCase, { minLength: 1, maxLength: 40, size: 'max' }), (cases) => {
      const got = throughRing(cases, (ring, c) => writeCopy(ring, c.nodeId, c.reqId, c.method, c.head, '', c.body), drainCopies, () => refused++);
      // A boolean, not expect(): a failing expect builds a diff of the whole batch at every shrink step.
      return isDeepStrictEqual(got, cases.map(asRead));
    }), { ...fcParams(FC_RUNS), interruptAfterTimeLimit: SHRINK_TIME_LIMIT_MS });
    expect(refused).toBeGreaterThan(0);
  }, timeoutFor(FC_RUNS, 20));

  it('a shape (a conf\'s edits and URI rule) goes in full once per ring, by id after; past the book\'s limit both ends forget and start again', () => {
    // Six confs, three of them building the URI by their rule; a book of three shapes.
    const confs = Array.from({ length: 6 }, (_, k) => ({
      headersSet: [['x-conf', String(k)]] as [string, string][], headersRemove: new Set(k % 2 ? ['cookie'] : []),
      markHeader: k === 0 ? 'x-mirror' : undefined, correlationHeader: undefined,
      path: k < 3 ? `/p${k}` : undefined, pathConcatMode: 'prefix' as const, query: 'auto' as const,
    }));
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(5), fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 40 })), { minLength: 1, maxLength: 60 }), (picks) => {
      const ring = ByteRing.create(65536);
      const book = new ShapeBook(3);
      const table = new ShapeTable();
      let inFull = 0;
      const got: RingCopy[] = [];
      for (const [k, byRule, bytes] of picks) {
        const conf = confs[k]!;
        // The URI built by the rule ('' here) only for the confs that have one.
        const useRule = byRule && conf.path !== undefined;
        expect(writeCopy(ring, 1, COUNTED, 'GET', { bytes: Buffer.from(bytes), spans: [], edits: conf, correlationId: undefined, uriRule: conf }, useRule ? '' : '/u', undefined, book)).toBe(true);
        ring.drain((b, at) => {
          if (ring.ints[(at >> 2) + 6]! >= 0) inFull++;
          got.push(readCopy(b, ring.ints, at, table));
        });
      }
      const distinct = new Set(picks.map(([k, byRule]) => `${k}:${byRule && confs[k]!.path !== undefined}`)).size;
      // Each shape in full at least once; never more often than it was new or the book was forgotten.
      expect(inFull).toBeGreaterThanOrEqual(distinct);
      expect(inFull).toBeLessThanOrEqual(picks.length);
      if (distinct <= 3) expect(inFull).toBe(distinct);
      // The reader forgot with the writer: it holds no more shapes than the book's limit.
      expect(table.shapes.size).toBeLessThanOrEqual(3);
      picks.forEach(([k, byRule, bytes], n) => {
        const conf = confs[k]!;
        const useRule = byRule && conf.path !== undefined;
        const copy = got[n]!;
        const head = copy.head as RawCopy;
        expect(copy.uri).toBe(useRule ? '' : '/u');
        expect(Buffer.from(head.bytes)).toEqual(Buffer.from(bytes));
        expect(head.edits).toEqual({ headersSet: conf.headersSet, headersRemove: conf.headersRemove, markHeader: conf.markHeader, correlationHeader: undefined });
        expect(head.uriRule).toEqual(useRule ? { path: conf.path, pathConcatMode: 'prefix', query: 'auto' } : undefined);
      });
      // One object per shape while the reader keeps it (per-conf caches in the worker are keyed by it).
      const first = new Map<string, unknown>();
      picks.forEach(([k, byRule], n) => {
        const key = `${k}:${byRule && confs[k]!.path !== undefined}`;
        if (distinct <= 3) {
          const edits = (got[n]!.head as RawCopy).edits;
          if (first.has(key)) expect(edits).toBe(first.get(key));
          else first.set(key, edits);
        }
      });
    }), fcParams(FC_RUNS));
  });

  it('a record naming a shape its reader was never sent is refused with BadRecordError, and a counted one says so', () => {
    const ring = ByteRing.create(4096);
    const book = new ShapeBook();
    const edits = { headersSet: [], headersRemove: new Set<string>(), markHeader: undefined, correlationHeader: undefined };
    const raw = { bytes: Buffer.from('call'), spans: [], edits, correlationId: undefined, uriRule: undefined };
    expect(writeCopy(ring, 1, COUNTED, 'GET', raw, '/', undefined, book)).toBe(true);
    expect(writeCopy(ring, 1, COUNTED, 'GET', raw, '/', undefined, book)).toBe(true);
    const reads: string[] = [];
    // A reader that missed the first record (a table of its own, for the second only).
    let n = 0;
    ring.drain((b, at) => {
      if (n++ === 0) return;
      expect(isCountedRecord(ring.ints, at)).toBe(true);
      try {
        readCopy(b, ring.ints, at, new ShapeTable());
        reads.push('read');
      } catch (err) {
        reads.push(err instanceof BadRecordError ? err.code : String(err));
      }
    });
    expect(reads).toEqual(['BAD_RING_RECORD']);
  });

  it('raw copies round-trip: the call bytes and entry spans, the URI or its rule, the edits, the correlation id and the body', () => {
    const raw = fc.record({
      // At any offset in its memory, as a call's bytes are in a socket read (the ring aligns its copy alike).
      bytes: fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.nat(15)).map(([b, at]) => {
        const memory = Buffer.alloc(b.length + 16);
        memory.set(b, at);
        return memory.subarray(at, at + b.length);
      }),
      spans: fc.array(fc.integer({ min: -1, max: 300 }), { maxLength: 32 }),
      edits: fc.record({
        headersSet: fc.array(fc.tuple(fc.constantFrom('x-a', 'host', 'x-ü'), text(10)), { maxLength: 2 }),
        headersRemove: fc.uniqueArray(fc.constantFrom('x-a', 'user-agent'), { maxLength: 2 }).map((a) => new Set(a)),
        markHeader: fc.constantFrom(undefined, 'x-mirror'),
        correlationHeader: fc.constantFrom(undefined, 'x-corr'),
      }),
      correlationId: fc.option(text(20), { nil: undefined }),
      uriRule: fc.option(fc.record({
        path: fc.option(text(20), { nil: undefined }),
        pathConcatMode: fc.constantFrom('replace' as const, 'prefix' as const),
        query: fc.constantFrom('auto' as const, 'raw' as const, 'rebuilt' as const),
      }), { nil: undefined }),
    });
    // '' (the worker builds the URI by the rule) half of the time.
    const uris = fc.oneof(fc.constant(''), text(40));
    fc.assert(fc.property(id, id, method, uris, raw, body, (nodeId, reqId, m, uri, r, b) => {
      const ring = ByteRing.create(65536); // room for any generated record (graphemes may be long)
      expect(writeCopy(ring, nodeId, reqId, m, r, uri, b)).toBe(true);
      const [got] = drainCopies(ring);
      // A rule travels only with an empty URI, the only case where it is used (headOfRawCopy).
      const uriRule = uri === '' ? r.uriRule : undefined;
      expect(got).toEqual({ nodeId, reqId, counted: false, method: m, uri, head: { ...r, uriRule, edits: { ...r.edits, headersSet: r.edits.headersSet.map((e) => [...e]) } }, body: b === undefined ? undefined : Buffer.from(b) });
      expect(drainCopies(ring)).toEqual([]);
    }), fcParams(FC_RUNS));
  });

  it('request outcomes and counted node outcomes round-trip in order, each to its reader; durations clamped to int32 microseconds', () => {
    const clamp = (us: number): number => (us < 0 ? 0 : Math.min(us, 2 ** 31 - 1));
    let refused = 0;
    let nodeRecords = 0;
    fc.assert(fc.property(fc.array(fc.oneof(doneCase, nodeCase), { minLength: 1, maxLength: 40, size: 'max' }), (cases) => {
      const got = throughRing(cases, (ring, d) => ('nodeId' in d
        ? writeOutcomes(ring, d.nodeId, d.outcome, d.micros, d.code, d.message)
        : writeDone(ring, d.reqId, d.outcome, d.code, d.message)), drainMixed, () => refused++);
      nodeRecords += cases.filter((d) => 'nodeId' in d).length;
      return isDeepStrictEqual(got, cases.map((d) => ('nodeId' in d ? { ...d, micros: d.micros.map(clamp) } : { ...d })));
    }), { ...fcParams(FC_RUNS), interruptAfterTimeLimit: SHRINK_TIME_LIMIT_MS });
    expect(refused).toBeGreaterThan(0);
    expect(nodeRecords).toBeGreaterThan(0);
  }, timeoutFor(FC_RUNS, 20));

  it('a node outcomes record without durations, for a node id outside uint32, or past the largest record is refused without a trace', () => {
    const ring = ByteRing.create(4096);
    const before = headerOf(ring);
    expect(writeOutcomes(ring, 1, '2xx', [], undefined, undefined)).toBe(false);
    expect(writeOutcomes(ring, -1, '2xx', [1], undefined, undefined)).toBe(false);
    expect(writeOutcomes(ring, 2 ** 32, '2xx', [1], undefined, undefined)).toBe(false);
    expect(writeOutcomes(ring, 1, '2xx', new Array<number>(300).fill(1), undefined, undefined)).toBe(false);
    expect(headerOf(ring)).toEqual(before);
    expect(writeOutcomes(ring, 2 ** 32 - 1, '5xx', [7, 8], undefined, undefined)).toBe(true);
    expect(drainMixed(ring)).toEqual([{ nodeId: 2 ** 32 - 1, outcome: '5xx', micros: [7, 8], code: undefined, message: undefined }]);
  });

  it('outcomes round-trip: every outcome, code and message each absent, empty or any Unicode', () => {
    let refused = 0;
    fc.assert(fc.property(fc.array(doneCase, { minLength: 1, maxLength: 40, size: 'max' }), (cases) => {
      const got = throughRing(cases, (ring, d) => writeDone(ring, d.reqId, d.outcome, d.code, d.message), drainDones, () => refused++);
      return isDeepStrictEqual(got, cases.map((d) => ({ ...d })));
    }), { ...fcParams(FC_RUNS), interruptAfterTimeLimit: SHRINK_TIME_LIMIT_MS });
    expect(refused).toBeGreaterThan(0);
  }, timeoutFor(FC_RUNS, 20));
});

// ---- a real producer thread -------------------------------------------------------------------

/**
 * Record `index` of `length` bytes (≥ 8): its index, bytes from a xorshift seeded by it, and
 * an FNV-1a checksum of everything before. Runs in the producer worker too (sent as source),
 * so both sides build the same record from one definition.
 */
function fillRecord(index: number, length: number, out: Uint8Array, at: number): void {
  out[at] = index & 0xff;
  out[at + 1] = (index >>> 8) & 0xff;
  out[at + 2] = (index >>> 16) & 0xff;
  out[at + 3] = (index >>> 24) & 0xff;
  let x = (Math.imul(index, 0x9e3779b1) | 1) >>> 0;
  for (let k = 4; k < length - 4; k++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[at + k] = x & 0xff;
  }
  let h = 0x811c9dc5;
  for (let k = 0; k < length - 4; k++) h = Math.imul(h ^ out[at + k]!, 0x01000193) >>> 0;
  out[at + length - 4] = h & 0xff;
  out[at + length - 3] = (h >>> 8) & 0xff;
  out[at + length - 2] = (h >>> 16) & 0xff;
  out[at + length - 1] = (h >>> 24) & 0xff;
}

/** Length of record `index`: from 8 bytes to the ring's largest record, mostly spread between. */
function recordLength(index: number, maxRecord: number): number {
  if (index % 13 === 0) return maxRecord;
  if (index % 7 === 0) return 8;
  return 8 + (Math.imul(index, 0x9e3779b1) >>> 0) % (maxRecord - 7);
}

/**
 * What is wrong with record `index` as read (at `at`, `length` bytes), or '' when it is intact.
 * `scratch` holds at least maxRecord bytes. Runs in the consumer worker too (sent as source).
 */
function recordProblem(index: number, bytes: Uint8Array, at: number, length: number, maxRecord: number, scratch: Uint8Array): string {
  const got = (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
  const want = recordLength(index, maxRecord);
  if (got !== index || length !== want) return `record ${index}: got index ${got}, ${length} bytes (want ${want})`;
  fillRecord(index, length, scratch, 0);
  for (let k = 0; k < length; k++) if (scratch[k] !== bytes[at + k]) return `record ${index}: byte ${k} differs`;
  return '';
}

/** Control words shared with the producer (not the ring's header). */
const FULLS = 0;

/** The head of every ring worker: the record functions, then `main(ByteRing)` once shm-ring.ts is loaded through tsx. */
const workerSource = (main: string): string => `
const { workerData, parentPort } = require('node:worker_threads');
${fillRecord.toString()}
${recordLength.toString()}
${recordProblem.toString()}
import('tsx/esm/api').then(async ({ tsImport }) => {
  const { ByteRing } = await tsImport(workerData.ringModule, workerData.ringModule);
  ${main}
}).catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
`;

/**
 * The producer: writes `count` records through reserve/commit/wake; when the ring is full it
 * counts that, naps 0.2 ms (Atomics.wait on a private word) and retries. Every `burst`
 * records it waits for the consumer to be asleep on the empty ring, so the next wake() must
 * wake it (not after the last: the consumer stops reading then). Everything is bounded by `deadline`.
 */
const PRODUCER = workerSource(`
  const ring = new ByteRing(workerData.ring);
  const header = new Int32Array(workerData.ring, 0, 4);
  const control = new Int32Array(workerData.control);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const { count, burst, deadline } = workerData;
  let fulls = 0, wakes = 0, waitedAsleep = 0;
  for (let i = 0; i < count; i++) {
    const length = recordLength(i, ring.maxRecord);
    let at;
    while ((at = ring.reserve(length)) < 0) {
      if (Date.now() > deadline) return parentPort.postMessage({ error: 'ring stayed full at record ' + i });
      fulls++;
      Atomics.store(control, ${FULLS}, fulls);
      Atomics.wait(nap, 0, 0, 0.2);
    }
    fillRecord(i, length, ring.bytes, at);
    ring.commit(at, length);
    if (ring.wake()) wakes++;
    if (i % burst === burst - 1 && i < count - 1) {
      while (Atomics.load(header, 2) !== 1) {
        if (Date.now() > deadline) return parentPort.postMessage({ error: 'consumer never slept after record ' + i });
        Atomics.wait(nap, 0, 0, 0.2);
      }
      waitedAsleep++;
    }
  }
  parentPort.postMessage({ fulls, wakes, waitedAsleep });
`);

/**
 * The consumer, as thread-worker.ts reads its copies: drain, and sleep on the ring when a
 * drain finds nothing; reports how many records it read intact and how often it slept.
 */
const CONSUMER = workerSource(`
  // A pending Atomics.waitAsync does not keep a thread alive: thread-worker.ts stays up through
  // its port listener, and so does this one.
  parentPort.on('message', () => undefined);
  const ring = new ByteRing(workerData.ring);
  const scratch = new Uint8Array(ring.maxRecord);
  const { count, deadline } = workerData;
  let next = 0, sleeps = 0, problem = '';
  const check = (bytes, at, length) => {
    problem = recordProblem(next, bytes, at, length, ring.maxRecord, scratch);
    if (problem) throw new Error(problem);
    next++;
  };
  try {
    while (next < count) {
      if (Date.now() > deadline) throw new Error('time box: ' + next + ' of ' + count + ' records read');
      if (ring.drain(check) > 0) await new Promise((resolve) => setImmediate(resolve));
      else { sleeps++; await ring.sleep(); }
    }
    parentPort.postMessage({ read: next, sleeps, extra: ring.drain(() => undefined) });
  } catch (err) {
    parentPort.postMessage({ error: String(err.message) });
  }
`);

/** `p`, or a failure naming what did not happen (a bound against hanging, not a timing assertion). */
function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: never happened`)), 20_000); });
  return Promise.race([p, bound]).finally(() => clearTimeout(timer));
}

const ringModule = new URL('../../src/mirror-dispatch/shm-ring.ts', import.meta.url).href;

describe('ByteRing between two threads', () => {
  const workers: Worker[] = [];
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.terminate()));
  });

  /** Starts a ring worker; its one report (or its error) settles the promise. */
  function start<T>(source: string, data: Record<string, unknown>): Promise<T> {
    const worker = new Worker(source, { eval: true, workerData: { ringModule, ...data } });
    workers.push(worker);
    const report = new Promise<T>((resolve, reject) => {
      worker.on('message', (m: T | { error: string }) => (typeof m === 'object' && m !== null && 'error' in m ? reject(new Error(`worker: ${m.error}`)) : resolve(m)));
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`worker exited (${code}) before reporting`)));
    });
    report.catch(() => undefined);
    return report;
  }

  it('20,000 records of 8..1,020 bytes from a worker arrive once, in order, intact; the producer meets a full ring and retries', async () => {
    const count = 20_000;
    const burst = 2_000;
    const deadline = Date.now() + 90_000;
    const ring = ByteRing.create(4096);
    const control = new Int32Array(new SharedArrayBuffer(4));
    const report = start<{ fulls: number; wakes: number; waitedAsleep: number }>(PRODUCER, { ring: ring.shared, control: control.buffer, count, burst, deadline });

    const scratch = new Uint8Array(ring.maxRecord);
    let next = 0;
    let sleeps = 0;
    // Throws out of drain at the first bad record: past a corrupt length, drain could walk
    // the ring without ever meeting the write counter again.
    const check = (bytes: Buffer, at: number, length: number): void => {
      const problem = recordProblem(next, bytes, at, length, ring.maxRecord, scratch);
      if (problem) throw new Error(problem);
      next++;
    };
    /** Stops draining until the producer has met a full ring again (so it does, at the start and mid-stream, on every run). */
    const untilFull = async (): Promise<void> => {
      const seen = Atomics.load(control, FULLS);
      while (Atomics.load(control, FULLS) === seen) {
        if (Date.now() > deadline) throw new Error(`the producer never found the ring full (at record ${next})`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    };
    const gates = new Set([0, 7_001, 15_003]);

    while (next < count) {
      if (Date.now() > deadline) throw new Error(`time box: ${next} of ${count} records read`);
      if (gates.delete(next)) await untilFull();
      if (ring.drain(check) > 0) {
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      sleeps++;
      // Bounded: a lost wake-up fails here instead of hanging.
      await within(ring.sleep(), `consumer asleep at record ${next} woken`);
    }
    expect(next).toBe(count);
    const { fulls, wakes, waitedAsleep } = await report;
    // Nothing more than the records written, nothing left behind.
    expect(ring.drain(() => undefined)).toBe(0);
    expect(ring.used).toBe(0);
    // The producer met a full ring at each gate (at least) and got through by retrying.
    expect(fulls).toBeGreaterThanOrEqual(3);
    // Each burst ended with the consumer asleep on an empty ring: the next write woke it.
    expect(waitedAsleep).toBe(count / burst - 1);
    expect(wakes).toBeGreaterThanOrEqual(count / burst - 1);
    expect(sleeps).toBeGreaterThanOrEqual(wakes);
  }, 120_000);

  it('a worker sleeping on the ring, woken once per batch as the pool does, reads 20,000 records once, in order, intact', async () => {
    const count = 20_000;
    const batch = 64;
    const burst = 2_048;
    const deadline = Date.now() + 90_000;
    const ring = ByteRing.create(4096);
    const asleep = new Int32Array(ring.shared, 0, 4);
    const report = start<{ read: number; sleeps: number; extra: number }>(CONSUMER, { ring: ring.shared, count, deadline });
    let settled = false;
    report.then(() => { settled = true; }, () => { settled = true; });
    const turn = (): Promise<unknown> => new Promise((resolve) => setImmediate(resolve));
    let fulls = 0;
    let wakes = 0;
    let bursts = 0;
    for (let i = 0; i < count && !settled; i++) {
      if (i % burst === 0) {
        // Each burst starts with the consumer asleep on an empty ring: its first 64 records
        // (five of 1,020 bytes) cannot all fit a 4 KiB ring before a wake, so it meets "full".
        while (!(Atomics.load(asleep, 2) === 1 && ring.used === 0) && !settled) {
          if (Date.now() > deadline) throw new Error(`time box: the consumer never slept before record ${i}`);
          await turn();
        }
        bursts++;
      }
      const length = recordLength(i, ring.maxRecord);
      let at: number;
      while ((at = ring.reserve(length)) < 0 && !settled) {
        if (Date.now() > deadline) throw new Error(`time box: the ring stayed full at record ${i}`);
        fulls++;
        // Full: the consumer may be asleep on what this batch wrote so far.
        if (ring.wake()) wakes++;
        await turn();
      }
      if (at < 0) break;
      fillRecord(i, length, ring.bytes, at);
      ring.commit(at, length);
      // One wake per batch, like WorkerSlot's flush: records written in between wait for it.
      if (i % batch === batch - 1 || i === count - 1) {
        if (ring.wake()) wakes++;
        await turn();
      }
    }
    const { read, sleeps, extra } = await within(report, 'the consumer worker reading every record');
    expect(read).toBe(count);
    expect(extra).toBe(0);
    expect(bursts).toBe(Math.ceil(count / burst));
    expect(fulls).toBeGreaterThanOrEqual(bursts);
    expect(sleeps).toBeGreaterThanOrEqual(bursts);
    expect(wakes).toBeGreaterThan(0);
  }, 120_000);
});
