/**
 * A bounded store of pairs waiting for their other half, bounded in count, bytes and age.
 * A Map keeps insertion order, which is creation order, which (with a monotonic clock) is age
 * order: the oldest entry is always first, so expiry and eviction only ever look at the front.
 * Expiry is lazy (at every add and lookup) plus `sweep()`, which the owner may call from one
 * timer; there is no timer per entry.
 */

export interface PendingLimits {
  readonly maxCount: number;
  readonly maxBytes: number;
  readonly maxAgeMs: number;
}

/** Why an entry left the store without being completed. */
export type DropReason = 'expired' | 'evicted';

interface Slot<T> {
  readonly value: T;
  readonly createdAt: number;
  bytes: number;
}

export class PendingPairs<T> {
  private readonly entries = new Map<string, Slot<T>>();
  private heldBytes = 0;

  constructor(
    public limits: PendingLimits,
    private readonly clock: () => number,
    private readonly onDrop: (key: string, value: T, reason: DropReason) => void,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** The live entry of `key` (an expired one is dropped first). */
  get(key: string): T | undefined {
    const slot = this.entries.get(key);
    if (!slot) return undefined;
    if (this.clock() - slot.createdAt >= this.limits.maxAgeMs) {
      this.sweep();
      return undefined;
    }
    return slot.value;
  }

  /** When the entry of `key` was created (clock units), or undefined. */
  createdAt(key: string): number | undefined {
    return this.entries.get(key)?.createdAt;
  }

  /** Adds an entry (the key must be new); older entries give way when the caps would be passed. */
  add(key: string, value: T, bytes: number): void {
    this.sweep();
    if (this.entries.has(key)) throw new Error(`pending key already present: ${key}`);
    this.entries.set(key, { value, createdAt: this.clock(), bytes });
    this.heldBytes += bytes;
    this.enforce(key);
  }

  /** Changes what an entry holds (an answer arrived); others give way if the byte cap is passed. */
  resize(key: string, bytes: number): void {
    const slot = this.entries.get(key);
    if (!slot) return;
    this.heldBytes += bytes - slot.bytes;
    slot.bytes = bytes;
    this.enforce(key);
  }

  /** Removes a completed entry (no drop callback). */
  delete(key: string): T | undefined {
    const slot = this.entries.get(key);
    if (!slot) return undefined;
    this.entries.delete(key);
    this.heldBytes -= slot.bytes;
    return slot.value;
  }

  /** Drops every entry at or past the age cap; returns how many. */
  sweep(): number {
    const now = this.clock();
    let n = 0;
    for (const [key, slot] of this.entries) {
      if (now - slot.createdAt < this.limits.maxAgeMs) break;
      this.drop(key, slot, 'expired');
      n++;
    }
    return n;
  }

  /** Drops everything (shutdown), as evicted. */
  clear(): void {
    for (const [key, slot] of this.entries) this.drop(key, slot, 'evicted');
  }

  private drop(key: string, slot: Slot<T>, reason: DropReason): void {
    this.entries.delete(key);
    this.heldBytes -= slot.bytes;
    this.onDrop(key, slot.value, reason);
  }

  /** Evicts the oldest entries until the caps hold; `key` goes last, and only if alone it is too big. */
  private enforce(key: string): void {
    while (this.entries.size > this.limits.maxCount || this.heldBytes > this.limits.maxBytes) {
      let victim: [string, Slot<T>] | undefined;
      for (const e of this.entries) {
        if (e[0] !== key) {
          victim = e;
          break;
        }
      }
      if (!victim) {
        const own = this.entries.get(key);
        if (own) this.drop(key, own, 'evicted');
        return;
      }
      this.drop(victim[0], victim[1], 'evicted');
    }
  }
}
