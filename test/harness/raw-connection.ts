/**
 * One Unix-socket connection to a runner, speaking raw frames: send a frame (or any bytes),
 * read the next frame. The building block of ApisixClient, and the tool for bad-input tests.
 */
import { createConnection, type Socket } from 'node:net';
import { FrameDecoder, encodeFrame } from '../../src/protocol/frame.js';

export interface Frame {
  readonly type: number;
  readonly payload: Buffer;
}

/** Raised when a connect or a read takes longer than its timeout. */
export class RpcTimeoutError extends Error {
  readonly code = 'APISIX_ERR_TIMEOUT';
}

/** Raised when the runner closes the connection (or it breaks) while a frame is awaited. */
export class ConnectionClosedError extends Error {
  readonly code = 'APISIX_ERR_CLOSED';
}

export class RawConnection {
  private readonly decoder = new FrameDecoder();
  private readonly frames: Frame[] = [];
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void } | undefined;
  private closeReason: Error | undefined;
  /** Resolves once the socket is fully closed (by either side). */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, (type, payload) => this.deliver({ type, payload: Buffer.from(payload) }));
      } catch (err) {
        this.fail(err as Error);
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.fail(new ConnectionClosedError(`connection error: ${err.message}`)));
    socket.on('close', () => this.fail(new ConnectionClosedError('connection closed by the runner')));
    socket.on('end', () => socket.end());
  }

  /** Connects to `socketPath`, failing after `connectTimeoutMs` (APISIX uses 1 s). */
  static connect(socketPath: string, connectTimeoutMs = 1000): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path: socketPath });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new RpcTimeoutError(`connect to ${socketPath} timed out after ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RawConnection(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new ConnectionClosedError(`failed to connect to the unix socket ${socketPath}: ${err.message}`));
      });
    });
  }

  private deliver(frame: Frame): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve(frame);
    } else {
      this.frames.push(frame);
    }
  }

  private fail(err: Error): void {
    this.closeReason ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.closeReason);
  }

  /** True once the connection can no longer be used. */
  get isClosed(): boolean {
    return this.closeReason !== undefined || this.socket.destroyed;
  }

  /** Frames received and not yet read (a pooled idle connection must have none). */
  get pendingFrames(): number {
    return this.frames.length;
  }

  /** Sends one frame (header + payload) in one write. */
  send(type: number, payload: Uint8Array): Promise<void> {
    return this.sendRaw(encodeFrame(type, payload));
  }

  /** Sends arbitrary bytes (for malformed-input tests). */
  sendRaw(bytes: Uint8Array): Promise<void> {
    if (this.isClosed) return Promise.reject(this.closeReason ?? new ConnectionClosedError('connection is closed'));
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (err) => (err ? reject(new ConnectionClosedError(`send failed: ${err.message}`)) : resolve()));
    });
  }

  /** Reads the next frame; rejects on timeout (the connection is then unusable) or close. */
  readFrame(timeoutMs = 60_000): Promise<Frame> {
    const queued = this.frames.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closeReason) return Promise.reject(this.closeReason);
    if (this.waiter) return Promise.reject(new Error('RPCs on one connection are sequential: a read is already pending'));
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new RpcTimeoutError(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (f) => { clearTimeout(timer); resolve(f); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  /** Sends a frame and reads the next one. */
  async call(type: number, payload: Uint8Array, timeoutMs?: number): Promise<Frame> {
    await this.send(type, payload);
    return this.readFrame(timeoutMs);
  }

  /** Half-closes our side (the runner sees EOF). */
  end(): void {
    this.socket.end();
  }

  /** Closes the connection at once. */
  close(): void {
    this.socket.destroy();
  }

  /** Keeps an idle pooled connection from holding the event loop open. */
  unref(): void {
    this.socket.unref();
  }

  /** Undoes unref() while the connection is in use. */
  ref(): void {
    this.socket.ref();
  }
}
