/**
 * Framing under hostile conditions. In process: any split or coalescing of a valid frame
 * stream decodes to the same frames (FrameDecoder). Over a real runner's socket: random
 * bytes, random frames, truncated and oversized frames, in random chunks, never crash or
 * hang the runner, each complete frame gets exactly the defined answer, and the runner still
 * serves a good request afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import pino from 'pino';
import { FrameDecoder, FrameTooLargeError, encodeFrame } from '../../src/protocol/frame.js';
import { startRunner, type Runner } from '../../src/runner.js';
import { createSayPlugin } from '../../src/plugins/say/index.js';
import type { Plugin } from '../../src/plugin-api/index.js';
import { ApisixClient } from '../harness/apisix-client.js';
import { ConnectionClosedError, RawConnection } from '../harness/raw-connection.js';
import { RPC, encodeHttpReqCallReq, type RunnerReply } from '../harness/apisix-codec.js';
import { readReply as readFrameReply } from '../harness/frames.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { mutatedPayloadArb, validPayloadArb } from './arbitraries.js';
import { FC_RUNS, FC_SOCKET_RUNS, fcParams, timeoutFor } from './fc-config.js';
import { waitUntil } from '../harness/wait.js';

interface TestFrame {
  readonly type: number;
  readonly payload: Uint8Array;
}

/**
 * Cuts `stream` into chunks of the given sizes, cycling through them (sizes >= 1). At most
 * ~2,000 chunks per stream keeps a large frame cut into 1-byte chunks from taking seconds.
 */
function split(stream: Uint8Array, sizes: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  const floor = Math.ceil(stream.length / 2000);
  let at = 0;
  for (let i = 0; at < stream.length; i++) {
    const n = Math.max(floor, sizes.length ? sizes[i % sizes.length]! : stream.length);
    chunks.push(Buffer.from(stream.subarray(at, at + n)));
    at += n;
  }
  return chunks;
}

const concat = (frames: readonly TestFrame[]): Buffer => Buffer.concat(frames.map((f) => encodeFrame(f.type, f.payload)));

const frameArb: fc.Arbitrary<TestFrame> = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  payload: fc.oneof(
    { weight: 10, arbitrary: fc.uint8Array({ maxLength: 300 }) },
    // Now and then a frame much larger than a socket chunk (the multi-chunk path).
    { weight: 1, arbitrary: fc.integer({ min: 20_000, max: 140_000 }).map((n) => new Uint8Array(n).map((_, i) => (i * 31) & 0xff)) },
  ),
});

const chunkSizesArb = fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 70_000 })), { minLength: 1, maxLength: 20 });

function decodeAll(chunks: readonly Buffer[], decoder = new FrameDecoder()): TestFrame[] {
  const out: TestFrame[] = [];
  // The payload may be a view into the chunk: copy it, as a consumer keeping it must.
  for (const c of chunks) decoder.push(c, (type, payload) => out.push({ type, payload: Uint8Array.from(payload) }));
  return out;
}

describe('FrameDecoder properties', () => {
  it('any split and coalescing of a valid stream yields the same frames, in order', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), chunkSizesArb, (frames, sizes) => {
        const decoder = new FrameDecoder();
        const got = decodeAll(split(concat(frames), sizes), decoder);
        expect(got.length).toBe(frames.length);
        got.forEach((f, i) => {
          expect(f.type).toBe(frames[i]!.type);
          expect(Buffer.compare(Buffer.from(f.payload), Buffer.from(frames[i]!.payload))).toBe(0);
        });
        expect(decoder.bufferedBytes).toBe(0);
      }),
      fcParams(FC_RUNS),
    );
  }, timeoutFor(FC_RUNS, 2));

  it('a stream cut short keeps exactly the unfinished bytes buffered and delivers the complete frames', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), chunkSizesArb, fc.nat(), (frames, sizes, cut) => {
        const stream = concat(frames);
        const keep = cut % stream.length;
        const decoder = new FrameDecoder();
        const got = decodeAll(split(stream.subarray(0, keep), sizes), decoder);
        // Which frames are complete within the first `keep` bytes?
        let end = 0;
        let complete = 0;
        for (const f of frames) {
          if (end + 4 + f.payload.length > keep) break;
          end += 4 + f.payload.length;
          complete++;
        }
        expect(got.length).toBe(complete);
        expect(decoder.bufferedBytes).toBe(keep - end);
      }),
      fcParams(FC_RUNS),
    );
  }, timeoutFor(FC_RUNS, 2));

  it('an oversized announcement at any split point: the frames before it are delivered, then FrameTooLargeError', () => {
    const limit = 1000;
    const small = fc.record({ type: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: limit }) });
    fc.assert(
      fc.property(fc.array(small, { maxLength: 6 }), fc.integer({ min: limit + 1, max: 0xffffff }), chunkSizesArb, (frames, announced, sizes) => {
        const header = Buffer.from([2, (announced >>> 16) & 0xff, (announced >>> 8) & 0xff, announced & 0xff]);
        const stream = Buffer.concat([concat(frames), header, Buffer.alloc(16, 0xab)]);
        const decoder = new FrameDecoder(limit);
        const got: number[] = [];
        let thrown: unknown;
        try {
          for (const c of split(stream, sizes)) decoder.push(c, (type) => got.push(type));
        } catch (err) {
          thrown = err;
        }
        expect(thrown).toBeInstanceOf(FrameTooLargeError);
        expect((thrown as FrameTooLargeError).length).toBe(announced);
        expect(got).toEqual(frames.map((f) => f.type));
      }),
      fcParams(FC_RUNS),
    );
  }, timeoutFor(FC_RUNS, 2));
});

