// How the runner reads APISIX's connections (src/socket-reads.ts): into one reused
// buffer where this Node offers it, through the stream API otherwise. Real Unix sockets.
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { once } from 'node:events';
import { definePlugin, type Plugin } from '../../src/plugin-api/index.js';
import { startReading, type ReadPath } from '../../src/socket-reads.js';
import { RawConnection } from '../harness/raw-connection.js';
import { RPC, encodeExtraInfoResp, encodeHttpReqCallReq } from '../harness/apisix-codec.js';
import { decodeFrame, readReply } from '../harness/frames.js';
import { runnerWithClient } from '../harness/test-runner.js';
import { createTempDir } from '../harness/temp-dir.js';
import { waitUntil } from '../harness/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server accepting paused, whose connections are read with startReading; chunks are kept per connection. */
async function readingServer(forceStream: boolean) {
  const dir = createTempDir();
  const path = dir.file('s.sock');
  const accepted: Array<{ socket: net.Socket; chunks: Buffer[]; path: ReadPath; ended: boolean }> = [];
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const entry = { socket, chunks: [] as Buffer[], path: 'stream' as ReadPath, ended: false };
    entry.path = startReading(socket, (chunk) => entry.chunks.push(chunk), forceStream);
    socket.on('end', () => {
      entry.ended = true;
      socket.end();
    });
    accepted.push(entry);
  });
  server.listen(path);
  await once(server, 'listening');
  const clients: net.Socket[] = [];
  cleanups.push(async () => {
    for (const c of clients) c.destroy();
    for (const a of accepted) a.socket.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    dir.remove();
  });
  const connect = async (): Promise<net.Socket> => {
    const c = net.createConnection(path);
    clients.push(c);
    await once(c, 'connect');
    return c;
  };
  return { accepted, connect };
}

const bytesOf = (chunks: Buffer[]): Buffer => Buffer.concat(chunks);

describe('startReading', () => {
  it('takes the reused-buffer path on this Node (a Node that drops its internals would fall back silently: this says so)', async () => {
    const { accepted, connect } = await readingServer(false);
    await connect();
    await waitUntil(() => accepted.length === 1, 'the connection accepted');
    expect(accepted[0]!.path).toBe('user-buffer');
  });

  for (const forceStream of [false, true]) {
    const label = forceStream ? 'stream API' : 'reused buffer';
    it(`${label}: a chunk kept by the reader is not overwritten by later reads on any connection`, async () => {
      const { accepted, connect } = await readingServer(forceStream);
      const a = await connect();
      const b = await connect();
      await waitUntil(() => accepted.length === 2, 'both connections accepted');
      // Each connection's own bytes, the same length, different content: a view of a shared
      // buffer handed on as is would read as the other connection's (or the next read's) bytes.
      const first = Buffer.alloc(3000, 'a');
      a.write(first);
      await waitUntil(() => accepted.reduce((n, x) => n + bytesOf(x.chunks).length, 0) === 3000, 'the first 3,000 bytes read');
      const kept = accepted.find((x) => x.chunks.length > 0)!;
      const keptChunks = [...kept.chunks];
      for (let i = 0; i < 5; i++) {
        b.write(Buffer.alloc(3000, String.fromCharCode(0x62 + i)));
        a.write(Buffer.alloc(100, 'z'));
      }
      await waitUntil(() => accepted.reduce((n, x) => n + bytesOf(x.chunks).length, 0) === 3000 + 5 * 3100, 'every byte read');
      expect(bytesOf(keptChunks)).toEqual(first);
      const other = accepted.find((x) => x !== kept)!;
      expect(bytesOf(kept.chunks)).toEqual(Buffer.concat([first, Buffer.alloc(500, 'z')]));
      expect(bytesOf(other.chunks)).toEqual(Buffer.concat([0, 1, 2, 3, 4].map((i) => Buffer.alloc(3000, String.fromCharCode(0x62 + i)))));
      expect(accepted.map((x) => x.path)).toEqual([forceStream ? 'stream' : 'user-buffer', forceStream ? 'stream' : 'user-buffer']);
    });

    it(`${label}: more than one read's worth (200 KiB) arrives whole and in order; the peer's end is seen`, async () => {
      const { accepted, connect } = await readingServer(forceStream);
      const c = await connect();
      const big = Buffer.alloc(200 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 0xff;
      c.end(big);
      await waitUntil(() => accepted[0]?.ended === true, "the peer's end");
      expect(bytesOf(accepted[0]!.chunks)).toEqual(big);
      expect(accepted[0]!.chunks.length).toBeGreaterThan(1);
    });
  }
});

/**
 * A plugin that reads a header only after an ExtraInfo round trip: its call's payload must
 * still hold that call's bytes after other connections' reads.
 */
const lateReader = definePlugin<unknown>({
  name: 'late-reader',
  onRequest: async (_conf, req) => {
    await req.var('remote_addr');
    req.stop({ status: 200, body: req.header('x-call') ?? 'missing' });
  },
});

describe('the runner, read both ways', () => {
  for (const streamReads of [false, true]) {
    it(`${streamReads ? 'stream API' : 'reused buffer'}: a call waiting for ExtraInfo still reads its own headers after other connections' calls`, async () => {
      const env = await runnerWithClient({ plugins: () => [lateReader] as Plugin<unknown>[], streamReads });
      cleanups.push(env.close);
      const token = await env.client.prepareConf('late', [{ name: 'late-reader', value: '{}' }]);
      const waiting = await RawConnection.connect(env.socketPath);
      const busy = await RawConnection.connect(env.socketPath);
      cleanups.push(() => waiting.close(), () => busy.close());
      const call = (id: number, value: string) => encodeHttpReqCallReq({
        id, confToken: token, srcIp: new Uint8Array([10, 0, 0, 1]), method: 'GET', path: '/', args: [],
        headers: [{ name: 'x-call', value }],
      });
      await waiting.send(RPC.HTTP_REQ_CALL, call(1, 'first-call-value'));
      // The runner asks for remote_addr; the question stays unanswered while the other
      // connection's calls (same size, other bytes) are read and answered.
      const question = await waiting.readFrame(2000);
      expect(question.type).toBe(RPC.EXTRA_INFO);
      for (let i = 0; i < 5; i++) {
        await busy.send(RPC.HTTP_REQ_CALL, call(100 + i, `other-call-val${i}`));
        const q = await busy.readFrame(2000);
        expect(q.type).toBe(RPC.EXTRA_INFO);
        await busy.send(RPC.EXTRA_INFO, encodeExtraInfoResp('10.0.0.1'));
        expect(await readReply(busy, 2000)).toMatchObject({ id: 100 + i, action: { kind: 'stop', stop: { body: Buffer.from(`other-call-val${i}`) } } });
      }
      await waiting.send(RPC.EXTRA_INFO, encodeExtraInfoResp('10.0.0.1'));
      expect(decodeFrame(await waiting.readFrame(2000))).toMatchObject({ id: 1, action: { kind: 'stop', stop: { body: Buffer.from('first-call-value') } } });
      const wanted = streamReads ? /stream API/ : /reused buffer/;
      expect(env.logs.filter((l) => wanted.test(String(l['msg'])))).toHaveLength(1);
    });
  }
});
