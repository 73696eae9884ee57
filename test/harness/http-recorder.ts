/**
 * Real HTTP servers standing for an upstream or a mirror target (they record every request and
 * answer), the client side of a scenario, and a Prometheus text reader. Shared by the e2e
 * scenarios, the gateway emulator's tests, the proxy-mirror tests and scripts/demo.mjs.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { waitUntil } from './wait.js';

export interface ClientRequest {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  readonly body?: string;
}

/**
 * Request headers that make a Recorder answer differently (for post-resp scenarios): the status,
 * the framing of its body (`length` = content-length, `chunked` = transfer-encoding), and a gzip
 * content-encoding. Without them it answers 200 JSON with a content-length.
 */
export const ANSWER_STATUS = 'x-answer-status';
export const ANSWER_FRAMING = 'x-answer-framing';
export const ANSWER_GZIP = 'x-answer-gzip';

export interface ClientResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
  /** The body's bytes (for binary answers such as gzip). */
  readonly bytes: Buffer;
}

/** One request as a recorder saw it. */
export interface Recorded {
  readonly method: string;
  readonly url: string;
  /** Raw header pairs, names as sent. */
  readonly rawHeaders: readonly string[];
  /** Header pairs, names lower case, in wire order. */
  readonly headers: readonly (readonly [string, string])[];
  /** The body's bytes. */
  readonly body: Buffer;
  /** The body as UTF-8 text. */
  readonly text: string;
  /** First value of a header (case-insensitive). */
  header(name: string): string | undefined;
  /** All values of a header (case-insensitive), in order. */
  headerValues(name: string): string[];
}

/**
 * How a recorder answers: `ok` the default answer below, `hold` keeps the response open for
 * `holdMs` (a target that never answers in time), `reset` resets the connection.
 */
export type RecorderMode = 'ok' | 'hold' | 'reset';

export interface RecorderOptions {
  readonly mode?: RecorderMode;
  /** How long `hold` keeps a response open (ms). */
  readonly holdMs?: number;
  /** Serve HTTPS with this key and certificate. */
  readonly tls?: { readonly key: string; readonly cert: string };
  /**
   * Replaces the default answer in `ok` mode. Without it the recorder answers 200 JSON
   * `{from, url}` with `x-upstream: <name>`, shaped by the ANSWER_* request headers.
   */
  readonly answer?: (rec: Recorded, res: ServerResponse) => void;
}

/** Builds a Recorded from a request's head and body. */
function recordedOf(req: IncomingMessage, body: Buffer): Recorded {
  const rawHeaders = [...req.rawHeaders];
  const headers: [string, string][] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) headers.push([rawHeaders[i]!.toLowerCase(), rawHeaders[i + 1]!]);
  const values = (name: string): string[] => headers.filter(([n]) => n === name.toLowerCase()).map(([, v]) => v);
  return {
    method: req.method ?? '',
    url: req.url ?? '',
    rawHeaders,
    headers,
    body,
    text: body.toString('utf8'),
    header: (n) => values(n)[0],
    headerValues: values,
  };
}

/**
 * The one recording HTTP server of the test suite: on 127.0.0.1 (any free port), HTTP or
 * HTTPS, it records every request (by the `x-scenario` header too) and answers as told.
 * It stands for an upstream, a mirror target, or a gateway's upstream.
 */
export class Recorder {
  private readonly seen: { scenario: string; rec: Recorded }[] = [];
  /** Every request recorded, in arrival order. */
  readonly received: Recorded[] = [];
  /** Requests whose response is still held (`hold` mode). */
  holding = 0;
  /** Responses written. */
  answered = 0;
  private readonly holds = new Set<NodeJS.Timeout>();
  private server: Server | undefined;
  port = 0;
  url = '';

  constructor(readonly name: string, private readonly options: RecorderOptions = {}) {}

  /** Starts listening on 127.0.0.1 (any free port). */
  async start(): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(recordedOf(req, Buffer.concat(chunks)), req, res));
    };
    const tls = this.options.tls;
    const server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert }, handler) : createServer(handler);
    // Keeps a client's pooled connection open across requests (the runner reuses its pool).
    server.keepAliveTimeout = 60_000;
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (server.address() as AddressInfo).port;
    this.url = `${tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
    return this;
  }

  private handle(rec: Recorded, req: IncomingMessage, res: ServerResponse): void {
    this.seen.push({ scenario: rec.header('x-scenario') ?? '', rec });
    this.received.push(rec);
    const mode = this.options.mode ?? 'ok';
    if (mode === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    if (mode === 'hold') {
      this.holding++;
      const timer = setTimeout(() => {
        this.holds.delete(timer);
        this.holding--;
        this.answered++;
        res.end('late');
      }, this.options.holdMs ?? 10_000);
      this.holds.add(timer);
      return;
    }
    this.answered++;
    if (this.options.answer) {
      this.options.answer(rec, res);
      return;
    }
    this.answerJson(rec, res);
  }

  /** The default answer: 200 JSON naming this recorder, unless ANSWER_* headers ask otherwise. */
  private answerJson(rec: Recorded, res: ServerResponse): void {
    res.statusCode = Number(rec.header(ANSWER_STATUS) ?? 200);
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-upstream', this.name);
    if (res.statusCode === 204 || res.statusCode === 304) {
      res.end();
      return;
    }
    let body = Buffer.from(JSON.stringify({ from: this.name, url: rec.url }));
    if (rec.header(ANSWER_GZIP) === '1') {
      body = gzipSync(body);
      res.setHeader('content-encoding', 'gzip');
    }
    if (rec.header(ANSWER_FRAMING) === 'chunked') {
      // No content-length: Node sends the body chunked.
      res.write(body);
      res.end();
      return;
    }
    res.setHeader('content-length', body.length);
    res.end(rec.method === 'HEAD' ? undefined : body);
  }

  /** Requests of one scenario, in arrival order. */
  of(scenario: string): Recorded[] {
    return this.seen.filter((s) => s.scenario === scenario).map((s) => s.rec);
  }

  /** Every request seen, in arrival order. */
  all(): Recorded[] {
    return [...this.received];
  }

  /** Waits (bounded) until at least `n` requests were recorded. */
  async waitFor(n: number): Promise<Recorded[]> {
    await waitUntil(() => this.received.length >= n, `${n} requests at ${this.name} ${this.url} (have ${this.received.length})`);
    return this.received;
  }

  /** Stops the server (and any held responses). */
  async close(): Promise<void> {
    for (const t of this.holds) clearTimeout(t);
    this.holds.clear();
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Sends a client request with undici and reads the whole answer. */
export async function sendClientRequest(baseUrl: string, scenario: string, req: ClientRequest): Promise<ClientResult> {
  const headers: Record<string, string | string[]> = { 'x-scenario': scenario };
  for (const [k, v] of Object.entries(req.headers ?? {})) headers[k] = typeof v === 'string' ? v : [...v];
  const res = await request(new URL(req.path, baseUrl), { method: (req.method ?? 'GET') as 'GET', headers, body: req.body });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body: bytes.toString('utf8'), bytes };
}

/** Parses one sample of a Prometheus text exposition; 0 when absent. */
export function promSample(text: string, metric: string, labels: Readonly<Record<string, string>>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const close = line.lastIndexOf('}');
    const labelText = line.slice(metric.length + 1, close);
    const have = new Map([...labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) total += Number(line.slice(close + 1).trim());
  }
  return total;
}

