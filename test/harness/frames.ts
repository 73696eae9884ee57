/**
 * The one way tests read a runner's answer off a raw connection: the next frame, decoded (and
 * bounds-checked) as APISIX would read it.
 */
import { decodeRunnerFrame, type RunnerReply } from './apisix-codec.js';
import type { Frame, RawConnection } from './raw-connection.js';

/** Decodes a frame read with RawConnection.readFrame. */
export function decodeFrame(frame: Frame): RunnerReply {
  return decodeRunnerFrame(frame.type, frame.payload);
}

/** Decodes one whole frame given as bytes (4-byte header, then the payload). */
export function decodeFrameBytes(bytes: Buffer): RunnerReply {
  const length = (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!;
  if (bytes.length !== 4 + length) throw new Error(`frame header announces ${length} payload bytes, got ${bytes.length - 4}`);
  return decodeRunnerFrame(bytes[0]!, bytes.subarray(4));
}

/** Reads the next frame of `conn` (rejects on close or after `timeoutMs`) and decodes it. */
export async function readReply(conn: RawConnection, timeoutMs = 5000): Promise<RunnerReply> {
  return decodeFrame(await conn.readFrame(timeoutMs));
}
