#!/usr/bin/env node
/**
 * Mirror sink for the proxy-mirror cells: a keep-alive HTTP server on 127.0.0.1 that reads
 * and drops every request and answers 200 with an empty body. `GET /__bench/count` answers
 * `{"requests": n, "connections": m}`: requests and TCP connections seen so far (the count
 * request itself is not counted as a request).
 * Prints `sink listening on <port>` once ready. SINK_PORT picks the port (default: any free).
 */
import http from 'node:http';

let received = 0;
let connections = 0;
const server = http.createServer((req, res) => {
  if (req.url === '/__bench/count') {
    res.end(JSON.stringify({ requests: received, connections }));
    return;
  }
  received++;
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.on('connection', () => { connections++; });
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.SINK_PORT ?? 0), '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`sink listening on ${typeof addr === 'object' && addr ? addr.port : '?'}\n`);
});
const stop = () => { server.closeAllConnections(); server.close(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
