/**
 * Optional JSONL file of differences for offline analysis (one JSON object per line, appended).
 * It never blocks and never throws into the request path: lines go to a write stream; when
 * more than `maxBufferedBytes` are waiting for the disk, or the file has reached `maxFileBytes`
 * (counted since the file was last opened), or the stream has failed, lines are dropped and
 * counted. Rotation works like --log-file's: move the file away and `reopen()` (the runner does
 * it on SIGHUP, logrotate's `postrotate kill -HUP`).
 */
import { createWriteStream, type WriteStream } from 'node:fs';

export interface DiffLogOptions {
  readonly maxFileBytes?: number;
  readonly maxBufferedBytes?: number;
  /** Told once about the first write error (e.g. log it), never again. */
  readonly onError?: (err: Error) => void;
}

export class DiffLogWriter {
  private stream: WriteStream;
  private readonly maxFileBytes: number;
  private readonly maxBufferedBytes: number;
  private failed = false;
  /** Lines written, lines dropped, bytes handed to the stream. */
  readonly stats = { written: 0, dropped: 0, bytes: 0 };

  constructor(readonly path: string, private readonly options: DiffLogOptions = {}) {
    this.maxFileBytes = options.maxFileBytes ?? 256 * 1024 * 1024;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.stream = this.open();
  }

  private open(): WriteStream {
    const stream = createWriteStream(this.path, { flags: 'a' });
    stream.on('error', (err) => {
      if (this.failed || stream !== this.stream) return;
      this.failed = true;
      this.options.onError?.(err);
    });
    return stream;
  }

  /**
   * Starts a new file at the path (after logrotate moved the old one away): lines already handed
   * to the old stream are flushed there, the size cap counts again from zero, and a writer that
   * had failed (e.g. the disk was full) tries again.
   */
  reopen(): void {
    const old = this.stream;
    this.failed = false;
    this.stats.bytes = 0;
    this.stream = this.open();
    old.end();
  }

  /** Appends one record; returns false when it was dropped. */
  write(record: unknown): boolean {
    if (this.failed || this.stream.destroyed) return this.drop();
    let line: string;
    try {
      line = JSON.stringify(record) + '\n';
    } catch {
      return this.drop();
    }
    const n = Buffer.byteLength(line);
    if (this.stats.bytes + n > this.maxFileBytes || this.stream.writableLength + n > this.maxBufferedBytes) return this.drop();
    this.stream.write(line);
    this.stats.bytes += n;
    this.stats.written++;
    return true;
  }

  private drop(): false {
    this.stats.dropped++;
    return false;
  }

  /** Flushes and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stream.destroyed || this.stream.closed) return resolve();
      this.stream.end(() => resolve());
      this.stream.once('error', () => resolve());
    });
  }
}
