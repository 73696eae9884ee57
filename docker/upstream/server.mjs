// Echo upstream for the compose demo, in the spirit of httpbin's /get and /anything:
// answers every request with a JSON description of what it received (method, URL, query,
// headers, body size). Node built-ins only, so the stock node image runs it as is.
//
// HOST and PORT choose the listening address (defaults 0.0.0.0:8080 for the container);
// the first stdout line says where it listens, which lets a test start it on port 0.
import { createServer } from 'node:http';

const host = process.env.HOST ?? '0.0.0.0';
const port = Number(process.env.PORT ?? '8080');

const server = createServer((req, res) => {
  let bodyBytes = 0;
  req.on('data', (chunk) => {
    bodyBytes += chunk.length;
  });
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    const payload = {
      method: req.method,
      url: req.url,
      path: url.pathname,
      args: Object.fromEntries(url.searchParams),
      headers: req.headers,
      body_bytes: bodyBytes,
      origin: req.socket.remoteAddress,
    };
    const body = JSON.stringify(payload, null, 2) + '\n';
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
});

server.listen(port, host, () => {
  const address = server.address();
  const shown = typeof address === 'object' && address !== null ? `${address.address}:${address.port}` : String(address);
  console.log(`upstream echo listening on ${shown}`);
});

// Compose stops containers with SIGTERM; close promptly instead of waiting for the kill.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
