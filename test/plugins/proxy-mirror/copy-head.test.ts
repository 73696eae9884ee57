/**
 * The copy's request head built from the call's bytes (copy-head.ts) is the head the string
 * path builds (buildCopyHeaders + requestHead), byte for byte, or it steps aside (undefined) and
 * the string path decides. Requests are real HTTPReqCall bytes (the Lua encoder's layout, via
 * src/testing/apisix-frames.ts); the byte-wise header lookup of HttpReqCallMessage is checked
 * against the decoded headers the same way.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { requestHead } from '../../../src/mirror-dispatch/h1/request-head.js';
import { buildCopyHeaders, mirrorUri } from '../../../src/plugins/proxy-mirror/copy-builder.js';
import { copyHeadFromBytes } from '../../../src/mirror-dispatch/copy-head.js';
import type { ProxyMirrorConf } from '../../../src/plugins/proxy-mirror/conf.js';
import { HttpReqCallMessage, METHOD_NAMES } from '../../../src/protocol/messages.js';
import type { RawHeaders } from '../../../src/server/raw-headers.js';
import { encodeHttpReqCall, type FrameEntry } from '../../../src/testing/apisix-frames.js';

type HeadConf = Pick<ProxyMirrorConf, 'headersSet' | 'headersRemove' | 'markHeader' | 'correlationHeader'>;

const AUTHORITY = 'mirror.example:8080';

function call(headers: readonly FrameEntry[]): HttpReqCallMessage {
  return new HttpReqCallMessage(encodeHttpReqCall({ id: 1, confToken: 1, method: 'GET', path: '/', srcIp: '127.0.0.1', args: [], headers }));
}

function raw(msg: HttpReqCallMessage): RawHeaders {
  return { bytes: msg.bytes, spans: msg.headerSpans };
}

/** The string path's bytes, or 'refused' when it throws (INVALID_REQUEST). */
function stringPath(msg: HttpReqCallMessage, method: string, uri: string, conf: HeadConf, bodyLength: number | undefined, correlationId: string | undefined): Buffer | 'refused' {
  try {
    const headers = buildCopyHeaders(msg.headers, conf, { bodyLength, correlationId });
    return Buffer.from(requestHead(method, uri, headers, bodyLength, AUTHORITY), 'utf8');
  } catch {
    return 'refused';
  }
}

const NAMES = [
  'host', 'Host', 'HOST', 'user-agent', 'accept', 'x-a', 'X-A', 'x-b', 'content-length', 'Content-Length',
  'transfer-encoding', 'connection', 'keep-alive', 'te', 'upgrade', 'expect', 'trailer', 'http2-settings',
  'proxy-connection', ':authority', 'x-mirror', 'x-corr', 'bad name', 'naïve', '\u212Aeep-alive', '', 'a@b', 'x_c',
];
const VALUES = ['1', 'text/html', 'a, b', '', ' spaced ', 'é', 'a\r\nb', 'cr\ronly', 'lf\nonly', 'nul\0', 'close', 'x-a', 'tab\there', '日本'];

const entry = fc.record({
  name: fc.constantFrom(...NAMES),
  value: fc.option(fc.constantFrom(...VALUES), { nil: undefined, freq: 8 }),
});

const conf: fc.Arbitrary<HeadConf> = fc.record({
  // Parsed confs hold lower-case set and remove names (conf.ts); the other two are as written.
  headersSet: fc.uniqueArray(fc.tuple(fc.constantFrom('x-a', 'host', 'x-new', 'content-length', 'bad name', 'x-mirror', 'x-corr'), fc.constantFrom('v', 'h.example', 'a\r\nb', 'ü')), { selector: ([n]) => n, maxLength: 3 }),
  headersRemove: fc.uniqueArray(fc.constantFrom('x-a', 'user-agent', 'host', 'accept'), { maxLength: 2 }).map((a) => new Set(a)),
  markHeader: fc.constantFrom(undefined, 'x-mirror', 'host', 'X-Mirror', 'x-a'),
  correlationHeader: fc.constantFrom(undefined, 'x-corr', 'x-a', 'host'),
});

