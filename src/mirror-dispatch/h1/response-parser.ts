/**
 * An incremental HTTP/1.1 response parser for the mirror's own client: feed it whatever the
 * socket delivered, split anywhere, several pipelined answers in a row; it reports each
 * answer's head, body bytes and end. It frames bodies as RFC 9112 section 6.3 says: no body for
 * HEAD, 1xx, 204 and 304; `Transfer-Encoding` ending in `chunked`; else `Content-Length`; else
 * until the connection closes. Interim 1xx answers (100 Continue, 103 Early Hints) are skipped.
 * Anything it cannot frame safely is an error: the connection is then unusable.
 */

/** What the parser tells its connection. */
export interface ResponseEvents {
  /** Whether the request this answer belongs to was HEAD (its answer has no body). */
  isHeadRequest(): boolean;
  /** Whether the current request's reader wants the header list (names lower case). */
  wantsHeaders(): boolean;
  /** Status line and headers of a final answer (`headers` only when wanted). */
  onHead(status: number, headers: string[] | undefined): void;
  /** Body bytes (a view into the socket's chunk: copy what you keep). */
  onBody(chunk: Buffer): void;
  /**
   * The answer is complete; `reusable` is false when the connection must be closed now;
   * `keepAliveMs` is the idle time the server announced (`Keep-Alive: timeout=N`), if any.
   */
  onEnd(reusable: boolean, keepAliveMs?: number): void;
}

export class ResponseParseError extends Error {
  readonly code = 'BAD_RESPONSE';
}

/** The longest status line plus headers accepted (nginx's large_client_header_buffers is 4 × 8 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;
/** The longest chunk-size line accepted (size, extensions). */
const MAX_CHUNK_LINE_BYTES = 4 * 1024;
const CRLF = Buffer.from('\r\n');

const enum State {
  Head,
  Length,
  ChunkLine,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
  Failed,
}

export class ResponseParser {
  private state = State.Head;
  /** Bytes of a head, chunk line or trailer section not complete yet. */
  private partial: Buffer | undefined;
  /** Body bytes still to read (Length, ChunkData). */
  private remaining = 0;
  private keepAlive = true;
  private keepAliveMs: number | undefined;

  constructor(private readonly events: ResponseEvents) {}

  /** True while an answer is being read (a close now would cut it, unless it reads until close). */
  get midAnswer(): boolean {
    return this.state !== State.Head || this.partial !== undefined;
  }

  /** True when the current answer's body ends when the connection closes. */
  get readsUntilClose(): boolean {
    return this.state === State.UntilClose;
  }

  /**
   * The connection closed: an answer that runs until close ends here. Returns false when an
   * answer was cut in the middle.
   */
  finish(): boolean {
    if (this.state === State.UntilClose) {
      this.state = State.Head;
      this.events.onEnd(false);
      return true;
    }
    return !this.midAnswer;
  }

  /** Ignores whatever comes next (the connection is being closed). */
  stop(): void {
    this.state = State.Failed;
    this.partial = undefined;
  }

  /** Parses one chunk from the socket; throws ResponseParseError on what cannot be framed. */
  execute(chunk: Buffer): void {
    let buf = chunk;
    if (this.partial) {
      buf = Buffer.concat([this.partial, chunk]);
      this.partial = undefined;
    }
    let p = 0;
    const end = buf.length;
    while (p < end) {
      switch (this.state) {
        case State.Head: {
          const at = headEnd(buf, p, end);
          if (at < 0) {
            if (end - p > MAX_HEAD_BYTES) this.fail(`response head over ${MAX_HEAD_BYTES} bytes`);
            this.partial = buf.subarray(p);
            return;
          }
          if (at - p > MAX_HEAD_BYTES) this.fail(`response head over ${MAX_HEAD_BYTES} bytes`);
          const next = at + 4;
          this.head(buf, p, at + 2);
          p = next;
          break;
        }
        case State.Length: {
          const take = Math.min(this.remaining, end - p);
          this.remaining -= take;
          this.events.onBody(buf.subarray(p, p + take));
          p += take;
          if (this.remaining === 0) this.complete();
          break;
        }
        case State.UntilClose: {
          this.events.onBody(p === 0 ? buf : buf.subarray(p));
          return;
        }
        case State.ChunkLine: {
          const at = buf.indexOf(CRLF, p);
          if (at < 0) {
            if (end - p > MAX_CHUNK_LINE_BYTES) this.fail('chunk size line too long');
            this.partial = buf.subarray(p);
            return;
          }
          const size = chunkSize(buf, p, at);
          if (size < 0) this.fail(`invalid chunk size line ${JSON.stringify(buf.toString('latin1', p, Math.min(at, p + 40)))}`);
          p = at + 2;
          if (size === 0) {
            this.state = State.Trailers;
          } else {
            this.remaining = size;
            this.state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.remaining, end - p);
          this.remaining -= take;
          this.events.onBody(buf.subarray(p, p + take));
          p += take;
          if (this.remaining === 0) this.state = State.ChunkDataEnd;
          break;
        }
        case State.ChunkDataEnd: {
          if (end - p < 2) {
            this.partial = buf.subarray(p);
            return;
          }
          if (buf[p] !== 13 || buf[p + 1] !== 10) this.fail('chunk data not followed by CRLF');
          p += 2;
          this.state = State.ChunkLine;
          break;
        }
        case State.Trailers: {
          // Trailer fields, then an empty line; nothing here is kept.
          const at = buf.indexOf(CRLF, p);
          if (at < 0) {
            if (end - p > MAX_HEAD_BYTES) this.fail('trailer section too long');
            this.partial = buf.subarray(p);
            return;
          }
          const empty = at === p;
          p = at + 2;
          if (empty) this.complete();
          break;
        }
        case State.Failed:
          return;
      }
    }
  }

