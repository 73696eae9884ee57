/**
 * gRPC mirroring, the copy side: a gRPC request body is split into its messages here; the
 * dispatch engine (src/mirror-dispatch/grpc-node.ts) re-issues them over HTTP/2.
 *
 * Hazard (see docs/proxy-mirror.md): gRPC requests rarely declare Content-Length, and asking
 * APISIX for the body holds the real call until the client has sent all of it. That is fine
 * for unary and client-streaming calls and a hang for bidirectional ones, so bodies of unknown
 * length are copied only for the method paths listed in the conf's `grpc_methods`.
 */
import { gunzipSync, inflateSync } from 'node:zlib';

/** Thrown when a body is not a sequence of gRPC length-prefixed messages. */
export class GrpcBodyError extends Error {
  readonly code = 'A6_ERR_MIRROR_GRPC_BODY';
}

/**
 * Splits a gRPC request body into its messages (flag byte, 4-byte big-endian length, bytes),
 * decompressing messages flagged compressed with the call's `grpc-encoding` (gzip, deflate).
 */
export function splitGrpcMessages(body: Buffer, encoding: string | undefined): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 5) throw new GrpcBodyError('truncated gRPC message prefix');
    const flag = body[at]!;
    const len = body.readUInt32BE(at + 1);
    if (body.length - at - 5 < len) throw new GrpcBodyError('truncated gRPC message');
    let msg = body.subarray(at + 5, at + 5 + len);
    if (flag === 1) {
      if (encoding === 'gzip') msg = gunzipSync(msg);
      else if (encoding === 'deflate') msg = inflateSync(msg);
      else throw new GrpcBodyError(`compressed message with unsupported grpc-encoding ${String(encoding)}`);
    } else if (flag !== 0) {
      throw new GrpcBodyError(`bad gRPC message flag ${flag}`);
    }
    out.push(Buffer.from(msg));
    at += 5 + len;
  }
  return out;
}
