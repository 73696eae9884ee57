/**
 * A single-producer, single-consumer ring of byte records in a SharedArrayBuffer: how the RPC
 * thread hands copies to a dispatch worker, and how the worker hands back their outcomes,
 * without a postMessage per event-loop turn (a postMessage costs the sender 2-3 µs whatever it
 * carries; writing a record here costs a copy of its bytes). A consumer that finds records
 * polls the ring by timer until a few looks find none (`LookPacer`); then it sleeps on
 * `Atomics.waitAsync` and the producer wakes it (one `Atomics.notify`) only then, so a consumer
 * that keeps finding records costs the producer no wake-up at all. A consumer that also reads the ring on its own (the RPC thread
 * reads outcomes when it sends a copy) is woken only for records it left unread (`StaleWaker`).
 *
 * Layout: a header of four int32 (bytes written, bytes read, consumer asleep, spare), then
 * `capacity` bytes of data. Both counters only grow (mod 2^32); a record is a 4-byte length
 * and its bytes, padded to 4; a record never wraps: a length of -1 tells the reader to go
 * back to the start.
 */

const WRITTEN = 0;
const READ = 1;
const ASLEEP = 2;
const HEADER_BYTES = 16;
const WRAP = -1;

/** ES2024's Atomics.waitAsync (Node ≥ 16), not in the ES2023 lib this project compiles against. */
interface AtomicsWaitAsync {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

const pad4 = (n: number): number => (n + 3) & ~3;

/**
 * A polling consumer goes back to sleep on the ring only after this many looks in a row (1 ms
 * apart) found nothing. Until then it polls by timer, so the producer never has to wake it:
 * a wake-up costs the producer an Atomics.notify and, for a consumer in Atomics.waitAsync, a
 * write to the consumer's event loop, 3-5 µs of its own core per record on this project's VM.
 * Polling starts with any record found. It used to start only with a look that found two or
 * more, which a stream slower than the consumer's wake-up never gave: at 8,000 copies/s every
 * other copy woke the worker (docs/performance.md, "Mirror dispatch, seventh pass"). A trickle
 * costs the consumer COOL_LOOKS timer looks per record, and an idle consumer nothing.
 */
export const COOL_LOOKS = 4;

/**
 * How one consumer waits, from what its looks at the ring found: look again by a 1 ms timer
 * (records came within the last COOL_LOOKS looks: no wake-up needed), or sleep on the ring
 * until the producer wakes it.
 */
export class LookPacer {
  private idle = COOL_LOOKS;

  /** What to do after a look that found `found` records. */
  next(found: number): 'timer' | 'sleep' {
    if (found > 0) {
      this.idle = 0;
      return 'timer';
    }
    if (this.idle < COOL_LOOKS && ++this.idle < COOL_LOOKS) return 'timer';
    this.idle = COOL_LOOKS;
    return 'sleep';
  }

  /** Whether the consumer polls by timer now. */
  get polling(): boolean {
    return this.idle < COOL_LOOKS;
  }
}

export class ByteRing {
  /** The ring's bytes (header included), shared with the other thread. */
  readonly shared: SharedArrayBuffer;
  readonly capacity: number;
  private readonly state: Int32Array;
  /** The data region. */
  readonly bytes: Buffer;
  /** `bytes.byteOffset`, a plain field (the typed-array getter is a call in a writer's hot path). */
  readonly bytesOffset: number;
  /** The data region as int32 (payload offsets are multiples of 4: `ints[offset >> 2]`). */
  readonly ints: Int32Array;

  /** A new ring of `capacity` bytes (a power of two, at least 64). */
  static create(capacity: number): ByteRing {
    if (!Number.isInteger(capacity) || capacity < 64 || (capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`ring capacity must be a power of two ≥ 64, got ${capacity}`);
    }
    return new ByteRing(new SharedArrayBuffer(HEADER_BYTES + capacity));
  }

  /** The other end of a ring made by `create` (in another thread). */
  constructor(shared: SharedArrayBuffer) {
    this.shared = shared;
    this.capacity = shared.byteLength - HEADER_BYTES;
    if (this.capacity < 64 || (this.capacity & (this.capacity - 1)) !== 0) {
      throw new RangeError(`ring of ${shared.byteLength} bytes: its data part must be a power of two ≥ 64`);
    }
    this.state = new Int32Array(shared, 0, 4);
    this.bytes = Buffer.from(shared, HEADER_BYTES, this.capacity);
    this.bytesOffset = HEADER_BYTES;
    this.ints = new Int32Array(shared, HEADER_BYTES, this.capacity >> 2);
  }

  /** The largest record `reserve` can ever give (a quarter of the ring). */
  get maxRecord(): number {
    return (this.capacity >> 2) - 4;
  }

  /** Bytes written and not yet read. */
  get used(): number {
    return (Atomics.load(this.state, WRITTEN) - Atomics.load(this.state, READ)) >>> 0;
  }

  // ---- producer -------------------------------------------------------------------------

