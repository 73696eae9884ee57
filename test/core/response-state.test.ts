// The HTTPRespCall answer the runner builds from a plugin's edits (src/server/response-state.ts):
// what APISIX will set on the client's response, given that init.lua sets a non-empty header
// list verbatim. End to end through the emulator: the post-resp scenarios in test/e2e/scenarios.ts.
import { describe, it, expect } from 'vitest';
import { ResponseState } from '../../src/server/response-state.js';
import { EmptyResponseBodyError } from '../../src/plugin-api/index.js';
import type { TextPair } from '../../src/plugin-api/request.js';

const noExtraInfo = (): Promise<Buffer | undefined> => Promise.reject(new Error('not asked in these tests'));
const state = (status: number, headers: TextPair[]): ResponseState => new ResponseState({ id: 7, status, headers, confToken: 1 }, noExtraInfo);
const upstream: TextPair[] = [
  { name: 'Content-Type', value: 'application/json' },
  { name: 'Content-Length', value: '42' },
  { name: 'Connection', value: 'keep-alive' },
  { name: 'Keep-Alive', value: 'timeout=5' },
  { name: 'Set-Cookie', value: 'a=1' },
  { name: 'Set-Cookie', value: 'b=2' },
];

describe('ResponseState answer', () => {
  it('without edits: status 0, every upstream header except hop-by-hop ones, the upstream length kept', () => {
    expect(state(200, upstream).toAnswer()).toEqual({
      status: 0,
      headers: [
        { name: 'Content-Type', value: 'application/json' },
        { name: 'Set-Cookie', value: 'a=1' },
        { name: 'Set-Cookie', value: 'b=2' },
        { name: 'content-length', value: '42' },
      ],
      body: undefined,
    });
  });

  it('a chunked upstream gets no content-length (nginx frames the streamed body)', () => {
    const s = state(200, [{ name: 'Transfer-Encoding', value: 'chunked' }, { name: 'X-A', value: '1' }]);
    expect(s.toAnswer().headers).toEqual([{ name: 'X-A', value: '1' }]);
    // Both content-length and transfer-encoding from the upstream: the length is not trusted.
    const both = state(200, [{ name: 'Transfer-Encoding', value: 'chunked' }, { name: 'Content-Length', value: '3' }]);
    expect(both.toAnswer().headers).toEqual([]);
  });

  it('a new body: its own length, the upstream content-encoding dropped unless a plugin set one', () => {
    const gz = [...upstream, { name: 'Content-Encoding', value: 'gzip' }];
    const s = state(200, gz);
    s.setBody('héllo');
    const a = s.toAnswer();
    expect(a.headers).toContainEqual({ name: 'content-length', value: '6' });
    expect(a.headers.some((h) => h.name.toLowerCase() === 'content-encoding')).toBe(false);
    expect(Buffer.from(a.body!).toString()).toBe('héllo');
    const kept = state(200, gz);
    kept.setBody(Buffer.from([0x1f, 0x8b]));
    kept.setHeader('content-encoding', 'gzip');
    expect(kept.toAnswer().headers).toContainEqual({ name: 'content-encoding', value: 'gzip' });
  });

  it('plugins cannot set framing headers; deleted names travel as valueless entries', () => {
    const s = state(200, upstream);
    s.setHeader('Transfer-Encoding', 'chunked');
    s.setHeader('content-length', '1');
    s.setHeader('connection', 'close');
    s.deleteHeader('set-cookie');
    s.deleteHeader('content-length');
    expect(s.toAnswer().headers).toEqual([
      { name: 'Content-Type', value: 'application/json' },
      { name: 'content-length', value: '42' },
      { name: 'set-cookie', value: undefined },
    ]);
  });

  it('204, 304 and 1xx carry no content-length', () => {
    for (const status of [204, 304, 101]) expect(state(status, upstream).toAnswer().headers.some((h) => h.name.toLowerCase() === 'content-length')).toBe(false);
    const s = state(200, upstream);
    s.setStatus(204);
    expect(s.toAnswer()).toMatchObject({ status: 204 });
    expect(s.toAnswer().headers.some((h) => h.name.toLowerCase() === 'content-length')).toBe(false);
  });

  it('setBody with an empty body throws EmptyResponseBodyError (APISIX would send the upstream body)', () => {
    const s = state(200, upstream);
    expect(() => s.setBody('')).toThrow(EmptyResponseBodyError);
    expect(() => s.setBody(new Uint8Array(0))).toThrow(/setStatus\(204\)/);
    expect(s.toAnswer().body).toBeUndefined();
  });
});
