/**
 * ByteRing (src/mirror-dispatch/shm-ring.ts) in one thread: a model test of reserve / commit /
 * drain against a FIFO of byte arrays over small rings (so that wrap-around, exact fill, a
 * record ending exactly at the end of the ring and both kinds of refusal all happen), counters
 * that pass 2^31 and 2^32, `create`'s argument checks, and the sleep / wake hand-shake between
 * a consumer and a producer (two ByteRing objects on one SharedArrayBuffer).
 */
import fc from 'fast-check';
import { describe, it, expect } from 'vitest';
import { ByteRing, COOL_LOOKS, LookPacer, StaleWaker } from '../../src/mirror-dispatch/shm-ring.js';
import { FC_RUNS, fcParams, timeoutFor } from '../reliability/fc-config.js';

/** The ring's header, as shm-ring.ts lays it out: four int32 at offset 0. */
const HEADER_BYTES = 16;
const WRITTEN = 0;
const READ = 1;
const ASLEEP = 2;

const pad4 = (n: number): number => Math.ceil(n / 4) * 4;

/** A ring of `capacity` bytes whose written and read counters both start at `counter` (an int32's bits). */
function ringAt(capacity: number, counter: number): ByteRing {
  const shared = new SharedArrayBuffer(HEADER_BYTES + capacity);
  const header = new Int32Array(shared, 0, 4);
  header[WRITTEN] = counter | 0;
  header[READ] = counter | 0;
  return new ByteRing(shared);
}

function header(ring: ByteRing): Int32Array {
  return new Int32Array(ring.shared, 0, 4);
}

/** Everything `drain` gives, copied out (the ring's room is reused once `each` returns). */
function drainAll(ring: ByteRing): Uint8Array[] {
  const out: Uint8Array[] = [];
  ring.drain((bytes, offset, length) => {
    // Records are int32-aligned (thread-protocol reads their fields through `ints`) and inside the ring.
    expect(offset % 4).toBe(0);
    expect(offset + length).toBeLessThanOrEqual(ring.capacity);
    out.push(Uint8Array.from(bytes.subarray(offset, offset + length)));
  });
  return out;
}

/** Writes one record through reserve/commit; false when the ring refused it. */
function put(ring: ByteRing, data: Uint8Array): boolean {
  const at = ring.reserve(data.length);
  if (at < 0) return false;
  ring.bytes.set(data, at);
  ring.commit(at, data.length);
  return true;
}

/** One step of the model test: a write of up to `max` bytes (committing fewer), or a drain. */
type Op =
  | { readonly kind: 'write'; readonly max: number; readonly length: number; readonly data: Uint8Array; readonly garbage: number }
  | { readonly kind: 'drain' };

function opsFor(capacity: number): fc.Arbitrary<Op[]> {
  const maxRecord = capacity / 4 - 4;
  const max = fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 0, max: maxRecord }) },
    { weight: 2, arbitrary: fc.constant(maxRecord) },
    { weight: 1, arbitrary: fc.integer({ min: maxRecord + 1, max: maxRecord + 9 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 8 }) },
  );
  const write: fc.Arbitrary<Op> = max.chain((m) => fc.record({
    kind: fc.constant('write' as const),
    max: fc.constant(m),
    // Mostly the whole reservation (so exact fills happen), sometimes less.
    length: fc.oneof({ weight: 2, arbitrary: fc.constant(Math.max(0, Math.min(m, maxRecord))) }, fc.integer({ min: 0, max: Math.max(0, Math.min(m, maxRecord)) })),
    garbage: fc.integer({ min: 0, max: 255 }),
  }).chain((w) => fc.uint8Array({ minLength: w.length, maxLength: w.length }).map((data) => ({ ...w, data }))));
  const drain: fc.Arbitrary<Op> = fc.constant({ kind: 'drain' as const });
  return fc.array(fc.oneof({ weight: 4, arbitrary: write }, { weight: 1, arbitrary: drain }), { minLength: 1, maxLength: 120, size: 'max' });
}

/**
 * The ring as a specification: unbounded counters and a FIFO. A record goes where the writer
 * is when it fits before the end of the ring, else at 0 (the tail is skipped); it is accepted
 * exactly when every byte it takes, skipped tail included, has been read.
 */
class RingModel {
  readonly fifo: Uint8Array[] = [];
  constructor(readonly capacity: number, public written: number, public read: number) {}

  get used(): number {
    return this.written - this.read;
  }

  /** Where the payload of a record of up to `max` bytes goes, or -1. */
  expectedReserve(max: number): number {
    if (max > this.capacity / 4 - 4) return -1;
    const at = this.written % this.capacity;
    const need = 4 + pad4(max);
    const tail = this.capacity - at;
    if (need <= tail) return this.used + need <= this.capacity ? at + 4 : -1;
    return this.used + tail + need <= this.capacity ? 4 : -1;
  }