  /**
   * Room for a record of up to `max` bytes: the offset in `bytes` where its payload starts, or
   * -1 when the ring is too full now (or `max` > maxRecord). Nothing is visible to the
   * consumer until `commit`.
   */
  reserve(max: number): number {
    if (max > this.maxRecord) return -1;
    const w = Atomics.load(this.state, WRITTEN);
    const free = this.capacity - ((w - Atomics.load(this.state, READ)) >>> 0);
    const at = (w >>> 0) & (this.capacity - 1);
    const need = 4 + pad4(max);
    const tail = this.capacity - at;
    if (need <= tail) return need <= free ? at + 4 : -1;
    // Not enough room before the end: the record starts at 0 behind a wrap marker.
    return tail + need <= free ? 4 : -1;
  }

  /** Publishes the record reserved at `payloadAt` with its real length (≤ what was reserved). */
  commit(payloadAt: number, length: number): void {
    const w = Atomics.load(this.state, WRITTEN);
    const at = (w >>> 0) & (this.capacity - 1);
    let advance = 4 + pad4(length);
    if (payloadAt === 4 && at !== 0) {
      // The record went to the start: mark the skipped tail.
      if (this.capacity - at >= 4) this.ints[at >> 2] = WRAP;
      advance += this.capacity - at;
    }
    this.ints[(payloadAt - 4) >> 2] = length;
    Atomics.store(this.state, WRITTEN, (w + advance) | 0);
  }

  /** Where the producer has written up to now (for readPast). */
  mark(): number {
    return Atomics.load(this.state, WRITTEN);
  }

  /** Whether the consumer has read everything written before `mark()` gave `mark`. */
  readPast(mark: number): boolean {
    return ((Atomics.load(this.state, READ) - mark) | 0) >= 0;
  }

  /** Whether the consumer sleeps on the ring (a producer's next `wake` will notify it). */
  get consumerAsleep(): boolean {
    return Atomics.load(this.state, ASLEEP) !== 0;
  }

  /** After committing: true when the consumer was asleep and has been woken (one notify). */
  wake(): boolean {
    if (Atomics.load(this.state, ASLEEP) === 0) return false;
    Atomics.store(this.state, ASLEEP, 0);
    Atomics.notify(this.state, ASLEEP);
    return true;
  }

  // ---- consumer -------------------------------------------------------------------------

  /**
   * Reads every record written so far, in order: `each(bytes, offset, length)` must be done
   * with the bytes when it returns. Returns the number of records read.
   */
  drain(each: (bytes: Buffer, offset: number, length: number) => void): number {
    let r = Atomics.load(this.state, READ);
    const w = Atomics.load(this.state, WRITTEN);
    let n = 0;
    while (r !== w) {
      const at = (r >>> 0) & (this.capacity - 1);
      const len = this.capacity - at >= 4 ? this.ints[at >> 2]! : WRAP;
      if (len === WRAP) {
        r = (r + (this.capacity - at)) | 0;
        continue;
      }
      each(this.bytes, at + 4, len);
      n++;
      r = (r + 4 + pad4(len)) | 0;
      // Free the room as we go, so a producer waiting on a full ring sees it at once.
      Atomics.store(this.state, READ, r);
    }
    return n;
  }

  /**
   * Sleeps until a producer writes: resolves at once when the ring is not empty. The consumer
   * calls this when a drain found nothing; the producer's `wake` ends it. A pending wait does
   * not keep a thread alive: the worker stays up because its message port is listened to.
   */
  sleep(): Promise<void> {
    Atomics.store(this.state, ASLEEP, 1);
    // A record written between the last drain and the flag would get no wake-up: look again.
    if (this.used !== 0) {
      Atomics.store(this.state, ASLEEP, 0);
      return Promise.resolve();
    }
    const waited = (Atomics as unknown as AtomicsWaitAsync).waitAsync(this.state, ASLEEP, 1);
    return waited.async ? waited.value.then(() => undefined) : Promise.resolve();
  }
}

/**
 * How a producer wakes a consumer that also reads the ring by itself at times (the RPC thread
 * reads the done ring each time it sends a copy): `written(true)` wakes it at once; after
 * `written(false)` it is woken only if what was written by then is still unread when the
 * scheduled check runs, and one check at a time is scheduled. So a consumer that keeps reading
 * on its own is never woken, and one that stopped is woken once per check interval.
 */
export class StaleWaker {
  private pending = false;
  private mark = 0;

  /** `schedule` runs its argument later (the worker: a POLL_MS timer). */
  constructor(private readonly ring: ByteRing, private readonly schedule: (check: () => void) => void) {}

  written(urgent: boolean): void {
    if (urgent) {
      this.ring.wake();
      return;
    }
    if (this.pending) return;
    this.pending = true;
    this.mark = this.ring.mark();
    this.schedule(this.check);
  }

  private readonly check = (): void => {
    this.pending = false;
    if (!this.ring.readPast(this.mark)) this.ring.wake();
    // Read up to the mark, but more came since: check those later.
    else if (this.ring.used > 0) this.written(false);
  };
}
