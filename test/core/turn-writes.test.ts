/**
 * The runner's frames to APISIX are written at the end of the event-loop turn that made them,
 * every connection's together, and afterReply tasks run after all of them
 * (src/server/turn-writes.ts). Observed from the peer's side: a probe plugin's afterReply task
 * reads the client sockets synchronously (no event loop between the runner's writes and the
 * task), so what it finds there is what the runner had written when the task ran.
 */
import { readSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, type Plugin } from '../../src/plugin-api/index.js';
import { FrameDecoder } from '../../src/protocol/frame.js';
import { RPC, decodeRunnerFrame, encodeHttpReqCallReq, frame } from '../harness/apisix-codec.js';
import { GET, runnerWithClient } from '../harness/test-runner.js';

type Env = Awaited<ReturnType<typeof runnerWithClient>>;

let env: Env | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  probe = undefined;
  onCall = undefined;
  for (const s of sockets.splice(0)) s.destroy();
  await env?.close();
  env = undefined;
});

/** Run by the first afterReply task of a test. */
let probe: (() => void) | undefined;
/** Run as each call's chain runs (before its answer is made), with the call's id. */
let onCall: ((id: number) => void) | undefined;

const probePlugin = definePlugin<unknown>({
  name: 'after-reply-probe',
  onRequest(_conf, req) {
    onCall?.(req.id);
    req.afterReply(() => {
      const p = probe;
      probe = undefined;
      p?.();
    });
  },
});

function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('no file descriptor for the client socket');
  return fd;
}

/** The reply ids readable on `socket` right now, without the event loop (a non-blocking read). */
function idsReadableNow(socket: Socket): number[] {
  const buf = Buffer.alloc(64 * 1024);
  let n = 0;
  try {
    n = readSync(fdOf(socket), buf, 0, buf.length, null);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
  }
  const ids: number[] = [];
  new FrameDecoder().push(buf.subarray(0, n), (type, payload) => {
    const reply = decodeRunnerFrame(type, payload);
    ids.push(reply.type === 'reqCall' ? reply.id : -1);
  });
  return ids;
}

async function connect(socketPath: string): Promise<Socket> {
  const socket = createConnection({ path: socketPath });
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

function call(id: number, confToken: number): Buffer {
  return frame(RPC.HTTP_REQ_CALL, encodeHttpReqCallReq({ ...GET, id, confToken, srcIp: new Uint8Array([10, 0, 0, 1]) }));
}

async function setUp(): Promise<{ env: Env; token: number }> {
  env = await runnerWithClient({ plugins: () => [probePlugin] as Plugin<unknown>[] });
  const token = await env.client.prepareConf('route#1#ext-plugin-pre-req#1', [{ name: 'after-reply-probe', value: '{}' }]);
  return { env, token };
}

function probed<T>(look: () => T): Promise<T> {
  return new Promise((resolve, reject) => {
    probe = () => {
      try {
        resolve(look());
      } catch (err) {
        reject(err as Error);
      }
    };
  });
}

describe('answers leave at the end of the turn, together', () => {
  it('calls read in one turn on two connections are both answered before the first call’s afterReply task runs', async () => {
    const { env, token } = await setUp();
    const a = await connect(env.socketPath);
    const b = await connect(env.socketPath);
    const seen = probed(() => ({ a: idsReadableNow(a), b: idsReadableNow(b) }));
    // While call 2 is handled, call 1 (same turn) is answered but its answer not yet written.
    let whileCall2: number[] | undefined;
    onCall = (id) => {
      if (id === 2) whileCall2 = idsReadableNow(a);
    };
    // Both in the kernel before the runner's next poll: it reads them in one turn.
    a.write(call(1, token));
    b.write(call(2, token));
    // Written one by one, call 1's answer would be out while call 2 ran, and call 2's not yet
    // made when call 1's task ran (tasks right after their own answer).
    expect(await seen).toEqual({ a: [1], b: [2] });
    expect(whileCall2).toEqual([]);
  });

  it('several calls on one connection in one turn are answered in order, all before the first task runs', async () => {
    const { env, token } = await setUp();
    const a = await connect(env.socketPath);
    const seen = probed(() => idsReadableNow(a));
    a.write(Buffer.concat([call(7, token), call(8, token), call(9, token)]));
    expect(await seen).toEqual([7, 8, 9]);
  });

  it('a peer that half-closes with its calls (FIN right after them) still gets their answers, then the close', async () => {
    const { env, token } = await setUp();
    const a = await connect(env.socketPath);
    const chunks: Buffer[] = [];
    a.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((resolve) => a.once('close', () => resolve()));
    // The FIN travels with the calls. Node ends a socket whose peer has ended (allowHalfOpen is
    // off) and refuses later writes, so the answers must leave before the FIN is handled: they
    // do, at the end of the turn that read the calls (libuv reads the FIN in a later turn).
    a.end(Buffer.concat([call(3, token), call(4, token)]));
    await closed;
    const ids: number[] = [];
    new FrameDecoder().push(Buffer.concat(chunks), (type, payload) => {
      const reply = decodeRunnerFrame(type, payload);
      ids.push(reply.type === 'reqCall' ? reply.id : -1);
    });
    expect(ids).toEqual([3, 4]);
  });
});
