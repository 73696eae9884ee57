/**
 * Conformance against bytes recorded from APISIX's own Lua encoder
 * (test/fixtures/conformance/). Two directions:
 * - APISIX -> runner: the runner's decoders must read every field of APISIX's bytes, and our
 *   APISIX-side codec must produce messages the runner reads the same way (same fields stored).
 * - runner -> APISIX: the runner's encoders must build answers that the APISIX-side decoder
 *   reads as the recorded answers, and the recorded bytes themselves must decode as documented.
 */
import { describe, it, expect } from 'vitest';
import { FrameDecoder } from '../src/protocol/frame.js';
import {
  decodePrepareConfReq,
  decodeHttpReqCall,
  decodeExtraInfoResp,
  decodeHttpRespCall,
  encodeError,
  encodePrepareConfResp,
  encodeHttpReqCallResp,
  encodeExtraInfoReq,
  encodeHttpRespCallResp,
  METHOD_NAMES,
  type ReqCallAction,
  type ExtraInfoQuestion,
} from '../src/protocol/messages.js';
import type { TextPair } from '../src/plugin-api/request.js';
import {
  decodeRunnerFrame,
  encodePrepareConfReq,
  encodeHttpReqCallReq,
  encodeExtraInfoResp,
  encodeHttpRespCallReq,
  ipToBytes,
  storedFields,
  nestedTableAt,
  type Entry,
} from './harness/apisix-codec.js';
import { readRunnerAnswer, readRunnerFrameBytes } from './harness/independent-reader.js';
import { loadVectors, jsonBytes, jsonEntries, type Vector, type JsonEntry } from './harness/conformance-vectors.js';

const vectors = loadVectors();
const toRunner = vectors.filter((v) => v.json.direction === 'apisix_to_runner');
const fromRunner = vectors.filter((v) => v.json.direction === 'runner_to_apisix');

const FIELDS: Record<string, readonly string[]> = {
  'A6.PrepareConf.Req': ['conf', 'key'],
  'A6.PrepareConf.Resp': ['conf_token'],
  'A6.HTTPReqCall.Req': ['id', 'src_ip', 'method', 'path', 'args', 'headers', 'conf_token'],
  'A6.HTTPReqCall.Resp': ['id', 'action_type', 'action'],
  'A6.ExtraInfo.Resp': ['result'],
  'A6.ExtraInfo.Req': ['info_type', 'info'],
  'A6.HTTPRespCall.Req': ['id', 'status', 'headers', 'conf_token'],
  'A6.HTTPRespCall.Resp': ['id', 'status', 'headers', 'body'],
  'A6.Err.Resp': ['code'],
};

/** The runner's view of an entry list: value undefined when the entry has none. */
function asPairs(entries: readonly JsonEntry[] | undefined): TextPair[] {
  return (entries ?? []).map((e) => ({ name: e.name, value: e.value }));
}

/** Strict comparison helper: TextPair lists must match name, value and absent-vs-empty. */
function expectPairs(actual: readonly TextPair[], expected: readonly JsonEntry[] | undefined): void {
  const want = asPairs(expected);
  expect(actual.length).toBe(want.length);
  actual.forEach((e, i) => {
    expect(e.name).toBe(want[i]!.name);
    expect(e.value).toBe(want[i]!.value);
    expect('value' in want[i]! && want[i]!.value !== undefined).toBe(e.value !== undefined);
  });
}

function hex(bytes: Uint8Array | null | undefined): string | undefined {
  return bytes ? Buffer.from(bytes).toString('hex') : undefined;
}

/** Decodes the frame through the runner's streaming decoder, fed whole and byte by byte. */
function decodeFrames(frame: Buffer): { type: number; payload: Buffer }[] {
  const whole: { type: number; payload: Buffer }[] = [];
  new FrameDecoder().push(frame, (type, payload) => whole.push({ type, payload: Buffer.from(payload) }));
  const split: { type: number; payload: Buffer }[] = [];
  const dec = new FrameDecoder();
  // Byte-by-byte for small frames; 997-byte chunks for the 100 KB one (same code path, faster).
  const step = frame.length > 4096 ? 997 : 1;
  for (let i = 0; i < frame.length; i += step) dec.push(frame.subarray(i, i + step), (type, payload) => split.push({ type, payload: Buffer.from(payload) }));
  expect(split).toEqual(whole);
  return whole;
}

function checkHeader(v: Vector): void {
  const { json, frame, payload } = v;
  expect(frame.length).toBe(json.frame_length);
  expect(payload.length).toBe(json.payload_length);
  expect(frame.subarray(0, 4).toString('hex')).toBe(json.frame_header_hex);
  expect(frame[0]).toBe(json.frame_type);
  expect((frame[1]! << 16) | (frame[2]! << 8) | frame[3]!).toBe(json.payload_length);
  expect(frame.subarray(4).equals(payload)).toBe(true);
}

