/**
 * Edges of the mirror client's framing and request heads, one case per rule: what a status
 * line, a header line, optional whitespace, a chunk or a limit must look like to be read, and
 * which header names the request head recognises in any letter case. (Found by mutation
 * testing: each case fails when the rule it names is dropped or loosened.)
 */
import { describe, it, expect } from 'vitest';
import { MAX_HEAD_BYTES, ResponseParseError, ResponseParser } from '../../src/mirror-dispatch/h1/response-parser.js';
import { InvalidRequestError, requestHead } from '../../src/mirror-dispatch/h1/request-head.js';

interface Read {
  status: number[];
  body: string;
  ends: boolean[];
}

function read(text: string | Buffer, opts: { head?: boolean; pieces?: number } = {}): Read {
  const out: Read = { status: [], body: '', ends: [] };
  const parser = new ResponseParser({
    isHeadRequest: () => opts.head ?? false,
    wantsHeaders: () => false,
    onHead: (s) => { out.status.push(s); },
    onBody: (c) => { out.body += c.toString('latin1'); },
    onEnd: (reusable) => { out.ends.push(reusable); },
  });
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
  const step = opts.pieces ? Math.ceil(buf.length / opts.pieces) : buf.length;
  for (let i = 0; i < buf.length; i += step) parser.execute(buf.subarray(i, i + step));
  return out;
}

