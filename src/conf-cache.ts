import { randomInt } from 'node:crypto';
import type { CompiledChain } from './plugin-registry.js';

export interface ConfCacheOptions {
  /** How long a conf is kept after its last PrepareConf (ms). */
  readonly ttlMs: number;
  /** Upper bound of confs held; the least recently prepared one is evicted beyond it. */
  readonly maxEntries: number;
  readonly now?: () => number;
  /** Called for every conf that leaves the cache (expired, evicted, cleared). */
  readonly onEvict?: (chain: CompiledChain, key: string) => void;
  /** The first token handed out, in [1, 2^32 - 1] (default: a random one); for tests of the wrap-around. */
  readonly firstToken?: number;
}

export interface ConfEntry {
  readonly token: number;
  readonly key: string;
  readonly chain: CompiledChain;
  expiresAt: number;
}

/**
 * Route confs by token, with APISIX's idempotency key mapped to the same token.
 * Entries expire `ttlMs` after their last PrepareConf (APISIX re-prepares after 0.9 × its
 * own TTL, so a conf in use is refreshed before it expires) and the count is bounded.
 */
export class ConfCache {
  private readonly byToken = new Map<number, ConfEntry>();
  /**
   * Insertion order = preparation order, which is also expiry order (one TTL for all).
   * Keyless entries are tracked here under their token, a number, which no key (a string from
   * the wire) can ever equal.
   */
  private readonly byKey = new Map<string | number, ConfEntry>();
  /**
   * Starts at a random point: after a restart, an APISIX worker that has not flushed its
   * cache yet may still send a token of the old process, which must not name another route here.
   */
  private nextToken: number;
  private readonly now: () => number;

  constructor(private readonly options: ConfCacheOptions) {
    this.now = options.now ?? Date.now;
    const first = options.firstToken;
    if (first !== undefined && !(Number.isInteger(first) && first >= 1 && first <= 0xffffffff)) {
      throw new RangeError(`firstToken must be an integer in [1, 4294967295], got ${first}`);
    }
    this.nextToken = first ?? 1 + randomInt(0xfffffffe);
  }

  get size(): number {
    return this.byToken.size;
  }

  /** The entry of a token, or undefined when unknown or expired. */
  get(token: number): ConfEntry | undefined {
    const entry = this.byToken.get(token);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.remove(entry);
      return undefined;
    }
    return entry;
  }

  /** The live entry for an idempotency key, refreshed, or undefined. */
  refresh(key: string): ConfEntry | undefined {
    // '' (keyless) is never a key of byKey, so a keyless conf is never shared.
    const entry = this.byKey.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.remove(entry);
      return undefined;
    }
    entry.expiresAt = this.now() + this.options.ttlMs;
    this.byKey.delete(key);
    this.byKey.set(key, entry);
    return entry;
  }

  /** Stores a compiled chain under a fresh token. An empty key is never shared. */
  put(key: string, chain: CompiledChain): ConfEntry {
    this.sweep();
    const old = this.byKey.get(key);
    if (old) this.remove(old);
    while (this.byToken.size >= this.options.maxEntries) {
      // Every entry, keyless ones too, is in byKey, oldest first. None only with maxEntries <= 0.
      const oldest = this.byKey.values().next().value;
      if (!oldest) break;
      this.remove(oldest);
    }
    const entry: ConfEntry = { token: this.allocateToken(), key, chain, expiresAt: this.now() + this.options.ttlMs };
    this.byToken.set(entry.token, entry);
    this.byKey.set(key === '' ? entry.token : key, entry);
    return entry;
  }

  /** Drops expired entries from the front of the expiry order. */
  sweep(): number {
    const t = this.now();
    let removed = 0;
    for (const entry of this.byKey.values()) {
      if (entry.expiresAt > t) break;
      this.remove(entry);
      removed++;
    }
    return removed;
  }

  clear(): void {
    for (const entry of [...this.byToken.values()]) this.remove(entry);
  }

  private remove(entry: ConfEntry): void {
    if (this.byToken.get(entry.token) !== entry) return;
    this.byToken.delete(entry.token);
    this.byKey.delete(entry.key === '' ? entry.token : entry.key);
    this.options.onEvict?.(entry.chain, entry.key);
  }

  private allocateToken(): number {
    // uint32, never 0 (APISIX's default, i.e. "absent"), never one still in use.
    for (;;) {
      const token = this.nextToken;
      this.nextToken = token >= 0xffffffff ? 1 : token + 1;
      if (!this.byToken.has(token)) return token;
    }
  }
}