// ---- runner-side reading of APISIX messages ---------------------------------------------

/** Checks the runner's decoding of an APISIX payload against the sidecar content. */
function checkRunnerReads(message: string, payload: Uint8Array, c: Record<string, unknown>): void {
  switch (message) {
    case 'A6.PrepareConf.Req': {
      const m = decodePrepareConfReq(payload);
      expect(m.key).toBe(c.key);
      expectPairs(m.conf, jsonEntries(c.conf));
      break;
    }
    case 'A6.HTTPReqCall.Req': {
      const m = decodeHttpReqCall(payload);
      expect(m.id).toBe(c.id);
      expect(m.confToken).toBe(c.conf_token);
      expect(m.methodCode).toBe(c.method);
      expect(m.method).toBe(c.method_name);
      expect(m.path).toBe(c.path);
      expect(hex(m.srcIpBytes)).toBe((c.src_ip as { hex: string }).hex);
      expectPairs(m.args, jsonEntries(c.args));
      expectPairs(m.headers, jsonEntries(c.headers));
      break;
    }
    case 'A6.ExtraInfo.Resp': {
      const result = decodeExtraInfoResp(payload);
      expect(hex(result)).toBe(jsonBytes(c.result)?.toString('hex'));
      break;
    }
    case 'A6.HTTPRespCall.Req': {
      const m = decodeHttpRespCall(payload);
      expect(m.id).toBe(c.id);
      expect(m.status).toBe(c.status);
      expect(m.confToken).toBe(c.conf_token);
      expectPairs(m.headers, jsonEntries(c.headers));
      break;
    }
    default:
      throw new Error(`no runner decoder for ${message}`);
  }
}

/** Encodes the sidecar content with the APISIX-side codec. */
function encodeAsApisix(message: string, c: Record<string, unknown>): Uint8Array {
  const entries = (v: unknown): Entry[] => (jsonEntries(v) ?? []).map((e) => ({ name: e.name, value: e.value }));
  switch (message) {
    case 'A6.PrepareConf.Req':
      return encodePrepareConfReq({ key: c.key as string, conf: c.conf === undefined ? undefined : entries(c.conf) });
    case 'A6.HTTPReqCall.Req':
      return encodeHttpReqCallReq({
        id: c.id as number,
        confToken: c.conf_token as number,
        srcIp: jsonBytes(c.src_ip)!,
        method: c.method as number,
        path: c.path as string,
        args: entries(c.args),
        headers: entries(c.headers),
      });
    case 'A6.ExtraInfo.Resp':
      return encodeExtraInfoResp(jsonBytes(c.result));
    case 'A6.HTTPRespCall.Req':
      return encodeHttpRespCallReq({ id: c.id as number, status: c.status as number, headers: entries(c.headers), confToken: c.conf_token as number });
    default:
      throw new Error(`no APISIX encoder for ${message}`);
  }
}

describe('conformance vectors: inventory', () => {
  it('has all 57 vectors, 41 from APISIX and 16 from a runner', () => {
    expect(vectors.length).toBe(57);
    expect(toRunner.length).toBe(41);
    expect(fromRunner.length).toBe(16);
  });

  it('covers every A6.Method value', () => {
    const methods = toRunner.filter((v) => v.json.name.startsWith('http_req_call_method_')).map((v) => v.json.content.method_name);
    expect(methods).toEqual(METHOD_NAMES);
  });
});

describe.each(toRunner.map((v) => [v.json.name, v] as const))('APISIX -> runner: %s', (_name, v) => {
  const { json } = v;
  const c = json.content;

  it('has a consistent frame header', () => {
    checkHeader(v);
  });

  it('is read field by field by the runner (FrameDecoder + messages.ts)', () => {
    const frames = decodeFrames(v.frame);
    expect(frames.length).toBe(1);
    expect(frames[0]!.type).toBe(json.frame_type);
    expect(frames[0]!.payload.equals(v.payload)).toBe(true);
    checkRunnerReads(json.message, frames[0]!.payload, c);
  });

  it('stores the fields the sidecar lists', () => {
    expect(storedFields(v.payload, FIELDS[json.message]!)).toEqual(json.root_table.fields_present);
  });

  it('is re-encoded by the APISIX-side codec into the same logical message with the same fields stored', () => {
    const mine = encodeAsApisix(json.message, c);
    checkRunnerReads(json.message, mine, c);
    expect(storedFields(mine, FIELDS[json.message]!)).toEqual(json.root_table.fields_present);
  });

  if (json.reused_builder) {
    const reused = Buffer.from(json.reused_builder.reused_builder_payload_hex, 'hex');
    it('reads the reused-builder payload (empty strings without NUL) the same way', () => {
      expect(reused.length).toBe(v.payload.length);
      for (const off of json.reused_builder!.differing_payload_offsets) expect(reused[off]).not.toBe(v.payload[off]);
      checkRunnerReads(json.message, reused, c);
    });
  }

  if (json.message === 'A6.HTTPReqCall.Req') {
    it('src_ip bytes are nginx $binary_remote_addr of the context remote_addr', () => {
      const ngxVar = (json.context as { ngx_var: { remote_addr: string } }).ngx_var;
      expect(hex(ipToBytes(ngxVar.remote_addr))).toBe((c.src_ip as { hex: string }).hex);
    });
  }
});

