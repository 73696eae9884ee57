/**
 * Real parts for the proxy-mirror tests: a runner on a Unix socket with the plugin, the
 * APISIX-like client, and mirror targets on 127.0.0.1 (HTTP, HTTPS, gRPC) that record what
 * they receive.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { Registry } from 'prom-client';
import { startRunner, type Runner } from '../../../src/runner.js';
import { createProxyMirrorPlugin, type ProxyMirrorPlugin } from '../../../src/plugins/proxy-mirror/index.js';
import { ApisixClient, type Entry, type ReqCallOutcome, type RouteConf } from '../../harness/apisix-client.js';

/** Polls `cond` every 10 ms until true; fails after `limitMs` (a bound, not a timing assertion). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
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
} = {}): Promise<MirrorRunner> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  const socketPath = path.join(dir, 'r.sock');
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
      return [plugin];
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
      rmSync(dir, { recursive: true, force: true });
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

/** What a target saw. */
export interface Recorded {
  readonly method: string;
  readonly url: string;
  /** Raw header pairs, names lower case, in wire order. */
  readonly headers: [string, string][];
  readonly body: Buffer;
}

export type TargetMode = 'ok' | 'hold' | 'reset';

/** Values of a header in a recorded copy. */
export function headerValues(r: Recorded, name: string): string[] {
  return r.headers.filter(([n]) => n === name).map(([, v]) => v);
}

/** An HTTP/1.1 (or HTTPS) mirror target that records requests. */
export class RecordingTarget {
  readonly received: Recorded[] = [];
  /** Requests received whose response is still held. */
  holding = 0;
  /** Responses written. */
  answered = 0;
  private readonly holds = new Set<NodeJS.Timeout>();

  private constructor(private readonly server: http.Server | https.Server, readonly url: string) {}

  static async start(mode: TargetMode = 'ok', tls?: { key: string; cert: string }, holdMs = 10_000): Promise<RecordingTarget> {
    let self: RecordingTarget | undefined;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const headers: [string, string][] = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!.toLowerCase(), req.rawHeaders[i + 1]!]);
        const t = self!;
        t.received.push({ method: req.method ?? '', url: req.url ?? '', headers, body: Buffer.concat(chunks) });
        if (mode === 'reset') {
          req.socket.resetAndDestroy();
          return;
        }
        if (mode === 'hold') {
          t.holding++;
          const timer = setTimeout(() => {
            t.holds.delete(timer);
            t.holding--;
            t.answered++;
            res.end('late');
          }, holdMs);
          t.holds.add(timer);
          return;
        }
        t.answered++;
        res.writeHead(200, { 'content-type': 'text/plain' }).end('mirror ok');
      });
    };
    const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) : http.createServer(handler);
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    self = new RecordingTarget(server, `${tls ? 'https' : 'http'}://127.0.0.1:${port}`);
    return self;
  }

  /** Waits until at least `n` requests were recorded. */
  async waitFor(n: number): Promise<Recorded[]> {
    await until(() => this.received.length >= n, `${n} copies at ${this.url} (have ${this.received.length})`);
    return this.received;
  }

  async close(): Promise<void> {
    for (const t of this.holds) clearTimeout(t);
    this.holds.clear();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

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
