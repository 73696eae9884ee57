/**
 * The ext-plugin frame: byte 0 is the message type, bytes 1..3 the payload length
 * (big-endian, at most 2^24 - 1), then the FlatBuffers payload.
 */

export const FRAME_HEADER_BYTES = 4;
/** The largest payload the 3-byte length can describe. */
export const MAX_PAYLOAD_BYTES = 0xffffff;

export const enum MessageType {
  Error = 0,
  PrepareConf = 1,
  HttpReqCall = 2,
  ExtraInfo = 3,
  HttpRespCall = 4,
}

export const MESSAGE_TYPE_NAMES: readonly string[] = [
  'RPC_ERROR',
  'RPC_PREPARE_CONF',
  'RPC_HTTP_REQ_CALL',
  'RPC_EXTRA_INFO',
  'RPC_HTTP_RESP_CALL',
];

export function messageTypeName(type: number): string {
  return MESSAGE_TYPE_NAMES[type] ?? `unknown(${type})`;
}

export class FrameTooLargeError extends Error {
  readonly code = 'A6_ERR_FRAME_TOO_LARGE';
  constructor(readonly length: number, readonly limit: number) {
    super(`frame payload of ${length} bytes exceeds the limit of ${limit} bytes`);
  }
}

/** Builds one frame (header + payload) in a single buffer, ready for one socket write. */
export function encodeFrame(type: number, payload: Uint8Array): Buffer {
  const length = payload.byteLength;
  if (length > MAX_PAYLOAD_BYTES) throw new FrameTooLargeError(length, MAX_PAYLOAD_BYTES);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  frame[0] = type;
  frame[1] = (length >>> 16) & 0xff;
  frame[2] = (length >>> 8) & 0xff;
  frame[3] = length & 0xff;
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

export type FrameHandler = (type: number, payload: Buffer) => void;

/**
 * Streaming frame decoder: accepts socket chunks of any size (split or coalesced frames)
 * and calls `onFrame` once per complete frame, in order.
 *
 * A payload handed out is a view into the received chunk when the frame arrived whole
 * (the common case: no copy), or a fresh buffer assembled from several chunks. The decoder
 * takes ownership of every chunk pushed: the caller must not modify it afterwards (a
 * net.Socket's 'data' chunks are never reused, so sockets can feed it directly).
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxPayloadBytes: number = MAX_PAYLOAD_BYTES) {}

  /** How many buffered bytes complete the frame being assembled (header first). */
  private awaitedBytes(): number {
    const first = this.pending[0]!;
    if (this.pendingBytes < FRAME_HEADER_BYTES) return FRAME_HEADER_BYTES;
    const header = first.length >= FRAME_HEADER_BYTES ? first : Buffer.concat(this.pending, FRAME_HEADER_BYTES);
    const length = (header[1]! << 16) | (header[2]! << 8) | header[3]!;
    // An oversized announcement is reported at once rather than after buffering it.
    return length > this.maxPayloadBytes ? FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + length;
  }

  /** Bytes received but not yet part of a complete frame. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /**
   * Feeds one chunk. Throws FrameTooLargeError when a header announces a payload above the
   * limit; the decoder must not be used after that (the stream cannot be resynchronised).
   */
  push(chunk: Buffer, onFrame: FrameHandler): void {
    let data: Buffer;
    if (this.pendingBytes === 0) {
      data = chunk;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      // A large frame arrives in many chunks: join them once, when the frame is complete.
      if (this.pendingBytes < this.awaitedBytes()) return;
      data = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }

    let offset = 0;
    const end = data.length;
    while (end - offset >= FRAME_HEADER_BYTES) {
      const length = (data[offset + 1]! << 16) | (data[offset + 2]! << 8) | data[offset + 3]!;
      if (length > this.maxPayloadBytes) throw new FrameTooLargeError(length, this.maxPayloadBytes);
      const frameEnd = offset + FRAME_HEADER_BYTES + length;
      if (frameEnd > end) break;
      const type = data[offset]!;
      onFrame(type, data.subarray(offset + FRAME_HEADER_BYTES, frameEnd));
      offset = frameEnd;
    }
    if (offset < end) {
      // Keep a copy of the partial frame, not a view: a view would pin the whole chunk (up to
      // a socket read's 64 KiB) for a few bytes. Unpooled, so it pins no shared slab either.
      const rest = Buffer.allocUnsafeSlow(end - offset);
      data.copy(rest, 0, offset);
      this.pending.push(rest);
      this.pendingBytes = rest.length;
    }
  }
}
