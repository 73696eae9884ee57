/**
 * Decides whether a request is mirrored. Random sampling follows APISIX (ratio 1 always,
 * otherwise `random() < ratio`); keyed sampling hashes a header, arg or nginx variable so the
 * same key is always (or never) mirrored, and falls back to random when the key is absent.
 */
import type { HttpRequest } from '../../plugin-api/index.js';
import type { SampleKey } from './conf.js';

/** A uniform random number in [0, 1); injectable so tests are deterministic. */
export type RandomSource = () => number;

/** Hashes a key to [0, 1): FNV-1a over UTF-8 bytes, then a murmur3 finaliser to spread the bits. */
export function hashToUnit(key: string): number {
  let h = 0x811c9dc5;
  const bytes = Buffer.from(key, 'utf8');
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 0x1_0000_0000;
}

/**
 * The sampling decision for one request and one target: synchronous unless the key is an
 * nginx variable (one ExtraInfo round trip), so unsampled requests cost no promise.
 */
export function isSampled(
  ratio: number,
  key: SampleKey | undefined,
  req: HttpRequest,
  random: RandomSource,
): boolean | Promise<boolean> {
  if (ratio >= 1) return true;
  if (key) {
    if (key.source === 'var') {
      return req.var(key.name).then((v) => (v !== undefined && v !== '' ? hashToUnit(v) < ratio : random() < ratio));
    }
    const value = key.source === 'header' ? req.header(key.name) : req.arg(key.name);
    if (value !== undefined) return hashToUnit(value) < ratio;
  }
  return random() < ratio;
}
