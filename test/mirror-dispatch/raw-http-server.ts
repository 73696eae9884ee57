/**
 * A TCP server on 127.0.0.1 that reads HTTP/1.1 requests itself (pipelined, split anywhere,
 * bodies by content-length) and lets each test decide, per request, what goes back on the
 * wire: exact bytes, nothing, or a closed connection. It records the raw chunks it read, so a
 * test can tell how many requests arrived in one read.
 */
import net from 'node:net';

export interface RawRequest {
  readonly method: string;
  readonly target: string;
  /** Names lower case, in order. */
  readonly headers: [string, string][];
  readonly body: Buffer;
  /** Index of the connection it came on (0 = first accepted). */
  readonly connection: number;
  /** Index of the request on its connection. */
  readonly index: number;
}

/** What to do for a request: bytes to write, 'hang' (nothing), 'close' (end the connection unanswered), 'reset'. */
export type RawReply = string | Buffer | 'hang' | 'close' | 'reset';

export class RawHttpServer {
  readonly requests: RawRequest[] = [];
  /** The chunks each connection's socket delivered, in order. */
  readonly reads: Buffer[][] = [];
  readonly sockets: net.Socket[] = [];
  /** Connections the client closed (its FIN seen), by index. */
  readonly clientClosed = new Set<number>();

  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(reply: (req: RawRequest) => RawReply): Promise<RawHttpServer> {
    let self: RawHttpServer | undefined;
    const server = net.createServer((socket) => {
      const s = self!;
      const conn = s.sockets.length;
      s.sockets.push(socket);
      s.reads.push([]);
      let buf = Buffer.alloc(0);
      let index = 0;
      let stopped = false;
      socket.on('error', () => undefined);
      socket.on('end', () => { s.clientClosed.add(conn); socket.end(); });
      socket.on('data', (chunk: Buffer) => {
        s.reads[conn]!.push(Buffer.from(chunk));
        if (stopped) return;
        buf = Buffer.concat([buf, chunk]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
          const [method, target] = lines[0]!.split(' ') as [string, string];
          const headers = lines.slice(1).map((l) => {
            const c = l.indexOf(':');
            return [l.slice(0, c).toLowerCase(), l.slice(c + 1).trim()] as [string, string];
          });
          const length = Number(headers.find(([n]) => n === 'content-length')?.[1] ?? '0');
          if (buf.length < end + 4 + length) return;
          const body = Buffer.from(buf.subarray(end + 4, end + 4 + length));
          buf = buf.subarray(end + 4 + length);
          const req: RawRequest = { method, target, headers, body, connection: conn, index: index++ };
          s.requests.push(req);
          const r = reply(req);
          if (r === 'hang') continue;
          if (r === 'close') { stopped = true; socket.end(); return; }
          if (r === 'reset') { stopped = true; socket.resetAndDestroy(); return; }
          socket.write(r);
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    self = new RawHttpServer(server, (server.address() as net.AddressInfo).port);
    return self;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** `HTTP/1.1 <status>` with a content-length body and extra header lines. */
export function answer(status: number, body = '', extra = ''): string {
  return `HTTP/1.1 ${status} X\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}