  private complete(): void {
    this.state = State.Head;
    this.events.onEnd(this.keepAlive, this.keepAliveMs);
  }

  private fail(message: string): never {
    this.state = State.Failed;
    this.partial = undefined;
    throw new ResponseParseError(message);
  }

  /** Parses a head from `start` to `end` (the CRLF of its last header line included). */
  private head(buf: Buffer, start: number, end: number): void {
    // "HTTP/1.x SSS" at least.
    if (end - start < 14 || !matches(buf, start, HTTP_1) || buf[start + 8] !== 32) {
      this.fail(`not an HTTP/1.x status line: ${JSON.stringify(buf.toString('latin1', start, Math.min(end, start + 40)))}`);
    }
    const minor = buf[start + 7]! - 48;
    const s0 = buf[start + 9]! - 48;
    const s1 = buf[start + 10]! - 48;
    const s2 = buf[start + 11]! - 48;
    const after = buf[start + 12];
    if (minor < 0 || minor > 9 || s0 < 1 || s0 > 5 || s1 < 0 || s1 > 9 || s2 < 0 || s2 > 9 || (after !== 32 && after !== 13)) {
      this.fail(`invalid status line: ${JSON.stringify(buf.toString('latin1', start, Math.min(end, start + 40)))}`);
    }
    const status = s0 * 100 + s1 * 10 + s2;
    const interim = status < 200;
    if (status === 101) this.fail('unexpected 101 Switching Protocols');
    const wanted = !interim && this.events.wantsHeaders();
    const headers: string[] | undefined = wanted ? [] : undefined;
    let contentLength = -1;
    let chunked = false;
    let otherCoding = false;
    let close = minor === 0;
    let keepAliveMs: number | undefined;
    let line = crlfAt(buf, start, end) + 2;
    while (line < end) {
      // The head ends with a CR LF (at end - 2): every line finds one.
      const eol = crlfAt(buf, line, end);
      let colon = line;
      while (colon < eol && buf[colon] !== 58) colon++;
      if (colon === eol || colon === line) this.fail(`invalid header line ${JSON.stringify(buf.toString('latin1', line, Math.min(eol, line + 40)))}`);
      // Only the framing headers are read (byte by byte) unless the reader wants them all.
      const field = framingField(buf, line, colon - line);
      if (headers) headers.push(buf.toString('latin1', line, colon).toLowerCase(), buf.toString('latin1', colon + 1, eol).trim());
      if (field !== Field.Other) {
        let v = colon + 1;
        let ve = eol;
        while (v < ve && (buf[v] === 32 || buf[v] === 9)) v++;
        while (ve > v && (buf[ve - 1] === 32 || buf[ve - 1] === 9)) ve--;
        switch (field) {
          case Field.ContentLength: {
            const n = digits(buf, v, ve);
            if (n < 0) this.fail(`invalid content-length ${JSON.stringify(buf.toString('latin1', v, Math.min(ve, v + 40)))}`);
            if (contentLength >= 0 && contentLength !== n) this.fail('conflicting content-length headers');
            contentLength = n;
            break;
          }
          case Field.TransferEncoding: {
            const codings = buf.toString('latin1', v, ve).toLowerCase().split(',').map((c) => c.trim()).filter((c) => c !== '');
            chunked = codings[codings.length - 1] === 'chunked';
            otherCoding = !chunked && codings.length > 0;
            break;
          }
          case Field.Connection: {
            if (ve - v === 10 && matchesLower(buf, v, KEEP_ALIVE)) {
              if (minor === 0) close = false;
            } else if (ve - v === 5 && matchesLower(buf, v, CLOSE)) {
              close = true;
            } else {
              const tokens = buf.toString('latin1', v, ve).toLowerCase();
              if (/(^|,)\s*close\s*(,|$)/.test(tokens)) close = true;
              else if (minor === 0 && /(^|,)\s*keep-alive\s*(,|$)/.test(tokens)) close = false;
            }
            break;
          }
          case Field.KeepAlive: {
            // A second less than the server's idle timeout, so we never send on a connection it is closing.
            const m = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(buf.toString('latin1', v, ve));
            if (m) keepAliveMs = Math.max(0, Number(m[1]) * 1000 - 1000);
            break;
          }
        }
      }
      line = eol + 2;
    }
    if (interim) return; // the final answer follows
    this.keepAlive = !close;
    this.keepAliveMs = keepAliveMs;
    this.events.onHead(status, headers);
    if (this.events.isHeadRequest() || status === 204 || status === 304) {
      this.complete();
    } else if (chunked) {
      this.state = State.ChunkLine;
    } else if (otherCoding) {
      this.keepAlive = false;
      this.state = State.UntilClose;
    } else if (contentLength >= 0) {
      if (contentLength === 0) {
        this.complete();
      } else {
        this.remaining = contentLength;
        this.state = State.Length;
      }
    } else {
      this.keepAlive = false;
      this.state = State.UntilClose;
    }
  }
}