// ---- runner answers ---------------------------------------------------------------------

type Plain = string | number | boolean | null | Plain[] | { [k: string]: Plain };

/** Buffers become hex strings and undefined keys vanish, so decoded objects compare strictly. */
function normalize(value: unknown): Plain {
  if (value instanceof Uint8Array) return { hex: Buffer.from(value).toString('hex') };
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === 'object') {
    const out: Record<string, Plain> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = normalize(v);
    return out;
  }
  return value as Plain;
}

const bytesOf = (v: unknown): Plain | undefined => (v === undefined ? undefined : { hex: (v as { hex: string }).hex });

/** The sidecar content in the shape decodeRunnerFrame returns (normalized). */
function expectedReply(message: string, c: Record<string, unknown>): Plain {
  switch (message) {
    case 'A6.Err.Resp':
      return normalize({ type: 'error', code: c.code });
    case 'A6.PrepareConf.Resp':
      return normalize({ type: 'prepareConf', confToken: c.conf_token });
    case 'A6.HTTPReqCall.Resp': {
      let action: unknown = { kind: 'none' };
      if (c.stop) {
        const s = c.stop as Record<string, unknown>;
        action = { kind: 'stop', stop: { status: s.status, headers: s.headers, body: bytesOf(s.body) } };
      } else if (c.rewrite) {
        const r = c.rewrite as Record<string, unknown>;
        action = { kind: 'rewrite', rewrite: { path: r.path, headers: r.headers, args: r.args, respHeaders: r.resp_headers, body: bytesOf(r.body) } };
      }
      return normalize({ type: 'reqCall', id: c.id, actionType: c.action_type, action });
    }
    case 'A6.ExtraInfo.Req': {
      const question = c.var ? { kind: 'var', name: (c.var as { name: string }).name } : c.req_body ? { kind: 'reqBody' } : { kind: 'respBody' };
      return normalize({ type: 'extraInfo', infoType: c.info_type, question });
    }
    case 'A6.HTTPRespCall.Resp':
      return normalize({ type: 'respCall', id: c.id, status: c.status, headers: c.headers, body: bytesOf(c.body) });
    default:
      throw new Error(`unknown runner message ${message}`);
  }
}

const pairs = (v: unknown): TextPair[] => asPairs(jsonEntries(v));

/** Builds the sidecar's answer with the runner's own encoders (whole frame). */
function buildWithRunner(message: string, c: Record<string, unknown>): Buffer {
  switch (message) {
    case 'A6.Err.Resp':
      return encodeError(c.code as number);
    case 'A6.PrepareConf.Resp':
      return encodePrepareConfResp(c.conf_token as number);
    case 'A6.HTTPReqCall.Resp': {
      let action: ReqCallAction = { type: 'none' };
      if (c.stop) {
        const s = c.stop as Record<string, unknown>;
        action = { type: 'stop', stop: { status: s.status as number, headers: pairs(s.headers), body: jsonBytes(s.body) } };
      } else if (c.rewrite) {
        const r = c.rewrite as Record<string, unknown>;
        action = {
          type: 'rewrite',
          rewrite: { path: r.path as string | undefined, headers: pairs(r.headers), args: pairs(r.args), respHeaders: pairs(r.resp_headers), body: jsonBytes(r.body) },
        };
      }
      return encodeHttpReqCallResp(c.id as number, action);
    }
    case 'A6.ExtraInfo.Req': {
      const q: ExtraInfoQuestion = c.var ? { kind: 'var', name: (c.var as { name: string }).name } : c.req_body ? { kind: 'reqBody' } : { kind: 'respBody' };
      return encodeExtraInfoReq(q);
    }
    case 'A6.HTTPRespCall.Resp':
      return encodeHttpRespCallResp(c.id as number, { status: c.status as number, headers: pairs(c.headers), body: jsonBytes(c.body) });
    default:
      throw new Error(`unknown runner message ${message}`);
  }
}

