/**
 * One keep-alive HTTP/1.1 connection of the mirror's own client. Requests handed to it in the
 * same event-loop turn go out in one write (one syscall for many copies, which is what undici
 * cannot do: it writes each request on its own); answers come back in order and are parsed
 * incrementally. Timeouts are checked by the node's sweep (`check`), not by timers per request.
 */
import net from 'node:net';
import tls from 'node:tls';
import { BatchFlush } from '../batch-flush.js';
import { ownedReads } from '../../socket-reads.js';
import { ResponseParseError, ResponseParser, type ResponseEvents } from './response-parser.js';

/** One request on a connection and whoever reads its answer. */
export interface Exchange {
  /** The request head, ready to write (see request-head.ts). */
  readonly head: string | Buffer;
  readonly body: Buffer | undefined;
  /** HEAD request: the answer has no body. */
  readonly isHead: boolean;
  /** Safe to send again when it surely was not processed (RFC 9110 section 9.2.2). */
  readonly idempotent: boolean;
  /** When it was handed to the node (the overall deadline runs from here). */
  readonly startedAt: number;
  /** Times it was moved to another connection after its own closed before it was answered. */
  retries: number;
  readonly wantsHeaders: boolean;
  onHead(status: number, headers: string[] | undefined): void;
  /** Body bytes; false when the reader will take no more (the answer is then cut). */
  onBody(chunk: Buffer): boolean;
  /** The whole answer was read; `cut` when it was cut off by onBody returning false. */
  onEnd(cut: boolean): void;
  onFail(code: string, message: string): void;
}

export interface ConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** TLS settings for https nodes. */
  readonly tls: { readonly servername: string | undefined; readonly rejectUnauthorized: boolean; readonly ca: readonly string[] | undefined } | undefined;
  readonly connectMs: number;
  readonly sendMs: number;
  readonly readMs: number;
  /** Overall deadline of one request: connect + send + read. */
  readonly deadlineMs: number;
  /** Idle time after which a kept-alive connection is closed, unless the server says less. */
  readonly idleMs: number;
}

/** What the connection tells its node. */
export interface ConnectionOwner {
  /** Requests that were not answered and may be sent again elsewhere. */
  resend(exchanges: Exchange[]): void;
  /** The connection has room for more requests (an answer ended). */
  freed(conn: H1Connection): void;
  /** The connection is gone. */
  closed(conn: H1Connection): void;
}

/** A turn's heads and bodies up to this size are joined into one write; larger ones go corked, uncopied. */
const CONCAT_MAX_BYTES = 64 * 1024;

const TIMEOUT_MESSAGES: Readonly<Record<string, string>> = {
  CONNECT_TIMEOUT: 'connect timeout',
  SEND_TIMEOUT: 'send timeout: the target read nothing of the request',
  READ_TIMEOUT: 'read timeout: no answer bytes',
  MIRROR_DEADLINE: 'mirror request deadline (connect + send + read) passed',
};

export class H1Connection implements ResponseEvents {
  private readonly socket: net.Socket;
  private readonly parser: ResponseParser;
  /** Requests written (or to be written), oldest first; answers arrive in this order. */
  private readonly queue: Exchange[] = [];
  private head = 0;
  /** Bytes to write at the end of this turn. */
  private outText = '';
  private outParts: (string | Buffer)[] | undefined;
  /** Rough size of outParts (heads and bodies), to choose between one concatenated write and a corked series. */
  private outBytes = 0;
  private readonly flusher: BatchFlush;
  connected = false;
  /** No new requests: the server said `connection: close`, or the connection is failing. */
  draining = false;
  private ended = false;
  private error: { code: string; message: string } | undefined;
  /** Answers completed on this connection (a reused connection may have gone stale). */
  private answered = 0;
  private readonly createdAt: number;
  private lastProgressAt: number;
  private lastBytesWritten = 0;
  private lastReadAt = 0;
  /** When the latest batch was handed to the socket. */
  private flushedAt = 0;
  idleSince: number;
  private idleMs: number;
  /** Whether the current answer's reader was given any bytes yet. */
  private answering = false;

