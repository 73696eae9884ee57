/**
 * gRPC mirroring: a copy of a gRPC call is re-issued over HTTP/2 with grpc-js's generic
 * client. Messages are passed through untouched (identity serializers); grpc-js adds the
 * 5-byte length prefix again. Only the outcome of the call is kept.
 *
 * Hazard (see docs/proxy-mirror.md): gRPC requests rarely declare Content-Length, and asking
 * APISIX for the body holds the real call until the client has sent all of it. That is fine
 * for unary and client-streaming calls and a hang for bidirectional ones, so bodies of unknown
 * length are copied only for the method paths listed in the conf's `grpc_methods`.
 */
import { gunzipSync, inflateSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import type { MirrorTargetSpec } from './conf.js';
import type { MirrorCopy } from './copy-builder.js';
import type { MirrorOutcome } from './metrics.js';

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

// Headers grpc-js writes itself, or that describe the original call's transport.
const NOT_METADATA: ReadonlySet<string> = new Set([
  'host', 'content-type', 'content-length', 'te', 'user-agent', 'grpc-timeout', 'grpc-encoding',
  'grpc-accept-encoding', 'accept-encoding', 'grpc-status', 'grpc-message',
]);

/** Turns the copy's headers into call metadata (`-bin` values are base64 on the wire). */
export function headersToMetadata(headers: readonly (readonly [string, string])[]): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [name, value] of headers) {
    if (NOT_METADATA.has(name)) continue;
    try {
      if (name.endsWith('-bin')) md.add(name, Buffer.from(value, 'base64'));
      else md.add(name, value);
    } catch {
      // A header name grpc-js refuses as a metadata key is left out of the copy.
    }
  }
  return md;
}

const identity = (b: Buffer): Buffer => b;

/** One grpc-js channel per target; calls tracked so shutdown can cancel them. */
export class GrpcMirrorTransport {
  private readonly client: grpc.Client;
  private readonly active = new Set<grpc.Call>();

  constructor(private readonly spec: MirrorTargetSpec, tlsCa: string | undefined) {
    const creds = spec.tls
      ? grpc.credentials.createSsl(tlsCa ? Buffer.from(tlsCa) : null, null, null, spec.tlsVerify
        ? {}
        : { rejectUnauthorized: false, checkServerIdentity: () => undefined })
      : grpc.credentials.createInsecure();
    this.client = new grpc.Client(spec.authority, creds, {
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
      // Without this a dead target makes grpc-js retry connecting until the deadline anyway;
      // the first attempt failing fast is what the connect timeout stands for.
      'grpc.initial_reconnect_backoff_ms': Math.max(100, Math.min(spec.timeouts.connectMs, 1000)),
    });
  }

  /** Sends one copy; resolves with its outcome, never rejects. */
  send(copy: MirrorCopy & { readonly grpcMessages: readonly Buffer[] }): Promise<MirrorOutcome> {
    const t = this.spec.timeouts;
    const deadline = new Date(Date.now() + t.connectMs + t.sendMs + t.readMs);
    const host = copy.headers.find(([n]) => n === 'host')?.[1];
    const options: grpc.CallOptions = host ? { deadline, host } : { deadline };
    const metadata = headersToMetadata(copy.headers);
    const path = copy.uri.split('?')[0]!;
    return new Promise<MirrorOutcome>((resolve) => {
      let call: grpc.Call;
      const done = (err: grpc.ServiceError | null): void => {
        this.active.delete(call);
        if (!err) resolve('grpc_ok');
        else if (err.code === grpc.status.DEADLINE_EXCEEDED) resolve('timeout');
        else if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.CANCELLED) resolve('error');
        else resolve('grpc_error');
      };
      const messages = copy.grpcMessages;
      if (messages.length === 1) {
        call = this.client.makeUnaryRequest(path, identity, identity, messages[0]!, metadata, options, (err) => done(err));
      } else {
        const stream = this.client.makeClientStreamRequest(path, identity, identity, metadata, options, (err) => done(err));
        call = stream;
        for (const m of messages) stream.write(m);
        stream.end();
      }
      this.active.add(call);
    });
  }

  /** Lets calls finish for `graceMs`, then cancels the rest and closes the channel. */
  async close(graceMs: number): Promise<void> {
    if (this.active.size > 0) {
      await new Promise<void>((r) => setTimeout(r, graceMs).unref());
      for (const c of this.active) c.cancel();
    }
    this.client.close();
  }
}
