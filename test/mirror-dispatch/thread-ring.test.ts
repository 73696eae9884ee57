/**
 * The rings between the RPC thread and a dispatch worker: thread-protocol's copy and outcome
 * records (writeCopy/readCopy, writeDone/readDone) round-trip whatever they are given or refuse
 * it without a trace, and a ByteRing carries 20,000 records from a real worker_threads producer
 * to a consumer that sleeps between drains: every record once, in order, intact, with the
 * producer meeting a full ring and retrying.
 */
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { afterAll, describe, it, expect } from 'vitest';
import { ByteRing } from '../../src/mirror-dispatch/shm-ring.js';
import { readCopy, readDone, writeCopy, writeDone, type RingCopy, type RingDone } from '../../src/mirror-dispatch/thread-protocol.js';
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
  fc.uint8Array({ minLength: 1, maxLength: 380, size: 'max' }).map((b) => Buffer.from(b)),
);
// Sizes such that every record fits an empty 4 KiB ring (largest record 1,020 bytes, counted
// as 3 bytes per UTF-16 unit) and a batch of them does not: refusals and retries happen.
const copyCase: fc.Arbitrary<CopyCase> = fc.record({ nodeId: id, reqId: id, method, head: text(60), body });
const doneCase: fc.Arbitrary<DoneCase> = fc.record({
  reqId: id,
  outcome: fc.constantFrom(...OUTCOMES),
  code: fc.option(text(20), { nil: undefined }),
  message: fc.option(text(100), { nil: undefined }),
});

function drainCopies(ring: ByteRing): RingCopy[] {
  const out: RingCopy[] = [];
  ring.drain((bytes, at) => out.push(readCopy(bytes, ring.ints, at)));
  return out;
}

function drainDones(ring: ByteRing): RingDone[] {
  const out: RingDone[] = [];
  ring.drain((bytes, at) => out.push(readDone(bytes, ring.ints, at)));
  return out;
}

/** What the other end must read: the same fields, a body as its own bytes. */
const asRead = (c: CopyCase): RingCopy => ({ nodeId: c.nodeId, reqId: c.reqId, method: c.method, head: c.head, body: c.body === undefined ? undefined : Buffer.from(c.body) });

/** The ring's header words (written, read, asleep, spare), to show a refused write left no trace. */
const headerOf = (ring: ByteRing): number[] => Array.from(new Int32Array(ring.shared, 0, 4));

describe('thread-protocol ring records', () => {
  it('request ids past 2^31 come back as written (the pool counts them up from 0 and never wraps)', () => {
    // A reqId read back as a negative number matches no pending copy: its outcome would be lost.
    const copies = ByteRing.create(4096);
    const done = ByteRing.create(4096);
    for (const reqId of [2 ** 31 - 1, 2 ** 31, 2 ** 31 + 7, 2 ** 32 - 1]) {
      expect(writeCopy(copies, 2 ** 31 + 1, reqId, 'GET', 'GET / HTTP/1.1\r\n\r\n', undefined)).toBe(true);
      expect(writeDone(done, reqId, '2xx', undefined, undefined)).toBe(true);
    }
    expect(drainCopies(copies).map((c) => [c.nodeId, c.reqId])).toEqual([2 ** 31 - 1, 2 ** 31, 2 ** 31 + 7, 2 ** 32 - 1].map((r) => [2 ** 31 + 1, r]));
    expect(drainDones(done).map((d) => d.reqId)).toEqual([2 ** 31 - 1, 2 ** 31, 2 ** 31 + 7, 2 ** 32 - 1]);
  });

  it.each([2 ** 32, 2 ** 40, -1, 1.5, Number.NaN])('an id a record cannot carry (%s) is refused, so the copy goes as a message with its id intact', (bad) => {
    const ring = ByteRing.create(4096);
    const before = headerOf(ring);
    expect(writeCopy(ring, bad, 1, 'GET', 'GET / HTTP/1.1\r\n\r\n', undefined)).toBe(false);
    expect(writeCopy(ring, 1, bad, 'GET', 'GET / HTTP/1.1\r\n\r\n', undefined)).toBe(false);
    expect(writeDone(ring, bad, 'error', 'E', 'm')).toBe(false);
    expect(headerOf(ring)).toEqual(before);
    expect(drainCopies(ring)).toEqual([]);
  });

  it('a copy that can never fit is refused without a trace: method over 255 bytes, head or body past the largest record', () => {
    const ring = ByteRing.create(4096); // largest record: 1,020 bytes
    const before = headerOf(ring);
    expect(writeCopy(ring, 1, 1, 'X'.repeat(256), 'h', undefined)).toBe(false);
    expect(writeCopy(ring, 1, 1, 'GET', 'h'.repeat(400), undefined)).toBe(false);
    expect(writeCopy(ring, 1, 1, 'GET', 'h', Buffer.alloc(1020))).toBe(false);
    expect(writeDone(ring, 1, 'error', 'c'.repeat(200), 'm'.repeat(200))).toBe(false);
    expect(headerOf(ring)).toEqual(before);
    // The same ring still takes what fits, right after.
    expect(writeCopy(ring, 1, 1, 'GET', 'h'.repeat(300), Buffer.alloc(10, 1))).toBe(true);
    expect(drainCopies(ring)).toEqual([{ nodeId: 1, reqId: 1, method: 'GET', head: 'h'.repeat(300), body: Buffer.alloc(10, 1) }]);
  });

  it('copies round-trip in order: ids, method, UTF-8 head, body absent / empty / bytes; a refused one leaves no trace and fits once drained', () => {
    let refused = 0;
    fc.assert(fc.property(fc.array(copyCase, { minLength: 1, maxLength: 40, size: 'max' }), (cases) => {
      const ring = ByteRing.create(4096);
      const read: RingCopy[] = [];
      for (const c of cases) {
        const before = headerOf(ring);
        if (writeCopy(ring, c.nodeId, c.reqId, c.method, c.head, c.body)) continue;
        refused++;
        expect(headerOf(ring)).toEqual(before);
        read.push(...drainCopies(ring));
        expect(writeCopy(ring, c.nodeId, c.reqId, c.method, c.head, c.body)).toBe(true);
      }
      read.push(...drainCopies(ring));
      expect(read).toEqual(cases.map(asRead));
    }), fcParams(FC_RUNS));
    expect(refused).toBeGreaterThan(0);
  }, timeoutFor(FC_RUNS, 20));

  it('outcomes round-trip: every outcome, code and message each absent, empty or any Unicode', () => {
    let refused = 0;
    fc.assert(fc.property(fc.array(doneCase, { minLength: 1, maxLength: 40, size: 'max' }), (cases) => {
      const ring = ByteRing.create(4096);
      const read: RingDone[] = [];
      for (const d of cases) {
        const before = headerOf(ring);
        if (writeDone(ring, d.reqId, d.outcome, d.code, d.message)) continue;
        refused++;
        expect(headerOf(ring)).toEqual(before);
        read.push(...drainDones(ring));
        expect(writeDone(ring, d.reqId, d.outcome, d.code, d.message)).toBe(true);
      }
      read.push(...drainDones(ring));
      expect(read).toEqual(cases);
    }), fcParams(FC_RUNS));
    expect(refused).toBeGreaterThan(0);
  }, timeoutFor(FC_RUNS, 20));
});
