/**
 * An HTTP/1.1 server on 127.0.0.1 that counts TCP connections and records request paths;
 * `hold` keeps every answer back until close. For the dispatch tests (breaker, nodes, limits).
 */
import http from 'node:http';
import type net from 'node:net';

export interface CountingServer {
  readonly url: string;
  readonly port: number;
  /** Request paths in arrival order. */
  readonly requests: string[];
  connections(): number;
  close(): Promise<void>;
}

export async function startCountingServer(opts: { port?: number; hold?: boolean } = {}): Promise<CountingServer> {
  let connections = 0;
  const requests: string[] = [];
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests.push(req.url ?? '');
      if (opts.hold) held.push(res);
      else res.end('ok');
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (_s: net.Socket) => connections++);
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    connections: () => connections,
    async close() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
