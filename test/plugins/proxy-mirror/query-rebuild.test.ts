/**
 * The copy's query is rebuilt from HTTPReqCall's args (no `Var args` round trip) only when that
 * is exact. Property tests over a model of APISIX's args decoding (uri-args-model.ts), then the
 * plugin end to end with a real target.
 */
import fc from 'fast-check';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { literalArgs, rebuildExactQuery } from '../../../src/plugins/proxy-mirror/query-rebuild.js';
import { encodeArgs, mirrorUri } from '../../../src/plugins/proxy-mirror/copy-builder.js';
import { uriOfCall, type UriRule } from '../../../src/mirror-dispatch/copy-uri.js';
import { HttpReqCallMessage } from '../../../src/protocol/messages.js';
import { encodeHttpReqCall } from '../../../src/testing/apisix-frames.js';
import { getUriArgs } from './uri-args-model.js';
import { RecordingTarget, call, expectOk, mirrorRoute, startMirrorRunner, type MirrorRunner } from './fixtures.js';

const LITERAL_NAME_CHARS = [..."ABCXYZabcxyz0189-._~!$'()*,;:@/?"];
const literalName = fc.string({ unit: fc.constantFrom(...LITERAL_NAME_CHARS), minLength: 1, maxLength: 8 });
const literalValue = fc.string({ unit: fc.constantFrom(...LITERAL_NAME_CHARS, '='), maxLength: 8 });
/** Any query, escapes, separators and non-ASCII included. */
const anyQuery = fc.string({
  unit: fc.constantFrom('a', 'b', 'Z', '1', '=', '&', '%', '2', '0', 'F', '+', ' ', '#', '/', '?', ';', '~', 'é', '中'),
  maxLength: 24,
});

/** A query with no escape, no empty piece and no empty name: what a client writes literally. */
function isLiteral(raw: string): boolean {
  return !raw.includes('%') && raw.split('&').every((p) => p !== '' && !p.startsWith('='));
}

describe('rebuildExactQuery against APISIX args decoding', () => {
  it('gives back the raw query byte for byte for one name written literally', () => {
    fc.assert(fc.property(literalName, fc.array(fc.option(literalValue, { nil: undefined }), { minLength: 1, maxLength: 10 }), (name, values) => {
      const raw = values.map((v) => (v === undefined ? name : `${name}=${v}`)).join('&');
      expect(rebuildExactQuery(getUriArgs(raw))).toBe(raw);
    }), { numRuns: 2000 });
  });

  it('for any query: whatever it rebuilds decodes to the same args, and equals a literal raw query', () => {
    fc.assert(fc.property(anyQuery, (raw) => {
      const args = getUriArgs(raw);
      const rebuilt = rebuildExactQuery(args);
      if (rebuilt === undefined) return;
      expect(getUriArgs(rebuilt)).toEqual(args);
      if (isLiteral(raw)) expect(rebuilt).toBe(raw);
    }), { numRuns: 5000 });
  });

  it('asks APISIX when names differ (their order is lost), when something was escaped, or for 100+ args', () => {
    expect(rebuildExactQuery(getUriArgs('a=1&b=2'))).toBeUndefined();
    expect(rebuildExactQuery(getUriArgs('q=hello%20world'))).toBeUndefined();
    expect(rebuildExactQuery(getUriArgs('q=a+b'))).toBeUndefined();
    expect(rebuildExactQuery(getUriArgs('q=%C3%A9'))).toBeUndefined();
    expect(rebuildExactQuery(getUriArgs('q=%26'))).toBeUndefined();
    expect(rebuildExactQuery(getUriArgs(Array.from({ length: 100 }, (_, i) => `a=${i}`).join('&')))).toBeUndefined();
    expect(rebuildExactQuery(getUriArgs(Array.from({ length: 99 }, (_, i) => `a=${i}`).join('&')))).toBe(Array.from({ length: 99 }, (_, i) => `a=${i}`).join('&'));
    expect(rebuildExactQuery([])).toBeUndefined();
  });

  it('keeps value-less, empty and repeated args apart', () => {
    expect(rebuildExactQuery(getUriArgs('flag'))).toBe('flag');
    expect(rebuildExactQuery(getUriArgs('a=&a&a=x=y'))).toBe('a=&a&a=x=y');
  });
});

/** Arg text: literal characters, the ones that need escaping, non-ASCII, and `ÿ` (made invalid UTF-8 below). */
const argText = fc.string({ unit: fc.constantFrom('a', 'b', 'Z', '1', '=', ':', '/', '?', '~', '%', '+', ' ', '&', '#', 'é', 'ÿ', 'K'), maxLength: 6 });
const argList = fc.array(fc.record({ name: argText, value: fc.option(argText, { nil: undefined }) }), { maxLength: 6 });

/**
 * The HTTPReqCall of `path` and `args` as APISIX's encoder sends it, with every `ÿ` (C3 BF)
 * turned into C3 41: an invalid UTF-8 sequence followed by `A`, which decodes to U+FFFD `A`.
 */
