/**
 * Copy-building rules mutation testing found unchecked: one Host only, every hop-by-hop name
 * dropped on its own (not only when Connection names it), control bytes in paths, HTTP/2
 * pseudo-headers, how edits replace repeated names, and the size estimate the queue bounds.
 */
import { describe, expect, it } from 'vitest';
import { HOP_BY_HOP, buildCopy, buildCopyHeaders, encodeArgs, encodeMirrorPath, mirrorUri } from '../../../src/plugins/proxy-mirror/copy-builder.js';

const noEdits = { headersSet: [], headersRemove: new Set<string>(), markHeader: undefined, correlationHeader: undefined };
const noCtx = { bodyLength: undefined, correlationId: undefined };

describe('copy headers', () => {
  it('keeps one Host only: the first, which APISIX set to the upstream host', () => {
    const out = buildCopyHeaders([{ name: 'host', value: 'upstream.internal' }, { name: 'Host', value: 'client.example' }, { name: 'x', value: '1' }], noEdits, noCtx);
    expect(out).toEqual([['host', 'upstream.internal'], ['x', '1']]);
  });

  it('drops each hop-by-hop header on its own, with no Connection header naming it', () => {
    for (const name of ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'expect', 'http2-settings']) {
      expect(HOP_BY_HOP.has(name), name).toBe(true);
      const out = buildCopyHeaders([{ name: 'host', value: 'h' }, { name, value: 'v' }, { name: name.toUpperCase(), value: 'V' }], noEdits, noCtx);
      expect(out, name).toEqual([['host', 'h']]);
    }
    expect(HOP_BY_HOP.size).toBe(10);
  });

  it('drops the headers a Connection header names, whatever their case and spacing', () => {
    const out = buildCopyHeaders([
      { name: 'Connection', value: ' X-Private ,x-other' },
      { name: 'x-private', value: '1' }, { name: 'X-Other', value: '2' }, { name: 'x-kept', value: '3' },
    ], noEdits, noCtx);
    expect(out).toEqual([['x-kept', '3']]);
    // An empty Connection names nothing.
    expect(buildCopyHeaders([{ name: 'connection', value: '' }, { name: 'x', value: '1' }], noEdits, noCtx)).toEqual([['x', '1']]);
  });

  it('only a Connection header names hop-by-hop headers: another header\'s value naming one does not', () => {
    const out = buildCopyHeaders([{ name: 'x-list', value: 'x-kept, host' }, { name: 'x-kept', value: '1' }, { name: 'host', value: 'h' }], noEdits, noCtx);
    expect(out).toEqual([['x-list', 'x-kept, host'], ['x-kept', '1'], ['host', 'h']]);
  });

  it('leaves out HTTP/2 pseudo-headers and entries without a value; lower-cases names', () => {
    const out = buildCopyHeaders([
      { name: ':authority', value: 'h' }, { name: ':path', value: '/x' }, { name: 'X-No-Value', value: undefined }, { name: 'X-Case', value: 'v' },
    ], noEdits, noCtx);
    expect(out).toEqual([['x-case', 'v']]);
  });

  it('removes configured names in any case; a set replaces every copy of a name and goes last', () => {
    const out = buildCopyHeaders(
      [{ name: 'Authorization', value: 's' }, { name: 'x-dup', value: '1' }, { name: 'x-mid', value: 'm' }, { name: 'X-Dup', value: '2' }],
      { ...noEdits, headersRemove: new Set(['authorization']), headersSet: [['x-dup', 'only']] },
      noCtx,
    );
    expect(out).toEqual([['x-mid', 'm'], ['x-dup', 'only']]);
  });

  it('the marker replaces a client-sent one; the correlation id is added only when one was decided', () => {
    const conf = { ...noEdits, markHeader: 'x-mirrored', correlationHeader: 'x-request-id' };
    expect(buildCopyHeaders([{ name: 'x-mirrored', value: 'client' }], conf, noCtx)).toEqual([['x-mirrored', '1']]);
    expect(buildCopyHeaders([{ name: 'x-request-id', value: 'old' }], conf, { bodyLength: undefined, correlationId: 'new' }))
      .toEqual([['x-mirrored', '1'], ['x-request-id', 'new']]);
  });

  it('adds Content-Length for a body, including an empty one, and none without a body', () => {
    expect(buildCopyHeaders([], noEdits, { bodyLength: 0, correlationId: undefined })).toEqual([['content-length', '0']]);
    expect(buildCopyHeaders([{ name: 'content-length', value: '99' }], noEdits, { bodyLength: 12, correlationId: undefined })).toEqual([['content-length', '12']]);
    expect(buildCopyHeaders([{ name: 'content-length', value: '99' }], noEdits, noCtx)).toEqual([]);
  });
});

describe('copy path and query', () => {
  it('percent-encodes control bytes with two hex digits (TAB is %09)', () => {
    expect(encodeMirrorPath('/a\tb')).toBe('/a%09b');
    expect(encodeMirrorPath('/\u0001\u000f\u0010\u007f')).toBe('/%01%0F%10%7F');
    expect(encodeMirrorPath('/sp ace"<>')).toBe('/sp%20ace%22%3C%3E');
  });

  it('keeps a % only when two hex digits follow it', () => {
    expect(encodeMirrorPath('/%c3%A9')).toBe('/%c3%A9');
    expect(encodeMirrorPath('/%zz')).toBe('/%25zz');
    expect(encodeMirrorPath('/%4')).toBe('/%254');
    expect(encodeMirrorPath('/end%')).toBe('/end%25');
    expect(encodeMirrorPath('/%%41')).toBe('/%25%41');
  });

  it('keeps every RFC 3986 pchar as is', () => {
    const pchars = "/AZaz09-._~!$&'()*+,;=:@";
    expect(encodeMirrorPath(pchars)).toBe(pchars);
  });

  it('encodes characters outside the BMP as their 4 UTF-8 bytes, once', () => {
    expect(encodeMirrorPath('/😀x')).toBe('/%F0%9F%98%80x');
  });

  it('an empty request path becomes /; in prefix mode it is appended to the conf path', () => {
    expect(mirrorUri({ path: undefined, pathConcatMode: 'replace' }, '', undefined)).toBe('/');
    expect(mirrorUri({ path: '/m', pathConcatMode: 'prefix' }, '', 'q=1')).toBe('/m/?q=1');
  });

  it('rebuilds a query from args with valueless and empty values kept apart', () => {
    expect(encodeArgs([{ name: 'flag', value: undefined }, { name: 'e', value: '' }, { name: 'a&b', value: '=?' }])).toBe('flag&e=&a%26b=%3D%3F');
    expect(encodeArgs([])).toBe('');
  });
});

describe('the copy and its size estimate', () => {
  it('estimates the memory a copy holds from its URI, headers and body', () => {
    const headers: [string, string][] = [['host', 'h'], ['x-a', 'vv']];
    const withBody = buildCopy('POST', '/p?q', headers, Buffer.alloc(100));
    // URI 4 + 64 fixed + (4+1+4) + (3+2+4) + 100 body
    expect(withBody.sizeBytes).toBe(4 + 64 + 9 + 9 + 100);
    expect(withBody).toMatchObject({ method: 'POST', uri: '/p?q', headers });
    expect(buildCopy('GET', '/', [], undefined).sizeBytes).toBe(1 + 64);
    expect(buildCopy('GET', '/', [], undefined).body).toBeUndefined();
  });
});
