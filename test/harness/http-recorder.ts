/**
 * Real HTTP servers standing for an upstream or a mirror target (they record every request and
 * answer 200 JSON), the client side of a scenario, and a Prometheus text reader. Shared by the
 * e2e scenarios and scripts/demo.mjs.
 */
import { createServer, type Server } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';

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

/** One request as a recorder (upstream or mirror target) saw it. */
export interface Recorded {
  readonly method: string;
  readonly url: string;
  /** Raw header pairs, names as sent. */
  readonly rawHeaders: readonly string[];
  readonly body: string;
  /** First value of a header (case-insensitive). */
  header(name: string): string | undefined;
  /** All values of a header, in order. */
  headerValues(name: string): string[];
}

/** An HTTP server on 127.0.0.1 that records every request and answers 200 JSON. */
export class Recorder {
  private readonly seen: { scenario: string; rec: Recorded }[] = [];
  private server: Server | undefined;
  port = 0;

  constructor(readonly name: string) {}

  /** Starts listening on 127.0.0.1 (any free port). */
  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rawHeaders = [...req.rawHeaders];
        const values = (name: string): string[] => {
          const out: string[] = [];
          for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name.toLowerCase()) out.push(rawHeaders[i + 1]!);
          return out;
        };
        const rec: Recorded = {
          method: req.method ?? '',
          url: req.url ?? '',
          rawHeaders,
          body: Buffer.concat(chunks).toString('utf8'),
          header: (n) => values(n)[0],
          headerValues: values,
        };
        this.seen.push({ scenario: values('x-scenario')[0] ?? '', rec });
        res.statusCode = Number(values(ANSWER_STATUS)[0] ?? 200);
        res.setHeader('content-type', 'application/json');
        res.setHeader('x-upstream', this.name);
        if (res.statusCode === 204 || res.statusCode === 304) {
          res.end();
          return;
        }
        let body = Buffer.from(JSON.stringify({ from: this.name, url: req.url }));
        if (values(ANSWER_GZIP)[0] === '1') {
          body = gzipSync(body);
          res.setHeader('content-encoding', 'gzip');
        }
        if (values(ANSWER_FRAMING)[0] === 'chunked') {
          // No content-length: Node sends the body chunked.
          res.write(body);
          res.end();
          return;
        }
        res.setHeader('content-length', body.length);
        res.end(req.method === 'HEAD' ? undefined : body);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Requests of one scenario, in arrival order. */
  of(scenario: string): Recorded[] {
    return this.seen.filter((s) => s.scenario === scenario).map((s) => s.rec);
  }

  /** Every request seen, in arrival order. */
  all(): Recorded[] {
    return this.seen.map((s) => s.rec);
  }

  /** Stops the server. */
  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
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

