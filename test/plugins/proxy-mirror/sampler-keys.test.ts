/**
 * The sampling decision, unit by unit and over the socket: the threshold is strict (`<`), an
 * absent or empty key falls back to the random source for every key source (the `var:` case
 * was untested), ratio 1 never draws, and the key hash is pinned to FNV-1a + murmur3's
 * finaliser by an independent BigInt implementation (changing it would change who is mirrored).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToUnit, isSampled } from '../../../src/plugins/proxy-mirror/sampler.js';
import type { HttpRequest } from '../../../src/plugin-api/index.js';
import type { SampleKey } from '../../../src/plugins/proxy-mirror/conf.js';
import { RecordingTarget, call, expectOk, headerValues, mirrorRoute, startMirrorRunner, type MirrorRunner } from './fixtures.js';
import { waitUntil } from '../../harness/wait.js';

/** FNV-1a (32 bit) over UTF-8, then murmur3's fmix32, in BigInt: written from the algorithms' definitions. */
function referenceHash(key: string): number {
  const M = 0xffffffffn;
  let h = 0x811c9dc5n;
  for (const b of new TextEncoder().encode(key)) {
    h ^= BigInt(b);
    h = (h * 0x01000193n) & M;
  }
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) & M;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) & M;
  h ^= h >> 16n;
  return Number(h) / 2 ** 32;
}

/** Only what the sampler reads: header, arg and var (a promise, as an ExtraInfo round trip). */
function request(parts: { headers?: Record<string, string>; args?: Record<string, string>; vars?: Record<string, string | undefined> }): HttpRequest & { varsAsked: string[] } {
  const varsAsked: string[] = [];
  return {
    varsAsked,
    header: (name: string) => parts.headers?.[name],
    arg: (name: string) => parts.args?.[name],
    var: (name: string) => {
      varsAsked.push(name);
      return Promise.resolve(parts.vars?.[name]);
    },
  } as unknown as HttpRequest & { varsAsked: string[] };
}

/** A random source that counts its draws and always returns `value`. */
function fixedRandom(value: number) {
  const r = Object.assign(() => { r.draws++; return value; }, { draws: 0 });
  return r;
}

const key = (source: SampleKey['source'], name: string): SampleKey => ({ source, name });

describe('hashToUnit', () => {
  it('is FNV-1a then murmur3 fmix32 over the UTF-8 bytes, scaled to [0, 1)', () => {
    for (const k of ['', 'a', 'user-42', 'ü', '😀', 'x'.repeat(100), 'tenant:ACME/42']) {
      expect(hashToUnit(k), JSON.stringify(k)).toBe(referenceHash(k));
    }
    // Pinned values: a change here changes which users a keyed route mirrors.
    expect(hashToUnit('user-42')).toBe(0.48501691734418273);
    expect(hashToUnit('a')).toBe(0.10352621669881046);
  });
});

