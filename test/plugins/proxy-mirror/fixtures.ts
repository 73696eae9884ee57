/**
 * Real parts for the proxy-mirror tests: a runner on a Unix socket with the plugin, the
 * APISIX-like client, and mirror targets on 127.0.0.1 (HTTP, HTTPS, gRPC) that record what
 * they receive.
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { Registry } from 'prom-client';
import { startRunner, type Runner } from '../../../src/runner.js';
import { createProxyMirrorPlugin, type ProxyMirrorPlugin } from '../../../src/plugins/proxy-mirror/index.js';
import { createRewritePlugin } from '../../../src/plugins/rewrite/index.js';
import type { Plugin } from '../../../src/plugin-api/index.js';
import { ApisixClient, type Entry, type ReqCallOutcome, type RouteConf } from '../../harness/apisix-client.js';
import { createTempDir } from '../../harness/temp-dir.js';
import { waitUntil } from '../../harness/wait.js';
import { Recorder, type Recorded, type RecorderMode } from '../../harness/http-recorder.js';

/** The suite's one bounded wait (test/harness/wait.ts), under the name the mirror tests use. */
export function until(cond: () => boolean | Promise<boolean>, what: string, limitMs = 10_000): Promise<void> {
  return waitUntil(cond, what, { limitMs });
}

/** Seeded PRNG (mulberry32), uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface MirrorRunner {
  readonly runner: Runner;
  readonly client: ApisixClient;
  readonly plugin: ProxyMirrorPlugin;
  readonly registry: Registry;
  readonly logs: Record<string, unknown>[];
  /** Value of a counter/gauge sample whose labels include `labels` (0 when absent). */
  metric(name: string, labels: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

/** Starts a runner with only proxy-mirror, a captured JSON log and a fresh registry. */
export async function startMirrorRunner(opts: {
  random?: () => number;
  now?: () => number;
  /** Jitter of the circuit breakers' retry delays. */
  jitter?: () => number;
  settings?: Record<string, unknown>;
  /** Also register the built-in `rewrite` plugin (a route may edit the request before proxy-mirror). */
  withRewrite?: boolean;
} = {}): Promise<MirrorRunner> {
  const dir = createTempDir('pm-');
  const socketPath = dir.file('r.sock');
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const registry = new Registry();
  let plugin: ProxyMirrorPlugin | undefined;
  const runner = await startRunner({
    socketPath,
    logger: pino({ level: 'info' }, sink),
    metrics: registry,
    // Copies from the RPC thread unless a test asks for worker threads (threads.test.ts).
    settings: { 'proxy-mirror': { mirror_threads: 1, ...opts.settings } },
    plugins: (host) => {
      plugin = createProxyMirrorPlugin(host, { random: opts.random, now: opts.now, jitter: opts.jitter });
      return opts.withRewrite ? [createRewritePlugin() as Plugin<unknown>, plugin as Plugin<unknown>] : [plugin];
    },
  });
  const client = new ApisixClient({ socketPath });
  return {
    runner,
    client,
    plugin: plugin!,
    registry,
    logs,
    async metric(name, labels) {
      const m = registry.getSingleMetric(name);
      if (!m) return 0;
      const data = await m.get();
      let sum = 0;
      for (const v of data.values) {
        const l = v.labels as Record<string, string | number>;
        if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) sum += v.value;
      }
      return sum;
    },
    async close() {
      await client.close();
      await runner.close();
      dir.remove();
    },
  };
}

/** A route with one `proxy-mirror` entry per conf object (or raw string). */
export function mirrorRoute(key: string, ...confs: (Record<string, unknown> | string)[]): RouteConf {
  return { key, conf: confs.map((c) => ({ name: 'proxy-mirror', value: typeof c === 'string' ? c : JSON.stringify(c) })) };
}