const HTTP_1 = Buffer.from('HTTP/1.');
const KEEP_ALIVE = Buffer.from('keep-alive');
const CLOSE = Buffer.from('close');
const CONTENT_LENGTH = Buffer.from('content-length');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding');
const CONNECTION = Buffer.from('connection');

const enum Field {
  Other,
  ContentLength,
  TransferEncoding,
  Connection,
  KeepAlive,
}

// The head's scans are loops, not Buffer#indexOf: an answer's head is a few dozen bytes, and each
// indexOf is a call into C++ (four per answer cost the copy path about 0.2 µs; docs/performance.md,
// "Mirror dispatch, tenth pass").

/** Where the first CR LF CR LF at or after `from` (and before `end`) starts, or -1. */
function headEnd(buf: Buffer, from: number, end: number): number {
  for (let i = from; i + 3 < end; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

/** Where the first CR LF at or after `from` (and before `end`) starts, or -1. */
function crlfAt(buf: Buffer, from: number, end: number): number {
  for (let i = from; i + 1 < end; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10) return i;
  }
  return -1;
}

/** Which framing header a field name is (compared without building a string). */
function framingField(buf: Buffer, at: number, len: number): Field {
  if (len === 14) return matchesLower(buf, at, CONTENT_LENGTH) ? Field.ContentLength : Field.Other;
  if (len === 17) return matchesLower(buf, at, TRANSFER_ENCODING) ? Field.TransferEncoding : Field.Other;
  if (len === 10) {
    if (matchesLower(buf, at, CONNECTION)) return Field.Connection;
    if (matchesLower(buf, at, KEEP_ALIVE)) return Field.KeepAlive;
  }
  return Field.Other;
}

/** `buf` at `at` holds exactly `word`'s bytes. */
function matches(buf: Buffer, at: number, word: Uint8Array): boolean {
  for (let i = 0; i < word.length; i++) if (buf[at + i] !== word[i]) return false;
  return true;
}

/** `buf` at `at` holds `word` (lower case) in any letter case. */
function matchesLower(buf: Buffer, at: number, word: Uint8Array): boolean {
  for (let i = 0; i < word.length; i++) {
    const c = buf[at + i]!;
    if ((c >= 65 && c <= 90 ? c | 0x20 : c) !== word[i]) return false;
  }
  return true;
}

/** A decimal number of 1 to 15 digits from `start` to `end`, or -1. */
function digits(buf: Buffer, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1;
  let n = 0;
  for (let p = start; p < end; p++) {
    const d = buf[p]! - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** The size of a chunk-size line (hex digits, then optional `;extensions` or whitespace), or -1. */
function chunkSize(buf: Buffer, start: number, end: number): number {
  let size = 0;
  let p = start;
  for (; p < end; p++) {
    const c = buf[p]!;
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else if (c >= 65 && c <= 70) d = c - 55;
    else break;
    size = size * 16 + d;
    if (size > Number.MAX_SAFE_INTEGER / 16) return -1;
  }
  if (p === start) return -1;
  if (p < end) {
    const c = buf[p]!;
    if (c !== 59 && c !== 32 && c !== 9) return -1;
  }
  return size;
}