describe('status lines', () => {
  it.each([
    ['no reason phrase', 'HTTP/1.1 200\r\ncontent-length: 0\r\n\r\n', 200],
    ['HTTP/1.0 with keep-alive', 'HTTP/1.0 404 Not Found\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n', 404],
    ['a 599', 'HTTP/1.1 599 X\r\ncontent-length: 0\r\n\r\n', 599],
    ['a 100 then a 200', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', 200],
  ])('reads %s', (_name, text, status) => {
    expect(read(text).status).toEqual([status]);
  });

  it.each([
    ['too short to hold a status', 'HTTP/1.1 20\r\n\r\n'],
    ['no space after the version', 'HTTP/1.1_200 OK\r\n\r\n'],
    ['a minor version that is not a digit', 'HTTP/1.x 200 OK\r\n\r\n'],
    ['a status with a letter in it', 'HTTP/1.1 2x0 OK\r\n\r\n'],
    ['a status with a letter last', 'HTTP/1.1 20x OK\r\n\r\n'],
    ['a status below 100', 'HTTP/1.1 099 Low\r\n\r\n'],
    ['a fourth digit', 'HTTP/1.1 2000 OK\r\n\r\n'],
    ['HTTP/2', 'HTTP/2.0 200 OK\r\n\r\n'],
    ['lower-case http', 'http/1.1 200 OK\r\n\r\n'],
  ])('refuses %s', (_name, text) => {
    expect(() => read(text)).toThrow(ResponseParseError);
  });
});

describe('header lines and optional whitespace', () => {
  it('reads framing headers in any case, with spaces and tabs around the value', () => {
    const r = read('HTTP/1.1 200 OK\r\nCONTENT-LENGTH: \t 3 \t\r\nConnection:\tClose\t\r\n\r\nabc');
    expect(r).toEqual({ status: [200], body: 'abc', ends: [false] });
    expect(read('HTTP/1.1 200 OK\r\nTransfer-Encoding:  CHUNKED \r\n\r\n1\r\nz\r\n0\r\n\r\n').body).toBe('z');
    expect(read('HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 0\r\n\r\n').ends).toEqual([false]);
    expect(read('HTTP/1.1 200 OK\r\nconnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n').ends).toEqual([true]);
  });

  it('does not take other headers of the same length for framing headers', () => {
    // 14, 17 and 10 letters, like content-length, transfer-encoding and connection/keep-alive.
    const r = read('HTTP/1.1 200 OK\r\ncontent-lengtX: 5\r\ntransfer-encodinX: chunked\r\nconnectioX: close\r\nkeep-alivX: timeout=9\r\ncontent-length: 2\r\n\r\nok');
    expect(r).toEqual({ status: [200], body: 'ok', ends: [true] });
  });

  it('reads the body until close when the transfer coding is not chunked', () => {
    const r = read('HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nrest');
    expect(r.body).toBe('rest');
    expect(r.ends).toEqual([]);
  });

  it.each([
    ['a line starting with a colon', 'HTTP/1.1 200 OK\r\n: value\r\n\r\n'],
    ['a colon only on the next line', 'HTTP/1.1 200 OK\r\nbroken\r\nx: y\r\n\r\n'],
    ['an empty content-length', 'HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n'],
    ['a 16-digit content-length', 'HTTP/1.1 200 OK\r\ncontent-length: 1234567890123456\r\n\r\n'],
    ['a negative content-length', 'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n'],
  ])('refuses %s', (_name, text) => {
    expect(() => read(text)).toThrow(ResponseParseError);
  });

  it('accepts the same content-length twice', () => {
    expect(read('HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx').body).toBe('x');
  });
});

describe('chunks', () => {
  it('reads upper- and lower-case hex, extensions after a space or a tab, split anywhere', () => {
    const text = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nA\r\n0123456789\r\nb;x=1\r\nabcdefghijk\r\n1 ;y\r\n!\r\n1\t;z\r\n?\r\n0\r\n\r\n';
    for (const pieces of [1, 3, 7, text.length]) expect(read(text, { pieces }).body).toBe('0123456789abcdefghijk!?');
  });

  it.each([
    ['CR not followed by LF after the data', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nz\rX0\r\n\r\n'],
    ['LF without CR after the data', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nz\nX0\r\n\r\n'],
    ['an empty size line', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\r\n'],
    ['a size followed by junk', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1x\r\nz\r\n'],
    ['a size too large', `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${'f'.repeat(15)}\r\n`],
  ])('refuses %s', (_name, text) => {
    expect(() => read(text)).toThrow(ResponseParseError);
  });

  it('refuses a chunk size line longer than 4 KiB that never ends', () => {
    const text = `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;${'e'.repeat(5000)}`;
    expect(() => read(text, { pieces: 10 })).toThrow(/chunk size line too long/);
  });

  it('refuses trailers that never end', () => {
    const text = `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx-t: ${'v'.repeat(MAX_HEAD_BYTES + 10)}`;
    expect(() => read(text, { pieces: 20 })).toThrow(/trailer section too long/);
  });
});

describe('head size limit', () => {
  const headOf = (size: number): string => {
    const start = 'HTTP/1.1 200 OK\r\nx-pad: ';
    const tail = '\r\ncontent-length: 0';
    return `${start}${'p'.repeat(size - start.length - tail.length)}${tail}\r\n\r\n`;
  };

  it('reads a head of exactly 64 KiB, in one piece or many, and refuses one byte more', () => {
    // The limit counts the status line and headers, without the CRLF CRLF that ends them.
    expect(read(headOf(MAX_HEAD_BYTES)).status).toEqual([200]);
    expect(read(headOf(MAX_HEAD_BYTES), { pieces: 9 }).status).toEqual([200]);
    expect(() => read(headOf(MAX_HEAD_BYTES + 1))).toThrow(/response head over/);
  });

  it('lets a HEAD answer announce a length without a body', () => {
    expect(read('HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n', { head: true })).toEqual({ status: [200], body: '', ends: [true] });
  });
});

describe('request heads', () => {
  it('recognises Host, Content-Length and Transfer-Encoding in any letter case', () => {
    expect(requestHead('GET', '/', [['HOST', 'h']], undefined, 'node:1')).toBe('GET / HTTP/1.1\r\nHOST: h\r\n\r\n');
    expect(requestHead('POST', '/', [['host', 'h'], ['Content-Length', '2']], 2, 'n')).toBe('POST / HTTP/1.1\r\nhost: h\r\nContent-Length: 2\r\n\r\n');
    expect(() => requestHead('POST', '/', [['Transfer-Encoding', 'chunked']], 2, 'n')).toThrow(InvalidRequestError);
  });

  it('does not take other names of the same length for them', () => {
    // 4, 14 and 17 letters like host, content-length and transfer-encoding.
    expect(requestHead('GET', '/', [['hosx', 'a'], ['content-lengtx', 'b'], ['transfer-encodinx', 'c']], undefined, 'node:1'))
      .toBe('GET / HTTP/1.1\r\nhosx: a\r\ncontent-lengtx: b\r\ntransfer-encodinx: c\r\nhost: node:1\r\n\r\n');
  });

  it('accepts content-length 0 without a body, refuses it twice or for a missing body', () => {
    expect(requestHead('GET', '/', [['content-length', '0']], undefined, 'n')).toBe('GET / HTTP/1.1\r\ncontent-length: 0\r\nhost: n\r\n\r\n');
    expect(() => requestHead('GET', '/', [['content-length', '3']], undefined, 'n')).toThrow(/does not match/);
    expect(() => requestHead('POST', '/', [['content-length', '1'], ['content-length', '1']], 1, 'n')).toThrow(/does not match/);
  });

  it('adds content-length for a body, including an empty one', () => {
    expect(requestHead('POST', '/', [], 0, 'n')).toBe('POST / HTTP/1.1\r\nhost: n\r\ncontent-length: 0\r\n\r\n');
  });

  it.each([
    ['an empty method', ''],
    ['a method with a space', 'GE T'],
  ])('refuses %s', (_name, method) => {
    expect(() => requestHead(method, '/', [], undefined, 'n')).toThrow(/method/);
  });

  it.each([['an empty target', ''], ['a tab', '/a\tb'], ['DEL', '/a\x7fb'], ['a NUL', '/a\0b']])('refuses a request target with %s', (_name, target) => {
    expect(() => requestHead('GET', target, [], undefined, 'n')).toThrow(/request target/);
  });

  it('checks a name again once it is cached as valid, and never caches an invalid one', () => {
    expect(requestHead('GET', '/', [['x-cached', 'v']], undefined, 'n')).toContain('x-cached: v');
    expect(requestHead('GET', '/', [['x-cached', 'v']], undefined, 'n')).toContain('x-cached: v');
    for (let i = 0; i < 2; i++) expect(() => requestHead('GET', '/', [['x bad', 'v']], undefined, 'n')).toThrow(/header name/);
  });
});
