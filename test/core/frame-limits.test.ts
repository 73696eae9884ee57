/**
 * The frame limits at their exact boundaries, and what the decoder keeps between chunks.
 * (Mutation testing found these untested: only limit + 1 was ever sent.)
 */
import { describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, FrameDecoder, FrameTooLargeError, MAX_PAYLOAD_BYTES, encodeFrame, messageTypeName } from '../../src/protocol/frame.js';

function decodeAll(decoder: FrameDecoder, chunks: readonly Buffer[]): Array<{ type: number; payload: Buffer }> {
  const out: Array<{ type: number; payload: Buffer }> = [];
  for (const c of chunks) decoder.push(c, (type, payload) => out.push({ type, payload: Buffer.from(payload) }));
  return out;
}

/** The decoder's retained chunks; memory retention is not visible through its API. */
function retained(decoder: FrameDecoder): Buffer[] {
  return (decoder as unknown as { pending: Buffer[] }).pending;
}

describe('encodeFrame at the limit', () => {
  it('encodes a payload of exactly 2^24 - 1 bytes, the largest the header can describe', () => {
    const payload = Buffer.alloc(MAX_PAYLOAD_BYTES, 0x5a);
    const f = encodeFrame(4, payload);
    expect([...f.subarray(0, 4)]).toEqual([4, 0xff, 0xff, 0xff]);
    expect(f.length).toBe(FRAME_HEADER_BYTES + MAX_PAYLOAD_BYTES);
    expect(f[f.length - 1]).toBe(0x5a);
    const err = (() => { try { encodeFrame(4, Buffer.alloc(MAX_PAYLOAD_BYTES + 1)); } catch (e) { return e; } return undefined; })();
    expect(err).toBeInstanceOf(FrameTooLargeError);
    expect(err).toMatchObject({ code: 'A6_ERR_FRAME_TOO_LARGE', length: MAX_PAYLOAD_BYTES + 1, limit: MAX_PAYLOAD_BYTES });
  });

  it('writes each length byte from its own bits', () => {
    expect([...encodeFrame(1, Buffer.alloc(0x00ff01)).subarray(0, 4)]).toEqual([1, 0x00, 0xff, 0x01]);
    expect([...encodeFrame(1, Buffer.alloc(0x010000)).subarray(0, 4)]).toEqual([1, 0x01, 0x00, 0x00]);
    expect([...encodeFrame(0, Buffer.alloc(0)).subarray(0, 4)]).toEqual([0, 0, 0, 0]);
  });
});

describe('FrameDecoder at its limit', () => {
  const limit = 10;

  it('accepts a payload of exactly the limit, whole or split anywhere', () => {
    const f = encodeFrame(2, Buffer.alloc(limit, 1));
    expect(decodeAll(new FrameDecoder(limit), [f])).toEqual([{ type: 2, payload: Buffer.alloc(limit, 1) }]);
    for (let cut = 1; cut < f.length; cut++) {
      const out = decodeAll(new FrameDecoder(limit), [f.subarray(0, cut), f.subarray(cut)]);
      expect(out, `cut at ${cut}`).toEqual([{ type: 2, payload: Buffer.alloc(limit, 1) }]);
    }
  });

  it('refuses limit + 1 with the announced length and the limit, whole or with the header split', () => {
    const header = Buffer.from([2, 0, 0, limit + 1]);
    expect(() => new FrameDecoder(limit).push(header, () => undefined)).toThrow(FrameTooLargeError);
    for (let cut = 1; cut < 4; cut++) {
      const d = new FrameDecoder(limit);
      d.push(header.subarray(0, cut), () => undefined);
      let err: unknown;
      try { d.push(header.subarray(cut), () => undefined); } catch (e) { err = e; }
      expect(err, `cut at ${cut}`).toMatchObject({ length: limit + 1, limit });
    }
  });

  it('reads the 3 length bytes big-endian, each at its weight', () => {
    const d = new FrameDecoder(0x020000);
    // 0x010203 bytes: every byte of the length matters.
    const payload = Buffer.alloc(0x010203, 3);
    const f = encodeFrame(1, payload);
    const out = decodeAll(d, [f.subarray(0, 2), f.subarray(2, 70_000), f.subarray(70_000)]);
    expect(out).toHaveLength(1);
    expect(out[0]!.payload.length).toBe(0x010203);
    expect(() => new FrameDecoder(0x0100ff).push(Buffer.from([1, 0x01, 0x01, 0x00]), () => undefined)).toThrow(FrameTooLargeError);
  });

  it('the default limit is the protocol maximum', () => {
    const d = new FrameDecoder();
    // A header announcing 2^24 - 1 bytes is accepted and waits for its payload.
    expect(decodeAll(d, [Buffer.from([3, 0xff, 0xff, 0xff, 1, 2])])).toEqual([]);
    expect(d.bufferedBytes).toBe(6);
  });
});

