import { describe, it, expect } from 'vitest';
import * as flatbuffers from 'flatbuffers';
import * as a6 from '../../src/protocol/generated/a6.js';
import { FrameDecoder } from '../../src/protocol/frame.js';
import {
  decodeExtraInfoResp,
  decodeHttpReqCall,
  decodeHttpRespCall,
  decodePrepareConfReq,
  encodeExtraInfoReq,
  encodeHttpReqCallResp,
  encodePrepareConfResp,
} from '../../src/protocol/messages.js';
import { createBenchFrames, FRAME_TYPE, GET_HEADERS } from '../../bench/frames.mjs';

const frames = createBenchFrames(a6, flatbuffers);

/** Splits a buffer holding exactly one frame with the runner's own decoder. */
function only(frame: Buffer): { type: number; payload: Buffer } {
  const got: { type: number; payload: Buffer }[] = [];
  new FrameDecoder().push(frame, (type, payload) => got.push({ type, payload: Buffer.from(payload) }));
  expect(got).toHaveLength(1);
  return got[0]!;
}

describe('bench load generator frames', () => {
  it('PrepareConf decodes to the conf entries and key it was given', () => {
    const conf = [{ name: 'say', value: '{"body":"hello"}' }, { name: 'rewrite', value: '' }];
    const { type, payload } = only(frames.prepareConf(conf, 'route#1#ext-plugin-pre-req#1'));
    expect(type).toBe(FRAME_TYPE.prepareConf);
    const req = decodePrepareConfReq(payload);
    expect(req.key).toBe('route#1#ext-plugin-pre-req#1');
    expect(req.conf).toEqual([
      { name: 'say', value: '{"body":"hello"}' },
      { name: 'rewrite', value: '' },
    ]);
  });

  it('HTTPReqCall is GET /get?x=1 with 12 headers, ~918 bytes, and its id can be patched in place', () => {
    const { frame, idOffset } = frames.httpReqCall(7);
    expect(frame.length).toBeGreaterThan(900);
    expect(frame.length).toBeLessThan(940);
    frame.writeUInt32LE(0x00400005, idOffset);
    const { type, payload } = only(frame);
    expect(type).toBe(FRAME_TYPE.httpReqCall);
    const msg = decodeHttpReqCall(payload);
    expect(msg.id).toBe(0x00400005);
    expect(msg.confToken).toBe(7);
    expect(msg.method).toBe('GET');
    expect(msg.path).toBe('/get');
    expect(msg.srcIp).toBe('192.0.2.10');
    expect(msg.args).toEqual([{ name: 'x', value: '1' }]);
    expect(msg.headers).toHaveLength(12);
    expect(msg.headers.map((h) => [h.name, h.value])).toEqual(GET_HEADERS.map(([n, v]) => [n, v]));
  });

  it('the body variant is a POST declaring the body length, still 12 headers', () => {
    const msg = decodeHttpReqCall(only(frames.httpReqCall(1, { bodySize: 1024 }).frame).payload);
    expect(msg.method).toBe('POST');
    expect(msg.headers).toHaveLength(12);
    expect(msg.headers.find((h) => h.name === 'content-length')?.value).toBe('1024');
  });

  it('HTTPRespCall (the post-resp call of the compare cells) decodes to its token, status and headers, and its id can be patched', () => {
    const { frame, idOffset } = frames.httpRespCall(9, { status: 201, headers: [['content-type', 'text/plain'], ['content-length', '3']] });
    frame.writeUInt32LE(0x00400007, idOffset);
    const { type, payload } = only(frame);
    expect(type).toBe(FRAME_TYPE.httpRespCall);
    const msg = decodeHttpRespCall(payload);
    expect(msg.id).toBe(0x00400007);
    expect(msg.confToken).toBe(9);
    expect(msg.status).toBe(201);
    expect(msg.headers).toEqual([{ name: 'content-type', value: 'text/plain' }, { name: 'content-length', value: '3' }]);
  });

  it('ExtraInfo answers decode to the bytes given, or to no value', () => {
    const body = Buffer.from('{"data":"x"}');
    expect(decodeExtraInfoResp(only(frames.extraInfoAnswer(body)).payload)).toEqual(body);
    expect(decodeExtraInfoResp(only(frames.extraInfoAnswer(undefined)).payload)).toBeUndefined();
  });

  it('reads the runner-side frames it has to understand', () => {
    expect(frames.readConfToken(only(encodePrepareConfResp(42)).payload)).toBe(42);
    expect(frames.readReplyAction(only(encodeHttpReqCallResp(1, { type: 'none' })).payload)).toBe('none');
    expect(frames.readExtraInfoQuestion(only(encodeExtraInfoReq({ kind: 'var', name: 'args' })).payload)).toEqual({ kind: 'var', name: 'args' });
    expect(frames.readExtraInfoQuestion(only(frames.reqBodyQuestion()).payload)).toEqual({ kind: 'reqBody' });
  });
});
