/**
 * The copy's query is rebuilt from HTTPReqCall's args (no `Var args` round trip) only when that
 * is exact. Property tests over a model of APISIX's args decoding (uri-args-model.ts), then the
 * plugin end to end with a real target.
 */
import fc from 'fast-check';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rebuildExactQuery } from '../../../src/plugins/proxy-mirror/query-rebuild.js';
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