describe('FrameDecoder: what it keeps between chunks', () => {
  it('keeps only its own copy of a partial frame, never the chunk it came in (64 KiB chunk, 3 bytes kept)', () => {
    const whole = encodeFrame(2, Buffer.alloc(65_536 - 4 - 3, 9));
    const next = encodeFrame(3, Buffer.from('next'));
    const chunk = Buffer.concat([whole, next.subarray(0, 3)]);
    const d = new FrameDecoder();
    const out = decodeAll(d, [chunk]);
    expect(out).toHaveLength(1);
    expect(d.bufferedBytes).toBe(3);
    const kept = retained(d);
    expect(kept).toHaveLength(1);
    expect(kept[0]!.buffer.byteLength).toBe(3);
    // The copy is what the frame continues from: the chunk's own bytes are no longer needed.
    chunk.fill(0);
    expect(decodeAll(d, [next.subarray(3)])).toEqual([{ type: 3, payload: Buffer.from('next') }]);
    expect(d.bufferedBytes).toBe(0);
  });

  it('holds the chunks of an incomplete frame as received and joins them once, when the frame is complete', () => {
    // Joining on every chunk would copy a 16 MiB frame in 64 KiB reads about 256 times.
    const f = encodeFrame(2, Buffer.alloc(100, 7));
    const chunks = [f.subarray(0, 2), f.subarray(2, 4), f.subarray(4, 50), f.subarray(50)];
    const d = new FrameDecoder(100); // the payload is exactly at the limit
    const out: Buffer[] = [];
    const push = (c: Buffer): void => d.push(c, (_t, p) => out.push(Buffer.from(p)));
    push(chunks[0]!);
    // The first piece is a copy (2 bytes of memory, not the 104-byte frame buffer).
    expect(retained(d)[0]!.buffer.byteLength).toBe(2);
    push(chunks[1]!); // the header is now complete: 4 bytes, the payload is not
    push(chunks[2]!);
    expect(out).toEqual([]);
    expect(d.bufferedBytes).toBe(50);
    expect(retained(d)).toHaveLength(3);
    expect(retained(d)[1]).toBe(chunks[1]);
    expect(retained(d)[2]).toBe(chunks[2]);
    push(chunks[3]!);
    expect(out).toEqual([Buffer.alloc(100, 7)]);
    expect(retained(d)).toEqual([]);
  });

  it('waits for a header split across chunks before judging its length (1 MiB announced, limit just above)', () => {
    const d = new FrameDecoder(0x100005);
    // Bytes 1-2 alone would read as 0x100000; the third length byte decides.
    expect(() => d.push(Buffer.from([2, 0x10, 0x00]), () => undefined)).not.toThrow();
    expect(d.bufferedBytes).toBe(3);
    let err: unknown;
    try { d.push(Buffer.from([0x06]), () => undefined); } catch (e) { err = e; }
    expect(err).toMatchObject({ length: 0x100006, limit: 0x100005 });
    // After a whole frame in the same chunk, 3 header bytes decide nothing yet, even when
    // their first two bytes already exceed the limit: the error comes with the full length.
    const d2 = new FrameDecoder(1000);
    const out: number[] = [];
    d2.push(Buffer.concat([encodeFrame(1, Buffer.from('x')), Buffer.from([2, 0x10, 0x00])]), (t) => out.push(t));
    expect(out).toEqual([1]);
    expect(d2.bufferedBytes).toBe(3);
    let err2: unknown;
    try { d2.push(Buffer.from([0x01]), () => undefined); } catch (e) { err2 = e; }
    expect(err2).toMatchObject({ length: 0x100001, limit: 1000 });
  });

  it('keeps nothing when a chunk ends exactly on a frame boundary', () => {
    const d = new FrameDecoder();
    decodeAll(d, [Buffer.concat([encodeFrame(1, Buffer.from('a')), encodeFrame(1, Buffer.from('b'))])]);
    expect(d.bufferedBytes).toBe(0);
    expect(retained(d)).toEqual([]);
    // ...and after an assembled frame too.
    const f = encodeFrame(2, Buffer.from('assembled'));
    decodeAll(d, [f.subarray(0, 5), f.subarray(5)]);
    expect(d.bufferedBytes).toBe(0);
    expect(retained(d)).toEqual([]);
  });

  it('completes a header split over three chunks (1 + 1 + rest) before reading its length', () => {
    const f = encodeFrame(4, Buffer.from('split-header'));
    const d = new FrameDecoder();
    expect(decodeAll(d, [f.subarray(0, 1), f.subarray(1, 2)])).toEqual([]);
    expect(d.bufferedBytes).toBe(2);
    expect(decodeAll(d, [f.subarray(2, 3), f.subarray(3)])).toEqual([{ type: 4, payload: Buffer.from('split-header') }]);
  });

  it('hands out the frames that follow an assembled one in the same chunk', () => {
    const a = encodeFrame(1, Buffer.from('first'));
    const b = encodeFrame(2, Buffer.from('second'));
    const d = new FrameDecoder();
    const out = decodeAll(d, [a.subarray(0, 6), Buffer.concat([a.subarray(6), b, b.subarray(0, 2)]), b.subarray(2)]);
    expect(out.map((f) => [f.type, f.payload.toString()])).toEqual([[1, 'first'], [2, 'second'], [2, 'second']]);
  });
});

describe('message type names', () => {
  it('names the five types and marks others unknown', () => {
    expect([0, 1, 2, 3, 4].map(messageTypeName)).toEqual(['RPC_ERROR', 'RPC_PREPARE_CONF', 'RPC_HTTP_REQ_CALL', 'RPC_EXTRA_INFO', 'RPC_HTTP_RESP_CALL']);
    expect(messageTypeName(5)).toBe('unknown(5)');
    expect(new FrameTooLargeError(20, 10).message).toBe('frame payload of 20 bytes exceeds the limit of 10 bytes');
  });
});
