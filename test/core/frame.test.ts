import { describe, expect, it } from 'vitest';
import { FrameDecoder, FrameTooLargeError, MAX_PAYLOAD_BYTES, encodeFrame } from '../../src/protocol/frame.js';

function collect(decoder: FrameDecoder, chunks: Buffer[]): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (const c of chunks) decoder.push(c, (type, payload) => out.push([type, payload.toString('hex')]));
  return out;
}

describe('frame encoding', () => {
  it('writes type and a 3-byte big-endian length', () => {
    const f = encodeFrame(2, Buffer.alloc(0x010203, 7));
    expect([...f.subarray(0, 4)]).toEqual([2, 0x01, 0x02, 0x03]);
    expect(f.length).toBe(4 + 0x010203);
  });

  it('refuses a payload the header cannot describe', () => {
    expect(() => encodeFrame(1, Buffer.alloc(MAX_PAYLOAD_BYTES + 1))).toThrow(FrameTooLargeError);
  });
});

describe('FrameDecoder', () => {
  const frames = [encodeFrame(1, Buffer.from('abc')), encodeFrame(2, Buffer.alloc(0)), encodeFrame(3, Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8]))];
  const stream = Buffer.concat(frames);
  const expected: Array<[number, string]> = [
    [1, '616263'],
    [2, ''],
    [3, '000102030405060708'],
  ];

  it('decodes coalesced frames in one chunk', () => {
    expect(collect(new FrameDecoder(), [stream])).toEqual(expected);
  });

  it('decodes the same frames split at every possible byte boundary', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      expect(collect(new FrameDecoder(), [stream.subarray(0, cut), stream.subarray(cut)])).toEqual(expected);
    }
  });

  it('decodes a stream fed one byte at a time, and keeps nothing buffered afterwards', () => {
    const d = new FrameDecoder();
    const bytes = [...stream].map((b) => Buffer.from([b]));
    expect(collect(d, bytes)).toEqual(expected);
    expect(d.bufferedBytes).toBe(0);
  });

  it('assembles a large frame from many chunks', () => {
    const payload = Buffer.alloc(1 << 20);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const f = encodeFrame(3, payload);
    const chunks: Buffer[] = [];
    for (let i = 0; i < f.length; i += 65536) chunks.push(f.subarray(i, i + 65536));
    const out: Buffer[] = [];
    const d = new FrameDecoder();
    for (const c of chunks) d.push(c, (_t, p) => out.push(Buffer.from(p)));
    expect(out).toHaveLength(1);
    expect(out[0]!.equals(payload)).toBe(true);
  });

  it('reports an announced length over its limit as soon as the header is complete', () => {
    const d = new FrameDecoder(100);
    const header = Buffer.from([2, 0, 0, 101]);
    expect(() => d.push(header.subarray(0, 2), () => undefined)).not.toThrow();
    expect(() => d.push(header.subarray(2), () => undefined)).toThrow(FrameTooLargeError);
  });
});