describe('isSampled', () => {
  it('ratio 1 (or more) is always sampled without drawing or reading the key', () => {
    const random = fixedRandom(0.99);
    const req = request({});
    expect(isSampled(1, key('var', 'remote_user'), req, random)).toBe(true);
    expect(random.draws).toBe(0);
    expect(req.varsAsked).toEqual([]);
  });

  it('random sampling is strict: a draw equal to the ratio is not sampled', () => {
    expect(isSampled(0.25, undefined, request({}), fixedRandom(0.25))).toBe(false);
    expect(isSampled(0.25, undefined, request({}), fixedRandom(0.2499999))).toBe(true);
  });

  it('keyed sampling compares the key hash strictly with the ratio, never drawing', () => {
    const h = hashToUnit('alice');
    for (const [source, req] of [
      ['header', request({ headers: { 'x-user': 'alice' } })],
      ['arg', request({ args: { 'x-user': 'alice' } })],
    ] as const) {
      const random = fixedRandom(0);
      expect(isSampled(h, key(source, 'x-user'), req, random), `${source} at the hash`).toBe(false);
      expect(isSampled(h + 1e-9, key(source, 'x-user'), req, random), `${source} above the hash`).toBe(true);
      expect(random.draws).toBe(0);
    }
  });

  it('a var key is read through ExtraInfo (a promise) and hashed like the others', async () => {
    const h = hashToUnit('alice');
    const req = request({ vars: { remote_user: 'alice' } });
    const random = fixedRandom(0);
    const decided = isSampled(h + 1e-9, key('var', 'remote_user'), req, random);
    expect(decided).toBeInstanceOf(Promise);
    expect(await decided).toBe(true);
    expect(await isSampled(h, key('var', 'remote_user'), req, random)).toBe(false);
    expect(req.varsAsked).toEqual(['remote_user', 'remote_user']);
    expect(random.draws).toBe(0);
  });

  it('an absent key falls back to the random source, for every key source', async () => {
    for (const source of ['header', 'arg'] as const) {
      const random = fixedRandom(0.1);
      expect(isSampled(0.5, key(source, 'missing'), request({}), random), source).toBe(true);
      expect(isSampled(0.05, key(source, 'missing'), request({}), random), source).toBe(false);
      expect(random.draws).toBe(2);
    }
    // Strict there too: a draw equal to the ratio is not sampled.
    expect(await isSampled(0.25, key('var', 'missing'), request({}), fixedRandom(0.25))).toBe(false);
    const random = fixedRandom(0.1);
    expect(await isSampled(0.5, key('var', 'missing'), request({}), random)).toBe(true);
    expect(await isSampled(0.05, key('var', 'missing'), request({}), random)).toBe(false);
    expect(random.draws).toBe(2);
  });

  it('an empty var (nginx\'s "" for an unset variable) falls back to random too; an empty header or arg is a key', async () => {
    const random = fixedRandom(0.1);
    expect(await isSampled(0.5, key('var', 'remote_user'), request({ vars: { remote_user: '' } }), random)).toBe(true);
    expect(random.draws).toBe(1);
    // "" hashes to 0.6689...: below a ratio of 0.7, never drawn.
    const never = fixedRandom(0.99);
    expect(isSampled(0.7, key('header', 'x-user'), request({ headers: { 'x-user': '' } }), never)).toBe(true);
    expect(isSampled(0.6, key('arg', 'u'), request({ args: { u: '' } }), never)).toBe(false);
    expect(never.draws).toBe(0);
  });
});

describe('var-keyed sampling through the runner', () => {
  let target: RecordingTarget;
  let mr: MirrorRunner;
  let draw = 0;
  let draws = 0;
  beforeAll(async () => {
    target = await RecordingTarget.start();
    mr = await startMirrorRunner({ random: () => { draws++; return draw; } });
  });
  afterAll(async () => {
    await mr.close();
    await target.close();
  });

  it('a request without the variable is sampled by the random source: mirrored on a low draw, not on a high one', async () => {
    const route = mirrorRoute('route#varkey#ext-plugin-pre-req#1', { host: target.url, sample_ratio: 0.5, sample_key: 'var:remote_user', path: '/var-fallback' });
    const tagged = (tag: string) => call({ headers: [{ name: 'host', value: 'h' }, { name: 'x-tag', value: tag }], vars: {} });
    draw = 0.9;
    const high = expectOk(await mr.client.httpReqCall(route, tagged('high')));
    expect(high.extraInfoAsked).toEqual([{ kind: 'var', name: 'remote_user' }]);
    draw = 0.1;
    expectOk(await mr.client.httpReqCall(route, tagged('low')));
    expect(draws).toBe(2);
    await waitUntil(() => target.received.length >= 1, 'the copy of the low draw');
    await waitUntil(async () => (await mr.metric('apisix_runner_mirror_requests_total', { target: target.url, outcome: '2xx' })) === 1, 'the copy answered');
    expect(target.received.map((r) => headerValues(r, 'x-tag')[0])).toEqual(['low']);
    expect(await mr.metric('apisix_runner_mirror_skipped_total', { target: target.url, reason: 'not_sampled' })).toBe(1);
  });
});