  constructor(private readonly options: ConnectionOptions, private readonly owner: ConnectionOwner, now: number) {
    this.createdAt = now;
    this.lastProgressAt = now;
    this.idleSince = now;
    this.idleMs = options.idleMs;
    this.parser = new ResponseParser(this);
    this.flusher = new BatchFlush(() => this.flush());
    const t = options.tls;
    const socket = t
      ? tls.connect({ host: options.host, port: options.port, servername: t.servername, rejectUnauthorized: t.rejectUnauthorized, ...(t.ca ? { ca: [...t.ca] } : {}), ALPNProtocols: ['http/1.1'] })
      // Plain TCP reads into the thread's shared read buffer (src/socket-reads.ts).
      : net.connect({ host: options.host, port: options.port, onread: ownedReads((chunk) => this.read(chunk)) });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.once(t ? 'secureConnect' : 'connect', () => {
      this.connected = true;
      this.lastProgressAt = performanceNow();
      socket.setKeepAlive(true, 60_000);
      if (this.outText !== '' || this.outParts) this.flusher.now();
    });
    if (t) socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error ??= { code: typeof err.code === 'string' ? err.code : 'SOCKET_ERROR', message: err.message };
    });
    socket.on('close', () => this.onClose());
  }

  /** Requests on this connection that have not been answered yet. */
  get inflight(): number {
    return this.queue.length - this.head;
  }

  /** True while requests handed over in this turn have not been written: more can join the write. */
  get batching(): boolean {
    return this.flusher.pending || (!this.connected && this.inflight > 0);
  }

  /** When an idle connection is closed. */
  get idleDeadline(): number {
    return this.idleSince + this.idleMs;
  }

  get usable(): boolean {
    return !this.draining && !this.ended;
  }

  /** Adds a request: written with the others of this turn. */
  send(ex: Exchange): void {
    this.queue.push(ex);
    const head = ex.head;
    if (typeof head === 'string' && !(ex.body && ex.body.length > 0)) {
      this.outText += head;
    } else {
      const parts = this.outParts ??= [];
      if (typeof head === 'string') {
        parts.push(this.outText + head);
      } else {
        if (this.outText !== '') parts.push(this.outText);
        parts.push(head);
      }
      this.outText = '';
      if (ex.body && ex.body.length > 0) parts.push(ex.body);
      this.outBytes += head.length + (ex.body?.length ?? 0);
    }
    if (this.connected) this.flusher.added();
  }

  private flush(): void {
    if (this.ended) return;
    const parts = this.outParts;
    const text = this.outText;
    this.outParts = undefined;
    this.outText = '';
    const bytes = this.outBytes;
    this.outBytes = 0;
    if (parts) {
      if (text !== '') parts.push(text);
      if (bytes <= CONCAT_MAX_BYTES) {
        // Heads built as bytes (and small bodies) of one turn: one buffer, one write.
        this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
      } else {
        this.socket.cork();
        for (const p of parts) this.socket.write(p);
        this.socket.uncork();
      }
    } else if (text !== '') {
      this.socket.write(text);
    }
    const now = performanceNow();
    if (this.socket.writableLength === 0) this.lastProgressAt = now;
    this.flushedAt = now;
  }

  // ResponseEvents: the parser reports the answer of the oldest request.

  isHeadRequest(): boolean {
    return this.current().isHead;
  }

  wantsHeaders(): boolean {
    return this.current().wantsHeaders;
  }

  onHead(status: number, headers: string[] | undefined): void {
    this.answering = true;
    this.current().onHead(status, headers);
  }

  onBody(chunk: Buffer): void {
    if (!this.current().onBody(chunk)) this.cut();
  }

  onEnd(reusable: boolean, keepAliveMs?: number): void {
    const ex = this.current();
    this.queue[this.head] = undefined as unknown as Exchange;
    this.head++;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
    this.answering = false;
    this.answered++;
    if (keepAliveMs !== undefined) this.idleMs = Math.min(this.options.idleMs, keepAliveMs);
    ex.onEnd(false);
    if (!reusable) {
      // The server closes after this answer: what was sent behind it will not be processed.
      this.draining = true;
      this.parser.stop();
      const rest = this.takeRest();
      this.socket.destroy();
      if (rest.length > 0) this.owner.resend(rest);
      return;
    }
    if (this.inflight === 0) this.idleSince = performanceNow();
    this.owner.freed(this);
  }

  private current(): Exchange {
    const ex = this.queue[this.head];
    if (!ex) throw new ResponseParseError('the target sent an answer nobody asked for');
    return ex;
  }

  private read(chunk: Buffer): void {
    this.lastReadAt = performanceNow();
    try {
      this.parser.execute(chunk);
    } catch (err) {
      const e = err as Error;
      this.fail(err instanceof ResponseParseError ? 'BAD_RESPONSE' : 'READER_ERROR', `${e.message}`);
    }
  }

  /** The reader of the current answer took all it wanted: it ends here and the connection goes. */
  private cut(): void {
    const ex = this.current();
    this.head++;
    this.answering = false;
    this.answered++;
    this.parser.stop();
    ex.onEnd(true);
    // Those behind it got no answer bytes: they are not to blame for the cut.
    this.fail('CONNECTION_CUT', 'cut with the over-long answer ahead of it on the same connection', false);
  }

  /** Takes the unanswered requests off the connection. */
  private takeRest(): Exchange[] {
    const rest = this.queue.slice(this.head);
    this.queue.length = 0;
    this.head = 0;
    return rest;
  }

  /**
   * Ends the connection and every request on it: the one being answered fails with `code`;
   * those behind it, which have no answer bytes, are sent again elsewhere once when that is
   * safe (idempotent, or the connection never got to send them), otherwise they fail too.
   */
  fail(code: string, message: string, firstToBlame = true): void {
    if (this.ended) return;
    this.draining = true;
    this.ended = true;
    this.flusher.cancel();
    const started = firstToBlame && (this.answering || this.parser.midAnswer);
    this.parser.stop();
    this.socket.destroy();
    this.settle(code, message, firstToBlame, started);
    this.owner.closed(this);
  }

  private settle(code: string, message: string, ourCut: boolean, started: boolean): void {
    const rest = this.takeRest();
    const again: Exchange[] = [];
    for (let i = 0; i < rest.length; i++) {
      const ex = rest[i]!;
      const first = i === 0;
      if (!this.connected) {
        // Never connected: nothing was sent; the node's breaker counts the code.
        ex.onFail(code, message);
      } else if (first && (started || ourCut)) {
        ex.onFail(code, message);
      } else if (ex.retries === 0 && ex.idempotent && (!first || this.answered > 0)) {
        // Behind an answer that never came, or first on a reused connection that the server
        // had closed while it was idle: not answered, and safe to ask again.
        ex.retries++;
        again.push(ex);
      } else {
        ex.onFail(first ? code : 'CONNECTION_CUT', first ? message : `the connection ended before this request was answered (${code})`);
      }
    }
    this.answering = false;
    if (again.length > 0) this.owner.resend(again);
  }

  private onClose(): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    this.flusher.cancel();
    this.draining = true;
    // An answer that runs until the connection closes ends here.
    if (this.error === undefined && this.parser.readsUntilClose) this.parser.finish();
    if (this.inflight > 0) {
      const started = this.answering || this.parser.midAnswer;
      this.parser.stop();
      const e = this.error ?? { code: 'CONNECTION_CLOSED', message: 'the target closed the connection before answering' };
      this.settle(e.code, e.message, false, started);
    }
    this.owner.closed(this);
  }

  /** Applies the timeouts; called by the node's sweep. */
  check(now: number): void {
    if (this.ended) return;
    const o = this.options;
    if (!this.connected) {
      if (now - this.createdAt > o.connectMs) this.fail('CONNECT_TIMEOUT', `${TIMEOUT_MESSAGES['CONNECT_TIMEOUT']} after ${o.connectMs} ms`);
      return;
    }
    if (this.inflight === 0) {
      if (now - this.idleSince > this.idleMs) {
        this.ended = true;
    this.flusher.cancel();
        this.draining = true;
        this.socket.destroy();
        this.owner.closed(this);
      }
      return;
    }
    const written = this.socket.bytesWritten;
    if (this.socket.writableLength > 0) {
      if (written !== this.lastBytesWritten) {
        this.lastBytesWritten = written;
        this.lastProgressAt = now;
      } else if (now - this.lastProgressAt > o.sendMs) {
        this.fail('SEND_TIMEOUT', `${TIMEOUT_MESSAGES['SEND_TIMEOUT']} for ${o.sendMs} ms`);
        return;
      }
    } else {
      this.lastBytesWritten = written;
    }
    const ex = this.queue[this.head]!;
    if (now - ex.startedAt > o.deadlineMs) {
      this.fail('MIRROR_DEADLINE', `${TIMEOUT_MESSAGES['MIRROR_DEADLINE']} (${o.deadlineMs} ms)`);
      return;
    }
    if (this.socket.writableLength === 0 && !this.flusher.pending) {
      const since = Math.max(this.lastReadAt, this.flushedAt, this.lastProgressAt);
      if (now - since > o.readMs) this.fail('READ_TIMEOUT', `${TIMEOUT_MESSAGES['READ_TIMEOUT']} for ${o.readMs} ms`);
    }
  }

  /** Closes at once; unanswered requests fail with `code`. */
  destroy(code: string, message: string): void {
    if (this.ended) return;
    this.draining = true;
    this.ended = true;
    this.flusher.cancel();
    this.parser.stop();
    this.socket.destroy();
    for (const ex of this.takeRest()) ex.onFail(code, message);
    this.owner.closed(this);
  }
}

function performanceNow(): number {
  return performance.now();
}
