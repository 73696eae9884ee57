/**
 * The mirror client's response parser against answers built from a model: any mix of framings
 * (content-length, chunked with extensions and trailers, no body for HEAD/204/304, until close),
 * interim 1xx answers, pipelined back to back and split at arbitrary points, must give every
 * answer's status, headers and body bytes exactly; what cannot be framed safely is an error.
 */
import fc from 'fast-check';
import { describe, it, expect } from 'vitest';
import { ResponseParseError, ResponseParser, type ResponseEvents } from '../../src/mirror-dispatch/h1/response-parser.js';

interface Answer {
  status: number;
  interim: number[];
  isHead: boolean;
  framing: 'length' | 'chunked' | 'close';
  headers: [string, string][];
  body: Uint8Array;
  chunks: number[];
  upperHex: boolean;
  extensions: boolean;
  trailers: boolean;
  close: boolean;
}

const token = fc.stringMatching(/^x-[a-z0-9-]{1,12}$/);
const value = fc.stringMatching(/^[ -~]{0,20}$/).map((v) => v.trim());

const answerArb: fc.Arbitrary<Answer> = fc.record({
  status: fc.oneof(fc.constantFrom(200, 201, 204, 304, 404, 500, 503), fc.integer({ min: 200, max: 599 })),
  interim: fc.array(fc.constantFrom(100, 102, 103), { maxLength: 2 }),
  isHead: fc.boolean(),
  framing: fc.constantFrom('length' as const, 'chunked' as const),
  headers: fc.array(fc.tuple(token, value), { maxLength: 4 }),
  body: fc.uint8Array({ maxLength: 300 }),
  chunks: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 8 }),
  upperHex: fc.boolean(),
  extensions: fc.boolean(),
  trailers: fc.boolean(),
  close: fc.constant(false),
});

function hasBody(a: Answer): boolean {
  return !a.isHead && a.status !== 204 && a.status !== 304;
}

/** The bytes a server would send for an answer. */
function encode(a: Answer): Buffer {
  const parts: Buffer[] = [];
  for (const s of a.interim) parts.push(Buffer.from(`HTTP/1.1 ${s} Interim\r\nlink: </x>; rel=preload\r\n\r\n`));
  let head = `HTTP/1.1 ${a.status} Reason Phrase\r\n`;
  for (const [n, v] of a.headers) head += `${n}: ${v}\r\n`;
  if (a.close) head += 'Connection: close\r\n';
  const body = Buffer.from(a.body);
  if (a.framing === 'length') {
    head += `Content-Length: ${hasBody(a) || a.isHead ? body.length : 0}\r\n\r\n`;
    parts.push(Buffer.from(head));
    if (hasBody(a)) parts.push(body);
  } else if (a.framing === 'chunked') {
    head += 'Transfer-Encoding: chunked\r\n\r\n';
    parts.push(Buffer.from(head));
    if (hasBody(a)) {
      let p = 0;
      for (const size of [...a.chunks, body.length]) {
        if (p >= body.length) break;
        const n = Math.min(size, body.length - p);
        let line = n.toString(16);
        if (a.upperHex) line = line.toUpperCase();
        if (a.extensions) line += ';name=value';
        parts.push(Buffer.from(`${line}\r\n`), body.subarray(p, p + n), Buffer.from('\r\n'));
        p += n;
      }
      parts.push(Buffer.from(a.extensions ? '0;last\r\n' : '0\r\n'));
      if (a.trailers) parts.push(Buffer.from('x-checksum: abc\r\nx-other: 1\r\n'));
      parts.push(Buffer.from('\r\n'));
    }
  } else {
    parts.push(Buffer.from(`${head}\r\n`));
    if (hasBody(a)) parts.push(body);
  }
  return Buffer.concat(parts);
}

interface Seen {
  status: number;
  headers: string[] | undefined;
  body: Buffer[];
  reusable: boolean | undefined;
}