function callBytes(path: string, args: readonly { name: string; value: string | undefined }[]): HttpReqCallMessage {
  const b = Buffer.from(encodeHttpReqCall({ id: 1, confToken: 1, method: 'GET', path, srcIp: '127.0.0.1', args, headers: [] }));
  for (let i = 0; i + 1 < b.length; i++) if (b[i] === 0xc3 && b[i + 1] === 0xbf) b[i + 1] = 0x41;
  return new HttpReqCallMessage(b);
}

describe('a copy\'s target built from the call\'s bytes (a dispatch worker)', () => {
  it('literalArgs on the bytes decides as rebuildExactQuery on the decoded args', () => {
    let rebuildable = 0;
    fc.assert(fc.property(fc.oneof(argList, anyQuery.map(getUriArgs)), (args) => {
      const msg = callBytes('/p', args);
      const expected = rebuildExactQuery(msg.args) !== undefined;
      if (expected) rebuildable++;
      expect(literalArgs(msg.bytes, msg.argSpans)).toBe(expected);
    }), { numRuns: 3000 });
    // Both answers were exercised, not only "no".
    expect(rebuildable).toBeGreaterThan(100);
  });

  it('literalArgs: one name repeated, a name that differs by case or one byte, 99 and 100 args', () => {
    const yes = (q: string): boolean => { const m = callBytes('/', getUriArgs(q)); return literalArgs(m.bytes, m.argSpans); };
    expect(yes('a=1&a&a=x=y')).toBe(true);
    expect(yes('a=1&A=1')).toBe(false);
    expect(yes('ab=1&ac=1')).toBe(false);
    expect(yes('')).toBe(false);
    expect(yes(Array.from({ length: 99 }, () => 'a').join('&'))).toBe(true);
    expect(yes(Array.from({ length: 100 }, () => 'a').join('&'))).toBe(false);
  });

  it('uriOfCall gives what the RPC thread builds from the decoded path and args', () => {
    const rule = fc.record({
      path: fc.option(fc.constantFrom('/mirror', '/m/', '/a b'), { nil: undefined }),
      pathConcatMode: fc.constantFrom('replace' as const, 'prefix' as const),
      query: fc.constantFrom('auto' as const, 'raw' as const, 'rebuilt' as const),
    });
    const path = fc.string({ unit: fc.constantFrom('/', 'a', ' ', '%', '2', '0', 'é', '?', '#', 'ÿ'), maxLength: 10 });
    let built = 0;
    fc.assert(fc.property(rule, path, fc.oneof(argList, anyQuery.map(getUriArgs)), (r: UriRule, p, a) => {
      const msg = callBytes(p, a);
      const args = msg.args;
      // The RPC thread's query: none without args, `auto` only when rebuildable, `rebuilt` always re-encoded.
      const query = args.length === 0 ? undefined : r.query === 'rebuilt' ? encodeArgs(args) : r.query === 'auto' ? rebuildExactQuery(args) : undefined;
      const canBuild = args.length === 0 || r.query === 'rebuilt' || query !== undefined;
      const got = uriOfCall(msg.bytes, r);
      if (!canBuild) {
        expect(got).toBeUndefined();
        return;
      }
      built++;
      expect(got).toBe(mirrorUri(r, msg.path, query));
    }), { numRuns: 3000 });
    expect(built).toBeGreaterThan(1000);
  });
});

describe('proxy-mirror query (default "auto")', () => {
  let target: RecordingTarget;
  let mr: MirrorRunner;
  beforeAll(async () => {
    target = await RecordingTarget.start();
    mr = await startMirrorRunner();
  });
  afterAll(async () => {
    await mr.close();
    await target.close();
  });

  it('sends an exactly rebuildable query without an ExtraInfo round trip', async () => {
    const route = mirrorRoute('route#auto#x#1', { host: target.url });
    const o = expectOk(await mr.client.httpReqCall(route, call({
      path: '/get', args: [{ name: 'id', value: '7' }, { name: 'id', value: 'x:y/z' }, { name: 'id' }], vars: { args: 'must-not-be-read' },
    })));
    expect(o.extraInfoAsked).toEqual([]);
    const [copy] = await target.waitFor(1);
    expect(copy!.url).toBe('/get?id=7&id=x:y/z&id');
  });

  it('asks APISIX for the raw query when rebuilding could differ', async () => {
    const route = mirrorRoute('route#auto2#x#1', { host: target.url });
    const raw = 'b=2&a=hello%20world';
    const o = expectOk(await mr.client.httpReqCall(route, call({ path: '/get', args: getUriArgs(raw), vars: { args: raw } })));
    expect(o.extraInfoAsked).toEqual([{ kind: 'var', name: 'args' }]);
    await target.waitFor(2);
    expect(target.received[1]!.url).toBe(`/get?${raw}`);
  });

  it('"raw" always asks, even for a rebuildable query', async () => {
    const route = mirrorRoute('route#raw#x#1', { host: target.url, query: 'raw' });
    const o = expectOk(await mr.client.httpReqCall(route, call({ path: '/get', args: [{ name: 'x', value: '1' }], vars: { args: 'x=%31' } })));
    expect(o.extraInfoAsked).toEqual([{ kind: 'var', name: 'args' }]);
    await target.waitFor(3);
    expect(target.received[2]!.url).toBe('/get?x=%31');
  });
});
