/**
 * How the runner reads its sockets: APISIX's connections and the mirror's plain-TCP ones, into
 * one buffer per thread, reused for every read.
 *
 * A net.Socket read through the stream API costs, per read, a 64 KiB allocation (malloc and
 * an ArrayBuffer around it), a Buffer view, and the Readable machinery (push, 'data'). A call is
 * one read, so that was paid once per RPC, and each call's payload view kept its 64 KiB block
 * alive until the next GC. Node has a leaner path for this, the `onread` option (a buffer of
 * the caller's, handed to a callback), but offers it only for sockets the program connects, not
 * for those a server accepts. This module turns it on for an accepted socket the way Node's own
 * constructor does for `onread`: it sets the socket's kBuffer, kBufferCb and kBufferGen slots
 * and calls its handle's useUserBuffer, before reading starts (the server accepts paused).
 *
 * Those are Node internals. They are looked up, not assumed: when any is missing (another Node
 * version), the socket is read through the stream API as before, and `readPath` says which
 * path a socket took (the runner logs it once; test/core/socket-reads.test.ts checks this Node
 * takes the fast one). Measured in docs/performance.md, "Mirror dispatch, twelfth pass".
 *
 * The callback gets a view of the shared buffer that the next read overwrites, so each read's
 * bytes are copied out first (into Node's pool for small reads): frames, and the payloads that
 * calls keep while they wait for APISIX, own their bytes. Reads happen one at a time on a
 * thread, so one buffer serves every connection of that thread (a mirror worker has its own).
 * For the mirror's connections, which this program opens, `onread` is Node's documented
 * option (`ownedReads`); TLS connections are read through the stream API.
 */
import type { Socket } from 'node:net';

export type ReadPath = 'user-buffer' | 'stream';

/** Bytes one read may bring (as Node's own stream reads: 64 KiB). */
const READ_BUFFER_BYTES = 64 * 1024;

let shared: Buffer | undefined;

interface UserBufferSlots {
  readonly kBuffer: symbol;
  readonly kBufferCb: symbol;
  readonly kBufferGen: symbol;
}

/** The socket's onread slots, or undefined when this Node lays out its sockets otherwise. */
function slotsOf(socket: Socket): UserBufferSlots | undefined {
  let kBuffer: symbol | undefined;
  let kBufferCb: symbol | undefined;
  let kBufferGen: symbol | undefined;
  for (const s of Object.getOwnPropertySymbols(socket)) {
    if (s.description === 'kBuffer') kBuffer = s;
    else if (s.description === 'kBufferCb') kBufferCb = s;
    else if (s.description === 'kBufferGen') kBufferGen = s;
  }
  if (!kBuffer || !kBufferCb || !kBufferGen) return undefined;
  return { kBuffer, kBufferCb, kBufferGen };
}

interface HandleWithUserBuffer {
  useUserBuffer(buffer: Uint8Array): void;
}

/**
 * The `onread` option of `net.connect` for a socket this program opens (the mirror's
 * connections): the same shared buffer, each read's bytes copied out for `onChunk`. This one is
 * Node's documented API.
 */
export function ownedReads(onChunk: (chunk: Buffer) => void): { buffer: Buffer; callback: (nread: number, buf: Buffer) => boolean } {
  return { buffer: sharedBuffer(), callback: copyingReader(onChunk) };
}

function sharedBuffer(): Buffer {
  return (shared ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES));
}

/** Node's read callback: the bytes read into the shared buffer, copied out (true: keep reading; false would stop). */
function copyingReader(onChunk: (chunk: Buffer) => void): (nread: number, buf: Buffer) => boolean {
  return (nread, buf) => {
    const own = Buffer.allocUnsafe(nread);
    buf.copy(own, 0, 0, nread);
    onChunk(own);
    return true;
  };
}

/**
 * Starts reading a socket accepted paused (`pauseOnConnect`): each read's bytes, owned by the
 * callee, go to `onChunk`. End, close and errors are the socket's events as usual.
 */
export function startReading(socket: Socket, onChunk: (chunk: Buffer) => void, forceStream = false): ReadPath {
  const slots = forceStream ? undefined : slotsOf(socket);
  const handle = (socket as unknown as { _handle?: Partial<HandleWithUserBuffer> | null })._handle;
  if (!slots || !handle || typeof handle.useUserBuffer !== 'function') {
    socket.on('data', onChunk);
    socket.resume();
    return 'stream';
  }
  const buffer = sharedBuffer();
  const slotted = socket as unknown as Record<symbol, unknown>;
  slotted[slots.kBuffer] = buffer;
  slotted[slots.kBufferGen] = null;
  slotted[slots.kBufferCb] = copyingReader(onChunk);
  handle.useUserBuffer(buffer);
  socket.resume();
  return 'user-buffer';
}