// ---- over a real runner --------------------------------------------------------------------

const MAX_PAYLOAD = 4096;

/** What the runner must see in a byte stream: the complete frames, then how the stream ends. */
interface StreamModel {
  readonly frames: TestFrame[];
  readonly end: 'clean' | 'partial' | 'oversize';
}

/** The framing model: APISIX's header rule and the runner's limit, written independently of FrameDecoder. */
function model(stream: Uint8Array): StreamModel {
  const frames: TestFrame[] = [];
  let at = 0;
  while (stream.length - at >= 4) {
    const len = (stream[at + 1]! << 16) | (stream[at + 2]! << 8) | stream[at + 3]!;
    if (len > MAX_PAYLOAD) return { frames, end: 'oversize' };
    if (stream.length - at - 4 < len) return { frames, end: 'partial' };
    frames.push({ type: stream[at]!, payload: stream.subarray(at + 4, at + 4 + len) });
    at += 4 + len;
  }
  return { frames, end: at === stream.length ? 'clean' : 'partial' };
}

let runner: Runner;
let dir: TempDir;
let socketPath: string;
let token: number;
const SAY = [{ name: 'say', value: '{"body":"still here"}' }];

beforeAll(async () => {
  dir = createTempDir('a6fp-');
  socketPath = dir.file('r.sock');
  runner = await startRunner({
    socketPath,
    logger: pino({ level: 'silent' }),
    plugins: () => [createSayPlugin()] as Plugin<unknown>[],
    maxPayloadBytes: MAX_PAYLOAD,
  });
  const client = new ApisixClient({ socketPath, readTimeoutMs: 3000 });
  token = await client.prepareConf('route#good#ext-plugin-pre-req#1', SAY);
  await client.close();
});

afterAll(async () => {
  await runner.close();
  dir.remove();
});

const goodCall = (id: number) => encodeHttpReqCallReq({ id, confToken: token, srcIp: new Uint8Array([10, 0, 0, 1]), method: 'GET', path: '/ok', args: [], headers: [] });

/** The one answer the runner may give to a complete frame of `type`. */
function expectDefinedAnswer(sent: TestFrame, reply: RunnerReply): void {
  // Never an ExtraInfo question: the only plugin (say) asks none.
  if (sent.type === RPC.PREPARE_CONF) {
    expect(['error', 'prepareConf']).toContain(reply.type);
    if (reply.type === 'error') expect(reply.code).toBe(0);
  } else if (sent.type === RPC.HTTP_REQ_CALL) {
    expect(['error', 'reqCall']).toContain(reply.type);
    if (reply.type === 'error') expect([0, 2]).toContain(reply.code);
  } else if (sent.type === RPC.HTTP_RESP_CALL) {
    expect(['error', 'respCall']).toContain(reply.type);
    if (reply.type === 'error') expect([0, 2]).toContain(reply.code);
  } else {
    // Err, a stray ExtraInfo answer, or an unknown type.
    expect(reply).toEqual({ type: 'error', code: 0 });
  }
}

/** decodeRunnerFrame verifies the reply: a corrupt frame would throw here. */
const readReply = (conn: RawConnection): Promise<RunnerReply> => readFrameReply(conn, 3000);