const method = fc.constantFrom(...METHOD_NAMES);
const uri = fc.constantFrom('/', '/a?b=1', '/a b', '/ü', '', '/x?q=%20', '/tab\t');
const bodyLength = fc.constantFrom(undefined, 0, 10);
const correlation = fc.constantFrom('id-1', 'a\nb', 'ünï');

describe('copy head from the call\'s bytes', () => {
  it('is the string path\'s head byte for byte, or steps aside; it never accepts what the string path refuses', () => {
    let taken = 0;
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 8 }), conf, method, uri, bodyLength, correlation, (headers, c, m, u, len, corr) => {
        const msg = call(headers);
        const correlationId = c.correlationHeader ? corr : undefined;
        const bytes = copyHeadFromBytes(raw(msg), m, u, c, { bodyLength: len, correlationId });
        const expected = stringPath(call(headers), m, u, c, len, correlationId);
        if (bytes === undefined) return;
        taken++;
        expect(expected).not.toBe('refused');
        expect(bytes.toString('latin1')).toBe((expected as Buffer).toString('latin1'));
      }),
      { numRuns: 3000 },
    );
    // The generator reaches the byte path often enough for the check above to mean something.
    expect(taken).toBeGreaterThan(100);
  });

  it('builds a run of calls with one conf (names compared with the last call\'s, values four bytes at a time, heads cut from shared slabs) as the string path does', () => {
    // Longer values put a bad byte in each lane of the four-byte loop and in its tail.
    const longValues = ['abcdefgh', 'abcd\refgh', 'abcde\nfgh', 'abcdef\0gh', 'abcdefg\u00e9', 'ab\ncd', 'text/html;q=0.9, */*'];
    const longEntry = fc.record({
      name: fc.constantFrom(...NAMES),
      value: fc.option(fc.constantFrom(...VALUES, ...longValues), { nil: undefined, freq: 8 }),
    });
    // A client's headers in the same order call after call, with some calls that differ.
    const calls = fc.array(fc.array(longEntry, { maxLength: 8 }), { minLength: 1, maxLength: 3 }).chain((kinds) =>
      fc.array(fc.constantFrom(...kinds), { minLength: 2, maxLength: 12 }));
    let taken = 0;
    fc.assert(
      fc.property(calls, conf, (run, c) => {
        const built: { head: Buffer; text: string }[] = [];
        // As the plugin calls it: a correlation id whenever the conf names its header.
        const correlationId = c.correlationHeader ? 'id-1' : undefined;
        for (const headers of run) {
          const bytes = copyHeadFromBytes(raw(call(headers)), 'GET', '/a?b=1', c, { bodyLength: undefined, correlationId });
          const expected = stringPath(call(headers), 'GET', '/a?b=1', c, undefined, correlationId);
          if (bytes === undefined) continue;
          taken++;
          expect(expected).not.toBe('refused');
          expect(bytes.toString('latin1')).toBe((expected as Buffer).toString('latin1'));
          built.push({ head: bytes, text: bytes.toString('latin1') });
        }
        // A head built later never writes over an earlier one (they share a slab).
        for (const b of built) expect(b.head.toString('latin1')).toBe(b.text);
      }),
      { numRuns: 1500 },
    );
    expect(taken).toBeGreaterThan(500);
  });

  it('keeps every head of a long run intact across slabs, and builds a head larger than a slab\'s quarter', () => {
    const c: HeadConf = { headersSet: [], headersRemove: new Set(), markHeader: undefined, correlationHeader: undefined };
    const ctx = { bodyLength: undefined, correlationId: undefined };
    const heads: { head: Buffer; text: string }[] = [];
    // About 30 KiB of heads: several slabs.
    for (let i = 0; i < 200; i++) {
      const headers = [{ name: 'host', value: `h${i}.example` }, { name: 'x-n', value: String(i).repeat(50) }];
      const head = copyHeadFromBytes(raw(call(headers)), 'GET', '/', c, ctx)!;
      heads.push({ head, text: `GET / HTTP/1.1\r\nhost: h${i}.example\r\nx-n: ${String(i).repeat(50)}\r\n\r\n` });
    }
    for (const h of heads) expect(h.head.toString('latin1')).toBe(h.text);
    const big = 'v'.repeat(9000);
    const head = copyHeadFromBytes(raw(call([{ name: 'host', value: 'h' }, { name: 'x-big', value: big }])), 'GET', '/', c, ctx);
    expect(head?.toString('latin1')).toBe(`GET / HTTP/1.1\r\nhost: h\r\nx-big: ${big}\r\n\r\n`);
    for (const h of heads) expect(h.head.toString('latin1')).toBe(h.text);
  });

  it('tells apart two names whose hashes collide (names are remembered by hash, then compared)', () => {
    // FNV-1a of both lower-case names, masked to 30 bits as copy-head.ts keeps it: 0x267b28a1.
    const [a, b] = ['x-wjqckg', 'x-bndhsx'];
    const c: HeadConf = { headersSet: [], headersRemove: new Set([a]), markHeader: undefined, correlationHeader: undefined };
    const ctx = { bodyLength: undefined, correlationId: undefined };
    const head = (headers: { name: string; value: string }[]): string | undefined =>
      copyHeadFromBytes(raw(call(headers)), 'GET', '/', c, ctx)?.toString('latin1');
    expect(head([{ name: 'host', value: 'h' }, { name: a, value: '1' }, { name: b, value: '2' }])).toBe(`GET / HTTP/1.1\r\nhost: h\r\n${b}: 2\r\n\r\n`);
    expect(head([{ name: 'host', value: 'h' }, { name: b, value: '2' }, { name: a, value: '1' }])).toBe(`GET / HTTP/1.1\r\nhost: h\r\n${b}: 2\r\n\r\n`);
  });

  it('takes the byte path for an ordinary request (ASCII, a Host, no Connection, pseudo-headers dropped), edits and all', () => {
    const headers: FrameEntry[] = [
      { name: ':authority', value: 'api.example' }, { name: 'Host', value: 'api.example' }, { name: 'User-Agent', value: 'curl/8' }, { name: 'Accept', value: '*/*' },
      { name: 'X-A', value: 'old' }, { name: 'Content-Length', value: '3' }, { name: 'keep-alive', value: 'timeout=5' }, { name: 'x-flag' },
    ];
    const c: HeadConf = { headersSet: [['x-a', 'new']], headersRemove: new Set(['accept']), markHeader: 'x-mirror', correlationHeader: 'x-corr' };
    const target = mirrorUri({ path: '/shadow', pathConcatMode: 'prefix' }, '/get', 'a=1');
    const bytes = copyHeadFromBytes(raw(call(headers)), 'POST', target, c, { bodyLength: 3, correlationId: 'c-1' });
    expect(bytes?.toString('latin1')).toBe(
      'POST /shadow/get?a=1 HTTP/1.1\r\nhost: api.example\r\nuser-agent: curl/8\r\n' +
      'x-a: new\r\nx-mirror: 1\r\nx-corr: c-1\r\ncontent-length: 3\r\n\r\n',
    );
  });

  it.each([
    ['a name with a non-ASCII byte', [{ name: 'host', value: 'h' }, { name: 'naïve', value: '1' }]],
    ['a value with a byte ≥ 0x80', [{ name: 'host', value: 'h' }, { name: 'x-a', value: 'é' }]],
    ['a Connection header', [{ name: 'host', value: 'h' }, { name: 'connection', value: 'x-a' }, { name: 'x-a', value: '1' }]],
    ['no Host', [{ name: 'x-a', value: '1' }]],
    ['a CR LF in a value', [{ name: 'host', value: 'h' }, { name: 'x-a', value: 'a\r\nb' }]],
  ] as const)('steps aside for %s', (_what, headers) => {
    const c: HeadConf = { headersSet: [], headersRemove: new Set(), markHeader: undefined, correlationHeader: undefined };
    expect(copyHeadFromBytes(raw(call(headers)), 'GET', '/', c, { bodyLength: undefined, correlationId: undefined })).toBeUndefined();
  });
});

describe('HttpReqCallMessage.header (byte-wise lookup)', () => {
  it('gives what a lookup in the decoded headers gives, for any name', () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 8 }), fc.constantFrom(...NAMES, 'HOST', 'X-a', 'missing', 'k'), (headers, name) => {
        const lower = name.toLowerCase();
        const decoded = call(headers).headers.find((e) => e.name.toLowerCase() === lower);
        expect(call(headers).header(name)).toBe(decoded ? (decoded.value ?? '') : undefined);
      }),
      { numRuns: 2000 },
    );
  });
});