/** Feeds `bytes` split at `cuts` and records what the parser reports. */
function parse(answers: readonly Answer[], bytes: Buffer, cuts: number[], wantHeaders: boolean, closeAtEnd = false): Seen[] {
  const seen: Seen[] = [];
  let current: Seen | undefined;
  const events: ResponseEvents = {
    isHeadRequest: () => answers[seen.length - 1]!.isHead,
    wantsHeaders: () => wantHeaders,
    onHead: (status, headers) => {
      current = { status, headers, body: [], reusable: undefined };
      seen.push(current);
    },
    onBody: (chunk) => { current!.body.push(Buffer.from(chunk)); },
    onEnd: (reusable) => { current!.reusable = reusable; },
  };
  // isHeadRequest is asked after onHead for the answer being read.
  const parser = new ResponseParser(events);
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    if (p > prev) parser.execute(bytes.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  if (closeAtEnd) expect(parser.finish()).toBe(true);
  return seen;
}

describe('h1 response parser', () => {
  it('gives every pipelined answer its status, headers and body, however the bytes are split', () => {
    fc.assert(fc.property(
      fc.array(answerArb, { minLength: 1, maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.boolean(),
      fc.boolean(),
      (answers, cuts, wantHeaders, endWithClose) => {
        if (endWithClose) {
          // The last answer runs until the connection closes (no length, no chunking).
          answers[answers.length - 1] = { ...answers[answers.length - 1]!, framing: 'close', close: true };
        }
        const bytes = Buffer.concat(answers.map(encode));
        const seen = parse(answers, bytes, cuts, wantHeaders, endWithClose);
        expect(seen.map((s) => s.status)).toEqual(answers.map((a) => a.status));
        answers.forEach((a, i) => {
          const s = seen[i]!;
          expect(Buffer.concat(s.body).equals(hasBody(a) ? Buffer.from(a.body) : Buffer.alloc(0))).toBe(true);
          const closes = a.framing === 'close' && hasBody(a);
          expect(s.reusable).toBe(!(a.close || closes));
          if (!wantHeaders) {
            expect(s.headers).toBeUndefined();
          } else {
            const names = s.headers!.filter((_, j) => j % 2 === 0);
            const values = s.headers!.filter((_, j) => j % 2 === 1);
            const own = a.headers.map(([n]) => n);
            expect(names.filter((n) => n.startsWith('x-'))).toEqual(own);
            expect(values.slice(0, own.length)).toEqual(a.headers.map(([, v]) => v));
          }
        });
      },
    ), { numRuns: 400 });
  });

  it('reads the answer to a HEAD request as head only, even with a content-length', () => {
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello');
    const heads = [true, false];
    const seen: { status: number; body: string }[] = [];
    const parser = new ResponseParser({
      isHeadRequest: () => heads[seen.length - 1]!,
      wantsHeaders: () => false,
      onHead: (status) => { seen.push({ status, body: '' }); },
      onBody: (c) => { seen[seen.length - 1]!.body += c.toString(); },
      onEnd: () => undefined,
    });
    parser.execute(bytes);
    expect(seen).toEqual([{ status: 200, body: '' }, { status: 200, body: 'hello' }]);
  });

  it('keeps repeated headers and reads the keep-alive idle time the server announces', () => {
    let headers: string[] | undefined;
    let keepAlive: number | undefined;
    const parser = new ResponseParser({
      isHeadRequest: () => false,
      wantsHeaders: () => true,
      onHead: (_s, h) => { headers = h; },
      onBody: () => undefined,
      onEnd: (_r, ms) => { keepAlive = ms; },
    });
    parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n'));
    expect(headers).toEqual(['set-cookie', 'a=1', 'set-cookie', 'b=2', 'keep-alive', 'timeout=5, max=100', 'content-length', '0']);
    expect(keepAlive).toBe(4000);
  });

  it('ends a header line only at CR LF: a bare CR or LF inside a value is part of it, and a line without a colon is refused', () => {
    let headers: string[] | undefined;
    const bodies: string[] = [];
    const parser = new ResponseParser({
      isHeadRequest: () => false,
      wantsHeaders: () => true,
      onHead: (_s, h) => { headers = h; },
      onBody: (chunk) => { bodies.push(Buffer.from(chunk).toString('latin1')); },
      onEnd: () => undefined,
    });
    parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nx-a: 1\r2\r\nx-b: 3\n4\r\ncontent-length: 2\r\n\r\nok'));
    expect(headers).toEqual(['x-a', '1\r2', 'x-b', '3\n4', 'content-length', '2']);
    expect(bodies.join('')).toBe('ok');
    expect(() => parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nno colon here\r\nx-c: 1\r\n\r\n'))).toThrow(ResponseParseError);
  });

  it('treats an HTTP/1.0 answer without keep-alive as the last on its connection', () => {
    let reusable: boolean | undefined;
    const parser = new ResponseParser({
      isHeadRequest: () => false, wantsHeaders: () => false, onHead: () => undefined, onBody: () => undefined,
      onEnd: (r) => { reusable = r; },
    });
    parser.execute(Buffer.from('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n'));
    expect(reusable).toBe(false);
    parser.execute(Buffer.from('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n'));
    expect(reusable).toBe(true);
  });

  it('reports a connection closed in the middle of an answer', () => {
    const parser = new ResponseParser({
      isHeadRequest: () => false, wantsHeaders: () => false, onHead: () => undefined, onBody: () => undefined, onEnd: () => undefined,
    });
    parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    expect(parser.midAnswer).toBe(true);
    expect(parser.finish()).toBe(false);
  });

  it.each([
    ['a status line that is not HTTP/1.x', 'HTTP/2 200 OK\r\n\r\n', /not an HTTP\/1.x status line/],
    ['a status code out of range', 'HTTP/1.1 700 Odd\r\ncontent-length: 0\r\n\r\n', /invalid status line/],
    ['a non-numeric content-length', 'HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n', /invalid content-length/],
    ['two different content-lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', /conflicting content-length/],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nbroken header\r\n\r\n', /invalid header line/],
    ['a chunk size that is not hex', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /invalid chunk size/],
    ['chunk data not followed by CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n', /not followed by CRLF/],
    ['101 Switching Protocols', 'HTTP/1.1 101 Switching Protocols\r\n\r\n', /unexpected 101/],
  ])('refuses %s', (_name, text, message) => {
    const parser = new ResponseParser({
      isHeadRequest: () => false, wantsHeaders: () => false, onHead: () => undefined, onBody: () => undefined, onEnd: () => undefined,
    });
    expect(() => parser.execute(Buffer.from(text))).toThrow(message);
    expect(() => parser.execute(Buffer.from(text))).not.toThrow(); // stopped: the connection is closed by its owner
  });

  it('refuses a head longer than 64 KiB, whether it arrives at once or in pieces', () => {
    const long = `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70 * 1024)}`;
    const at = new ResponseParser({
      isHeadRequest: () => false, wantsHeaders: () => false, onHead: () => undefined, onBody: () => undefined, onEnd: () => undefined,
    });
    expect(() => at.execute(Buffer.from(long))).toThrow(ResponseParseError);
    const pieces = new ResponseParser({
      isHeadRequest: () => false, wantsHeaders: () => false, onHead: () => undefined, onBody: () => undefined, onEnd: () => undefined,
    });
    let thrown: unknown;
    for (let i = 0; i < long.length && !thrown; i += 1000) {
      try { pieces.execute(Buffer.from(long.slice(i, i + 1000))); } catch (err) { thrown = err; }
    }
    expect(thrown).toBeInstanceOf(ResponseParseError);
  });
});
