/**
 * One gRPC node: a copy of a gRPC call is re-issued over HTTP/2 with grpc-js's generic client.
 * Messages are passed through untouched (identity serializers); grpc-js adds the 5-byte length
 * prefix again. grpc-js is loaded the first time a gRPC node is created, so a runner with no
 * gRPC target never pays for it.
 */
import type * as GrpcJs from '@grpc/grpc-js';
import type { CircuitBreaker } from './circuit-breaker.js';
import { type DoneCallback, type NodeTransport } from './http-node.js';
import type { DispatchOutcome, DispatchRequest, NodeSpec, ResponseSink, TargetSpec } from './types.js';

type Grpc = typeof GrpcJs;

let loading: Promise<Grpc> | undefined;
/** Loads grpc-js once, on first use. */
export function loadGrpc(): Promise<Grpc> {
  loading ??= import('@grpc/grpc-js');
  return loading;
}

// Headers grpc-js writes itself, or that describe the original call's transport.
const NOT_METADATA: ReadonlySet<string> = new Set([
  'host', 'content-type', 'content-length', 'te', 'user-agent', 'grpc-timeout', 'grpc-encoding',
  'grpc-accept-encoding', 'accept-encoding', 'grpc-status', 'grpc-message',
]);

/** Turns a request's headers into call metadata (`-bin` values are base64 on the wire). */
export function headersToMetadata(grpc: Grpc, headers: readonly (readonly [string, string])[]): GrpcJs.Metadata {
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

export class GrpcNode implements NodeTransport {
  private grpc: Grpc | undefined;
  private client: GrpcJs.Client | undefined;
  private readonly ready: Promise<void>;
  private readonly active = new Set<GrpcJs.Call>();
  private closed = false;

  constructor(readonly spec: NodeSpec, private readonly target: TargetSpec, readonly breaker: CircuitBreaker) {
    this.ready = loadGrpc().then((grpc) => {
      this.grpc = grpc;
      if (this.closed) return;
      const creds = target.tls
        ? grpc.credentials.createSsl(target.tlsCa ? Buffer.from(target.tlsCa) : null, null, null, target.tlsVerify
          ? {}
          : { rejectUnauthorized: false, checkServerIdentity: () => undefined })
        : grpc.credentials.createInsecure();
      this.client = new grpc.Client(spec.authority, creds, {
        'grpc.max_send_message_length': -1,
        'grpc.max_receive_message_length': -1,
        // Without this a dead node makes grpc-js retry connecting until the deadline anyway;
        // the first attempt failing fast is what the connect timeout stands for.
        'grpc.initial_reconnect_backoff_ms': Math.max(100, Math.min(target.timeouts.connectMs, 1000)),
        // An address of a resolved host name: the certificate is checked against the name and
        // calls carry it as :authority, as when grpc-js connects to the name itself.
        ...(spec.resolvedFrom === undefined ? {} : {
          'grpc.ssl_target_name_override': spec.resolvedFrom,
          'grpc.default_authority': `${spec.resolvedFrom}:${spec.port}`,
        }),
      });
    });
  }

  send(req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void {
    if (this.client && this.grpc) {
      this.call(this.grpc, this.client, req, sink, done);
      return;
    }
    void this.ready.then(() => {
      if (this.client && this.grpc) this.call(this.grpc, this.client, req, sink, done);
      else done('error', 'CLOSED', 'gRPC node closed before grpc-js loaded');
    }, (err: unknown) => done('error', 'GRPC_LOAD', err instanceof Error ? err.message : String(err)));
  }

  private call(grpc: Grpc, client: GrpcJs.Client, req: DispatchRequest, sink: ResponseSink | undefined, done: DoneCallback): void {
    const t = this.target.timeouts;
    const deadline = new Date(Date.now() + t.connectMs + t.sendMs + t.readMs);
    const host = req.headers.find(([n]) => n === 'host')?.[1];
    const options: GrpcJs.CallOptions = host ? { deadline, host } : { deadline };
    const metadata = headersToMetadata(grpc, req.headers);
    const path = req.uri.split('?')[0]!;
    let call: GrpcJs.Call;
    const end = (err: GrpcJs.ServiceError | null, answer?: Buffer): void => {
      this.active.delete(call);
      if (!err) {
        sink?.onResponse({ status: 200, headers: {}, body: answer ?? Buffer.alloc(0), truncated: false, bodyBytes: answer?.length ?? 0, bodySha256: undefined, node: this.spec.label });
        done('grpc_ok');
        return;
      }
      const code = `GRPC_${grpc.status[err.code] ?? err.code}`;
      let outcome: DispatchOutcome;
      if (err.code === grpc.status.DEADLINE_EXCEEDED) outcome = 'timeout';
      else if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.CANCELLED) outcome = 'error';
      else outcome = 'grpc_error';
      sink?.onFailure(outcome, code);
      done(outcome, code, err.details || err.message);
    };
    const messages = req.grpcMessages ?? [];
    if (messages.length === 1) {
      call = client.makeUnaryRequest(path, identity, identity, messages[0]!, metadata, options, (err, answer) => end(err, answer));
    } else {
      const stream = client.makeClientStreamRequest(path, identity, identity, metadata, options, (err, answer) => end(err, answer));
      call = stream;
      for (const m of messages) stream.write(m);
      stream.end();
    }
    this.active.add(call);
  }

  /** Lets calls finish for `graceMs`, then cancels the rest and closes the channel. */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    await this.ready.catch(() => undefined);
    if (this.active.size > 0) {
      await new Promise<void>((r) => setTimeout(r, graceMs).unref());
      for (const c of this.active) c.cancel();
    }
    this.client?.close();
  }
}