describe.each(fromRunner.map((v) => [v.json.name, v] as const))('runner -> APISIX: %s', (_name, v) => {
  const { json } = v;
  const c = json.content;

  it('has a consistent frame header', () => {
    checkHeader(v);
  });

  it('the recorded bytes decode (APISIX-side codec) to the sidecar content', () => {
    const frames = decodeFrames(v.frame);
    expect(frames.length).toBe(1);
    expect(normalize(decodeRunnerFrame(frames[0]!.type, frames[0]!.payload))).toStrictEqual(expectedReply(json.message, c));
    expect(storedFields(v.payload, FIELDS[json.message]!)).toEqual(json.root_table.fields_present);
  });

  it('the recorded bytes read the same with the independent reader (generated accessors only, no runner code)', () => {
    expect(normalize(readRunnerFrameBytes(v.frame))).toStrictEqual(expectedReply(json.message, c));
  });

  it("the runner's encoders build an answer APISIX reads the same way", () => {
    const built = buildWithRunner(json.message, c);
    expect(built[0]).toBe(json.frame_type);
    expect((built[1]! << 16) | (built[2]! << 8) | built[3]!).toBe(built.length - 4);
    // A zero-length payload breaks APISIX's reader: every answer must be a real table.
    expect(built.length - 4).toBeGreaterThanOrEqual(8);
    const frames = decodeFrames(built);
    expect(frames.length).toBe(1);
    expect(normalize(decodeRunnerFrame(frames[0]!.type, frames[0]!.payload))).toStrictEqual(expectedReply(json.message, c));
    // A mistake shared by the runner's encoder and its verifier/SHAPES would pass the line
    // above; the independent reader shares neither.
    expect(normalize(readRunnerFrameBytes(built))).toStrictEqual(expectedReply(json.message, c));
  });

  if (json.action_table) {
    it('the runner stores the same action-table fields', () => {
      const [member, table] = Object.entries(json.action_table!)[0]!;
      const names = member === 'stop' ? ['status', 'headers', 'body'] : ['path', 'headers', 'args', 'resp_headers', 'body'];
      const built = buildWithRunner(json.message, c).subarray(4);
      const recordedAt = nestedTableAt(v.payload, 2)!;
      const builtAt = nestedTableAt(built, 2)!;
      expect(storedFields(v.payload, names, recordedAt)).toEqual(table.fields_present);
      expect(storedFields(built, names, builtAt)).toEqual(table.fields_present);
    });
  }

  if (json.reused_builder) {
    it('the reused-builder bytes decode the same', () => {
      const reused = Buffer.from(json.reused_builder!.reused_builder_payload_hex, 'hex');
      expect(normalize(decodeRunnerFrame(json.frame_type, reused))).toStrictEqual(expectedReply(json.message, c));
      expect(normalize(readRunnerAnswer(json.frame_type, reused))).toStrictEqual(expectedReply(json.message, c));
    });
  }
});

describe('the checks catch misreads', () => {
  it('a one-byte change in a string is seen', () => {
    const v = toRunner.find((x) => x.json.name === 'http_req_call_01_get_args_headers')!;
    const bad = Buffer.from(v.payload);
    const at = bad.indexOf(Buffer.from('/hello'));
    bad[at + 1] = 'j'.charCodeAt(0);
    expect(() => checkRunnerReads(v.json.message, bad, v.json.content)).toThrow();
  });

  it('the independent reader sees a one-byte change in a runner answer', () => {
    const v = fromRunner.find((x) => x.json.name === 'runner_http_req_call_resp_stop')!;
    expect(normalize(readRunnerFrameBytes(v.frame))).toStrictEqual(expectedReply(v.json.message, v.json.content));
    const bad = Buffer.from(v.frame);
    const at = bad.indexOf(Buffer.from('foo'));
    expect(at).toBeGreaterThan(0);
    bad[at] = 'g'.charCodeAt(0);
    expect(normalize(readRunnerFrameBytes(bad))).not.toStrictEqual(expectedReply(v.json.message, v.json.content));
    expect(() => readRunnerFrameBytes(bad.subarray(0, bad.length - 1))).toThrow(/header announces/);
  });

  it('absent vs empty value is told apart', () => {
    expect(() => expectPairs([{ name: 'flag', value: '' }], [{ name: 'flag' }])).toThrow();
    expect(() => expectPairs([{ name: 'y', value: undefined }], [{ name: 'y', value: '' }])).toThrow();
  });
});