/** Builds an HTTPReqCall request with sensible defaults. */
export function call(over: {
  method?: string;
  path?: string;
  args?: Entry[];
  headers?: Entry[];
  body?: Buffer | string;
  vars?: Record<string, string | undefined>;
} = {}): Parameters<ApisixClient['httpReqCall']>[1] {
  return {
    method: over.method ?? 'GET',
    path: over.path ?? '/hello',
    args: over.args ?? [],
    headers: over.headers ?? [{ name: 'host', value: 'api.example.com' }],
    srcIp: '127.0.0.1',
    body: over.body,
    vars: over.vars ?? {},
  };
}

/** Throws unless the call went through without an RPC error. */
export function expectOk(outcome: ReqCallOutcome): ReqCallOutcome {
  if (outcome.kind === 'error') throw new Error(`runner call failed: ${outcome.error}`);
  return outcome;
}

/** What a target saw: the suite's one Recorded (test/harness/http-recorder.ts). */
export type { Recorded } from '../../harness/http-recorder.js';

export type TargetMode = RecorderMode;

/** Values of a header in a recorded copy. */
export function headerValues(r: Recorded, name: string): string[] {
  return r.headerValues(name);
}

/** An HTTP/1.1 (or HTTPS) mirror target that records requests: the suite's one Recorder. */
export type RecordingTarget = Recorder;
export const RecordingTarget = {
  /** Starts a target answering 200 (`ok`), holding every response for `holdMs` (`hold`), or resetting (`reset`). */
  start(mode: TargetMode = 'ok', tls?: { key: string; cert: string }, holdMs = 10_000): Promise<RecordingTarget> {
    return new Recorder('mirror-target', { mode, tls, holdMs, answer: (_rec, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('mirror ok') }).start();
  },
};

/** A 127.0.0.1 port nobody listens on (bound, then released). */
export async function absentPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** What the gRPC target saw of one call. */
export interface GrpcRecorded {
  readonly path: string;
  readonly metadata: Record<string, grpc.MetadataValue[]>;
  readonly messages: Buffer[];
}

const id = (b: Buffer): Buffer => b;

/** A gRPC target with a generic service (identity serializers): unary `Call`, client-streaming `Upload`. */
export class GrpcTarget {
  readonly received: GrpcRecorded[] = [];
  private constructor(private readonly server: grpc.Server, readonly port: number) {}

  static async start(tls?: { key: string; cert: string }): Promise<GrpcTarget> {
    const server = new grpc.Server();
    let self: GrpcTarget | undefined;
    const record = (path: string, md: grpc.Metadata, messages: Buffer[]): void => {
      const metadata: Record<string, grpc.MetadataValue[]> = {};
      for (const key of Object.keys(md.getMap())) metadata[key] = md.get(key);
      self!.received.push({ path, metadata, messages });
    };
    const def = (name: string, requestStream: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
      path: `/test.Mirror/${name}`, requestStream, responseStream: false,
      requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id,
    });
    server.addService({ Call: def('Call', false), Upload: def('Upload', true) }, {
      Call: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        record('/test.Mirror/Call', c.metadata, [c.request]);
        cb(null, Buffer.from('ok'));
      },
      Upload: (c: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const msgs: Buffer[] = [];
        c.on('data', (m: Buffer) => msgs.push(m));
        c.on('end', () => {
          record('/test.Mirror/Upload', c.metadata, msgs);
          cb(null, Buffer.from('ok'));
        });
      },
    });
    const creds = tls
      ? grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }], false)
      : grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
    self = new GrpcTarget(server, port);
    return self;
  }

  async waitFor(n: number): Promise<GrpcRecorded[]> {
    await until(() => this.received.length >= n, `${n} gRPC copies (have ${this.received.length})`);
    return this.received;
  }

  close(): Promise<void> {
    this.server.forceShutdown();
    return Promise.resolve();
  }
}

/** Frames gRPC messages (flag 0, 4-byte big-endian length). */
export function grpcFrame(...messages: Buffer[]): Buffer {
  return Buffer.concat(messages.map((m) => {
    const h = Buffer.alloc(5);
    h.writeUInt32BE(m.length, 1);
    return Buffer.concat([h, m]);
  }));
}