  commit(payloadAt: number, data: Uint8Array): void {
    const at = this.written % this.capacity;
    if (payloadAt !== at + 4) this.written += this.capacity - at;
    this.written += 4 + pad4(data.length);
    this.fifo.push(data);
  }

  drain(): Uint8Array[] {
    this.read = this.written;
    return this.fifo.splice(0);
  }
}

describe('ByteRing: records against a FIFO model', () => {
  // Start counters: 0, just below 2^31 (int32 overflow) and just below 2^32 (uint32 wrap), or anywhere.
  const startCounter = fc.oneof(
    fc.constantFrom(0, 2 ** 31 - 64, 2 ** 31 - 4, 2 ** 32 - 64, 2 ** 32 - 4),
    fc.integer({ min: 0, max: 2 ** 30 - 1 }).map((k) => k * 4),
  );
  const seen = { wrapped: 0, exactFill: 0, endsAtRingEnd: 0, refusedFull: 0, refusedTooLarge: 0, counterPassed2e31: 0, counterPassed2e32: 0 };

  it('drains exactly what was committed, in order, with `used` and the counters right', () => {
    fc.assert(fc.property(
      fc.constantFrom(64, 128, 256, 512, 1024).chain((capacity) => fc.tuple(fc.constant(capacity), startCounter, opsFor(capacity))),
      ([capacity, start, ops]) => {
        const consumer = ringAt(capacity, start);
        const producer = new ByteRing(consumer.shared);
        const model = new RingModel(capacity, start, start);
        expect(producer.maxRecord).toBe(capacity / 4 - 4);
        for (const op of ops) {
          if (op.kind === 'drain') {
            expect(drainAll(consumer)).toEqual(model.drain());
          } else {
            const expected = model.expectedReserve(op.max);
            const at = producer.reserve(op.max);
            expect(at).toBe(expected);
            if (at < 0) {
              if (op.max > producer.maxRecord) seen.refusedTooLarge++;
              else seen.refusedFull++;
            } else {
              // The writer may scribble over all it reserved before knowing the real length:
              // a reservation that overlapped unread records would corrupt them.
              producer.bytes.fill(op.garbage, at, at + pad4(op.max));
              producer.bytes.set(op.data, at);
              const before = model.written;
              if (at === 4 && before % capacity !== 0) seen.wrapped++;
              producer.commit(at, op.data.length);
              model.commit(at, op.data);
              if (at + pad4(op.data.length) === capacity) seen.endsAtRingEnd++;
              if (model.used === capacity) seen.exactFill++;
              if (before < 2 ** 31 && model.written >= 2 ** 31) seen.counterPassed2e31++;
              if (before < 2 ** 32 && model.written >= 2 ** 32) seen.counterPassed2e32++;
            }
          }
          expect(producer.used).toBe(model.used);
          expect(consumer.used).toBe(model.used);
          // Counters run mod 2^32 in int32 cells.
          expect(header(producer)[WRITTEN]).toBe(model.written | 0);
          expect(header(producer)[READ]).toBe(model.read | 0);
        }
        expect(drainAll(consumer)).toEqual(model.drain());
        expect(consumer.used).toBe(0);
      },
    ), fcParams(FC_RUNS));
    // The property above proves nothing about a case it never reached.
    for (const [name, count] of Object.entries(seen)) expect(count, name).toBeGreaterThan(0);
  }, timeoutFor(FC_RUNS, 40));
});

describe('ByteRing: counters past 2^31 and 2^32', () => {
  for (const [name, start] of [['int32 overflow (2^31)', 2 ** 31 - 40], ['uint32 wrap (2^32)', 2 ** 32 - 40]] as const) {
    it(`records round-trip while the counters cross the ${name}`, () => {
      const ring = ringAt(64, start);
      const records: Uint8Array[] = [];
      const got: Uint8Array[] = [];
      for (let i = 0; i < 40; i++) {
        const data = Uint8Array.from({ length: (i * 5) % 13 }, (_, k) => (i * 31 + k) & 0xff);
        expect(put(ring, data), `record ${i}`).toBe(true);
        records.push(data);
        if (i % 3 === 2) got.push(...drainAll(ring));
        expect(ring.used).toBeLessThanOrEqual(ring.capacity);
      }
      got.push(...drainAll(ring));
      expect(got).toEqual(records);
      expect(ring.used).toBe(0);
      // The counters did cross: they are past the start, mod 2^32.
      const moved = ((header(ring)[WRITTEN]! | 0) - (start | 0)) >>> 0;
      expect(moved).toBeGreaterThan(40);
      expect(header(ring)[READ]).toBe(header(ring)[WRITTEN]);
    });
  }

  it('a full ring is full across the wrap of the counters (used = capacity, not 0 or negative)', () => {
    const ring = ringAt(64, 2 ** 32 - 16);
    for (let i = 0; i < 4; i++) expect(put(ring, new Uint8Array(12).fill(i))).toBe(true);
    expect(ring.used).toBe(64);
    expect(ring.reserve(0)).toBe(-1);
    expect(drainAll(ring)).toEqual([0, 1, 2, 3].map((i) => new Uint8Array(12).fill(i)));
    expect(ring.reserve(12)).toBeGreaterThan(0);
  });
});

