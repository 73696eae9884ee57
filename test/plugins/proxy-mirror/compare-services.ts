/**
 * The services of the compare-through-the-gateway tests, real HTTP servers on 127.0.0.1:
 * `v1` serves users (the route's upstream, and its second instance is the `secondary`), `v2`
 * is the candidate the copies go to. What each answers is decided by the path, so the expected
 * comparison result of every request is known in advance, whatever order requests arrive in.
 *
 *  /fields/N       JSON; v2's `price` differs when N % 3 == 0
 *  /clock-*\/N      JSON with `ts`, a value no other answer has (every instance, every answer)
 *  /slow/N         v2 holds the answer until `releaseHeld()` (the candidate is slow)
 *  /hold/N         v2 never answers (until it is closed)
 *  /bin/same|diff  application/octet-stream; v2 flips one byte of `diff`
 *  /gz/same|diff   gzip JSON, v2 compressed at another level; v2's `diff` has another `colour`
 *  /large/same|diff 200 KiB over a 4 KiB compare cap; v2 changes the last byte of `diff`
 *  /huge/same|diff 3 MiB, over the default 1 MiB cap; v2 changes the last byte of `diff`
 *  /head/x         HEAD: headers only
 *  /nocontent/x    204 from both
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export type Version = 'v1' | 'v2';

export interface CompareService {
  readonly url: string;
  /** Requests received, by path. */
  readonly received: string[];
  /** Answers held back (v2 /slow and /hold). */
  readonly held: number;
  /** Answers /slow requests that were held. */
  releaseHeld(): void;
  close(): Promise<void>;
}

/** Every answer's `ts` is unique across all services of a test file. */
let clock = 0;

const BINARY = randomBytes(4096);
const LARGE = Buffer.alloc(200 * 1024, 'x');
const HUGE = Buffer.alloc(3 * 1024 * 1024, 'y');

function json(res: ServerResponse, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...extra });
  res.end(text);
}

function bytes(res: ServerResponse, body: Buffer, headers: Record<string, string>): void {
  res.writeHead(200, { ...headers, 'content-length': String(body.length) });
  res.end(body);
}

export async function startCompareService(version: Version): Promise<CompareService> {
  const received: string[] = [];
  const slow: ServerResponse[] = [];
  let held = 0;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0]!;
    received.push(path);
    const [, kind = '', arg = ''] = path.split('/');
    const n = Number(arg);
    switch (kind) {
      case 'fields':
        return json(res, { id: n, name: 'item', price: version === 'v2' && n % 3 === 0 ? 12 : 10, tags: ['a', 'b'] });
      case 'clock-s': case 'clock-p':
        return json(res, { id: n, ts: ++clock, status: 'ok' });
      case 'slow':
        if (version === 'v2') {
          held++;
          slow.push(res);
          return;
        }
        return json(res, { id: n, ok: true });
      case 'hold':
        if (version === 'v2') {
          held++;
          return;
        }
        return json(res, { id: n, ok: true });
      case 'bin': {
        const body = Buffer.from(BINARY);
        if (version === 'v2' && arg === 'diff') body[100] = body[100]! ^ 0xff;
        return bytes(res, body, { 'content-type': 'application/octet-stream' });
      }
      case 'gz': {
        const doc = JSON.stringify({ name: 'widget', colour: version === 'v2' && arg === 'diff' ? 'blue' : 'red', sizes: [1, 2, 3] });
        const body = gzipSync(doc, { level: version === 'v1' ? 9 : 1 });
        return bytes(res, body, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      }
      case 'large': {
        const body = Buffer.from(LARGE);
        if (version === 'v2' && arg === 'diff') body[body.length - 1] = 0x79;
        return bytes(res, body, { 'content-type': 'text/plain' });
      }
      case 'huge': {
        const body = Buffer.from(HUGE);
        if (version === 'v2' && arg === 'diff') body[body.length - 1] = 0x7a;
        return bytes(res, body, { 'content-type': 'application/octet-stream' });
      }
      case 'head':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '42', 'x-shape': 'same' });
        res.end();
        return;
      case 'nocontent':
        res.writeHead(204, { 'x-shape': 'same' });
        res.end();
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('no such case\n');
    }
  };
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    get held() {
      return held;
    },
    releaseHeld() {
      for (const res of slow.splice(0)) json(res, { ok: true, late: true });
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
