/**
 * Real parts for the compare tests: HTTP services on 127.0.0.1 standing for the serving
 * version (v1), another instance of it (the secondary) and the candidate (v2), and a client
 * (undici, as the dispatch engine uses) that turns a real answer into the room's MirrorAnswer.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import type { AnswerHeaders, MirrorAnswer, PrimaryAnswer } from '../../src/mirror-compare/index.js';

export interface Service {
  readonly url: string;
  close(): Promise<void>;
}

/** Starts an HTTP server on 127.0.0.1 with `handler`. */
export async function startService(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Service> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Sends a request and reads the answer as the engine would: body up to `cap`, hashed whole. */
export async function fetchAnswer(url: string, method = 'GET', cap = 1 << 20): Promise<MirrorAnswer> {
  const started = performance.now();
  const res = await request(url, { method: method as 'GET' });
  const headers: [string, string][] = [];
  for (const [n, v] of Object.entries(res.headers)) {
    if (Array.isArray(v)) for (const x of v) headers.push([n, x]);
    else if (v !== undefined) headers.push([n, v]);
  }
  const chunks: Buffer[] = [];
  const hash = createHash('sha256');
  let total = 0;
  let kept = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    total += chunk.length;
    if (kept < cap) {
      const part = chunk.subarray(0, cap - kept);
      chunks.push(part);
      kept += part.length;
    }
  }
  return {
    status: res.statusCode,
    headers: headers as AnswerHeaders,
    body: Buffer.concat(chunks),
    truncated: total > cap,
    bodyBytes: total,
    bodySha256: hash.digest('hex'),
    durationMs: performance.now() - started,
  };
}

/** The same answer as the post-resp side would give it (whole body from RespBody, no hash). */
export async function fetchPrimary(url: string, method = 'GET'): Promise<PrimaryAnswer> {
  const a = await fetchAnswer(url, method, Number.MAX_SAFE_INTEGER);
  return { status: a.status, headers: a.headers, body: a.body, truncated: false };
}

/** Value of the sample of `name` whose labels include `labels`, from Prometheus text (0 when absent). */
export function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const brace = line.indexOf('{');
    const labelText = brace < 0 ? '' : line.slice(brace + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}