describe('ByteRing.create', () => {
  it.each([0, 32, 63, 65, 96, 100, 64.5, -64, Number.NaN, Number.POSITIVE_INFINITY])('refuses capacity %s with a RangeError naming it', (capacity) => {
    expect(() => ByteRing.create(capacity)).toThrow(RangeError);
    expect(() => ByteRing.create(capacity)).toThrow(`got ${capacity}`);
  });

  it.each([64, 128, 4096, 1 << 20])('makes a ring of %s bytes whose other end sees the same bytes', (capacity) => {
    const ring = ByteRing.create(capacity);
    expect(ring.capacity).toBe(capacity);
    expect(ring.shared.byteLength).toBe(HEADER_BYTES + capacity);
    expect(ring.maxRecord).toBe(capacity / 4 - 4);
    expect(ring.used).toBe(0);
    const other = new ByteRing(ring.shared);
    expect(other.capacity).toBe(capacity);
    expect(put(ring, Uint8Array.of(1, 2, 3))).toBe(true);
    expect(drainAll(other)).toEqual([Uint8Array.of(1, 2, 3)]);
  });
});

/** Settles after the current macrotask turn: anything a notify or a resolved promise would have run, has. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** `p`, or a failure naming what did not happen (a bound, not a timing assertion). */
function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: never happened`)), 10_000); });
  return Promise.race([p, bound]).finally(() => clearTimeout(timer));
}

describe('ByteRing: sleep and wake', () => {
  it('wake() costs nothing and reports false while the consumer is not asleep', () => {
    const consumer = ByteRing.create(64);
    const producer = new ByteRing(consumer.shared);
    expect(put(producer, Uint8Array.of(7))).toBe(true);
    expect(producer.wake()).toBe(false);
    expect(drainAll(consumer)).toEqual([Uint8Array.of(7)]);
  });

  it('sleep() resolves at once, without a wake, when a record came in after the last drain', async () => {
    const consumer = ByteRing.create(64);
    const producer = new ByteRing(consumer.shared);
    expect(drainAll(consumer)).toEqual([]);
    // Written while the consumer was not flagged asleep: the producer's wake does nothing...
    expect(put(producer, Uint8Array.of(1, 2))).toBe(true);
    expect(producer.wake()).toBe(false);
    // ...so sleep() must see the record itself, or it would sleep on it forever.
    let resolved = false;
    void consumer.sleep().then(() => { resolved = true; });
    await nextTurn();
    expect(resolved).toBe(true);
    expect(header(consumer)[ASLEEP]).toBe(0);
    expect(producer.wake()).toBe(false);
    expect(drainAll(consumer)).toEqual([Uint8Array.of(1, 2)]);
  });

  it('an empty ring sleeps until the producer commits and wakes it, once', async () => {
    const consumer = ByteRing.create(128);
    const producer = new ByteRing(consumer.shared);
    let resolved = false;
    const slept = consumer.sleep().then(() => { resolved = true; });
    await nextTurn();
    expect(resolved).toBe(false);
    expect(header(consumer)[ASLEEP]).toBe(1);
    // A commit alone does not end the sleep: the notify does.
    expect(put(producer, Uint8Array.of(9, 8, 7))).toBe(true);
    await nextTurn();
    expect(resolved).toBe(false);
    expect(producer.wake()).toBe(true);
    await within(slept, 'the consumer woken by wake()');
    expect(producer.wake()).toBe(false);
    expect(drainAll(consumer)).toEqual([Uint8Array.of(9, 8, 7)]);
  });

  it('a wake that lands before the consumer waits is not lost (the flag is cleared first)', async () => {
    const consumer = ByteRing.create(64);
    const producer = new ByteRing(consumer.shared);
    for (let round = 0; round < 50; round++) {
      const slept = consumer.sleep();
      expect(put(producer, Uint8Array.of(round))).toBe(true);
      expect(producer.wake()).toBe(true);
      await within(slept, `round ${round}: the consumer woken`);
      expect(drainAll(consumer)).toEqual([Uint8Array.of(round)]);
    }
  });
});

describe('LookPacer: when a consumer polls, looks again, or sleeps', () => {
  const run = (found: number[]): string[] => {
    const pacer = new LookPacer();
    return found.map((n) => pacer.next(n));
  };

  it('polls by timer from the first look that finds a record, however few', () => {
    for (const n of [1, 2, 30, 1000]) expect(run([0, n])).toEqual(['sleep', 'timer']);
    // A trickle: a record, COOL_LOOKS - 1 empty looks still by timer, then a sleep.
    expect(run([1, 0, 0, 0, 0, 1, 0])).toEqual(['timer', 'timer', 'timer', 'timer', 'sleep', 'timer', 'timer']);
  });

  it('keeps polling through fewer than COOL_LOOKS empty looks in a row (a stream between bursts), then sleeps', () => {
    expect(COOL_LOOKS).toBe(4);
    // Three empty looks: still polling; any record in between starts the count again.
    expect(run([5, 0, 0, 0, 1, 0, 0, 0, 0])).toEqual(['timer', 'timer', 'timer', 'timer', 'timer', 'timer', 'timer', 'timer', 'sleep']);
    expect(run([1, 1, 1, 1, 1, 1])).toEqual(['timer', 'timer', 'timer', 'timer', 'timer', 'timer']);
    // Asleep, empty looks (a spurious wake-up) sleep again at once.
    expect(run([0, 0, 0])).toEqual(['sleep', 'sleep', 'sleep']);
  });

  it('says whether it polls now', () => {
    const pacer = new LookPacer();
    expect(pacer.polling).toBe(false);
    pacer.next(3);
    expect(pacer.polling).toBe(true);
    for (let i = 0; i < COOL_LOOKS; i++) pacer.next(0);
    expect(pacer.polling).toBe(false);
  });
});

describe('StaleWaker: wake a consumer that reads on its own only for what it left unread', () => {
  /** A producer end, the consumer's end of the same ring asleep on it, and a hand-run scheduler. */
  const setup = (counter: number) => {
    const producer = ringAt(256, counter);
    const consumer = new ByteRing(producer.shared);
    const checks: (() => void)[] = [];
    const waker = new StaleWaker(producer, (check) => checks.push(check));
    const runChecks = (): void => { for (const c of checks.splice(0)) c(); };
    // The consumer sleeps (the flag its producer reads); whether a wake-up came shows as the flag cleared.
    const asleep = (): boolean => Atomics.load(header(producer), ASLEEP) === 1;
    const sleep = (): void => { void consumer.sleep(); };
    return { producer, consumer, checks, waker, runChecks, asleep, sleep };
  };

  for (const counter of [0, 2 ** 31 - 8, -8]) {
    it(`urgent: wakes at once; otherwise one check, which wakes only if the records are still unread (counters from ${counter})`, () => {
      const { producer, consumer, checks, waker, runChecks, asleep, sleep } = setup(counter);
      sleep();
      expect(asleep()).toBe(true);
      put(producer, Uint8Array.of(1));
      waker.written(true);
      expect(asleep()).toBe(false);
      expect(drainAll(consumer)).toEqual([Uint8Array.of(1)]);

      // Not urgent, and the consumer reads them itself before the check: no wake-up, no further check.
      sleep();
      put(producer, Uint8Array.of(2));
      waker.written(false);
      put(producer, Uint8Array.of(3));
      waker.written(false);
      expect(checks).toHaveLength(1);
      expect(drainAll(consumer)).toEqual([Uint8Array.of(2), Uint8Array.of(3)]);
      runChecks();
      expect(asleep()).toBe(true);
      expect(checks).toHaveLength(0);

      // Left unread until the check: woken then.
      put(producer, Uint8Array.of(4));
      waker.written(false);
      expect(asleep()).toBe(true);
      runChecks();
      expect(asleep()).toBe(false);
      expect(drainAll(consumer)).toEqual([Uint8Array.of(4)]);
    });
  }

  it('records written after the check was scheduled get a check of their own', () => {
    const { producer, consumer, checks, waker, runChecks, asleep, sleep } = setup(0);
    sleep();
    put(producer, Uint8Array.of(1));
    waker.written(false);
    expect(drainAll(consumer)).toEqual([Uint8Array.of(1)]);
    put(producer, Uint8Array.of(2));
    waker.written(false);
    expect(checks).toHaveLength(1);
    // The first check: what it was about was read; the later record gets a check of its own.
    runChecks();
    expect(asleep()).toBe(true);
    expect(checks).toHaveLength(1);
    runChecks();
    expect(asleep()).toBe(false);
    expect(drainAll(consumer)).toEqual([Uint8Array.of(2)]);
  });
});