/** Sends `stream` in chunks, checks every answer against the model, then proves the runner still serves. */
async function checkStream(stream: Uint8Array, sizes: readonly number[]): Promise<void> {
  const m = model(stream);
  const conn = await RawConnection.connect(socketPath);
  try {
    for (const chunk of split(stream, sizes)) {
      // After an oversize header the runner has closed: later writes may fail, which is fine.
      await conn.sendRaw(chunk).catch((err: unknown) => {
        if (m.end !== 'oversize' || !(err instanceof ConnectionClosedError)) throw err;
      });
    }
    for (const sent of m.frames) expectDefinedAnswer(sent, await readReply(conn));
    if (m.end === 'oversize') {
      expect(await readReply(conn)).toEqual({ type: 'error', code: 0 });
      await expect(conn.readFrame(3000)).rejects.toBeInstanceOf(ConnectionClosedError);
    } else if (m.end === 'clean') {
      // A clean stream leaves the connection usable: a good call on it is served.
      await conn.send(RPC.HTTP_REQ_CALL, goodCall(4242));
      expect(await readReply(conn)).toMatchObject({ type: 'reqCall', id: 4242, action: { kind: 'stop' } });
    }
  } finally {
    conn.close();
    await conn.closed;
  }
  // And a fresh connection is served whatever happened on the hostile one.
  const fresh = await RawConnection.connect(socketPath);
  await fresh.send(RPC.HTTP_REQ_CALL, goodCall(7));
  expect(await readReply(fresh)).toMatchObject({ type: 'reqCall', id: 7, action: { kind: 'stop', stop: { body: Buffer.from('still here') } } });
  fresh.close();
  await fresh.closed;
}

const socketChunksArb = fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 });

/** A frame APISIX could plausibly send, a damaged one, or noise; payloads under the runner's limit. */
const wireFrameArb: fc.Arbitrary<TestFrame> = fc.oneof(
  validPayloadArb(undefined),
  mutatedPayloadArb(undefined),
  // Valid calls on the known token reach the plugin chain.
  validPayloadArb(1),
  mutatedPayloadArb(1),
  fc.record({ type: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: 64 }) }),
).filter((f) => f.payload.length <= MAX_PAYLOAD);

const tailArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constant(new Uint8Array(0)),
  // A partial header, or a header whose payload never fully arrives.
  fc.uint8Array({ minLength: 1, maxLength: 3 }),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 8, max: MAX_PAYLOAD }), fc.nat()).map(([t, len, have]) => {
    const b = new Uint8Array(4 + (have % len));
    b.set([t, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff]);
    return b;
  }),
  // An oversized announcement, maybe followed by bytes the runner must ignore.
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: MAX_PAYLOAD + 1, max: 0xffffff }), fc.uint8Array({ maxLength: 32 })).map(([t, len, rest]) =>
    Uint8Array.from([t, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff, ...rest]),
  ),
);

describe('a real runner fed hostile streams over its socket', () => {
  it('random frames (valid, mutated, noise) plus a random ending, in random chunks, get the defined answers', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(wireFrameArb, { maxLength: 6 }), tailArb, socketChunksArb, async (frames, tail, sizes) => {
        const stream = Buffer.concat([concat(frames), Buffer.from(tail)]);
        await checkStream(stream, sizes);
      }),
      fcParams(FC_SOCKET_RUNS),
    );
    expect(runner.connectionCount()).toBeLessThanOrEqual(1);
  }, timeoutFor(FC_SOCKET_RUNS, 5));

  it('pure random bytes never crash or hang it', async () => {
    // Small lengths in the header bytes make complete frames likely, large ones oversize.
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 })), { maxLength: 6 }).map((parts) =>
        Buffer.concat(parts.map(([t, p]) => Buffer.concat([Buffer.from([t, 0, 0, p.length]), Buffer.from(p)]))),
      ),
    );
    await fc.assert(
      fc.asyncProperty(bytesArb, socketChunksArb, async (bytes, sizes) => {
        await checkStream(bytes, sizes);
      }),
      fcParams(FC_SOCKET_RUNS),
    );
  }, timeoutFor(FC_SOCKET_RUNS, 5));

  it('the connections of all those cases are gone', async () => {
    await waitUntil(() => runner.connectionCount() === 0, 'every property case closed its connection');
    expect(runner.connectionCount()).toBe(0);
  });
});
