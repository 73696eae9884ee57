/**
 * A second, independent reader of runner answers for the conformance tests.
 *
 * `apisix-codec.ts` bounds-checks every answer with the runner's own `verifyRoot` + `SHAPES`
 * before reading it, so a mistake shared by the runner's encoder and those shapes could pass
 * both sides. This reader shares nothing with the runner's protocol code: it uses only the
 * flatc-generated accessors (src/protocol/generated, produced from proto/ext-plugin.fbs) and
 * the schema's enums, and reads field presence from the vtable itself. It checks the minimum
 * APISIX's own reader needs (a root offset inside the payload, a known union member) and
 * otherwise reads what the bytes say.
 */
import * as flatbuffers from 'flatbuffers';
import { TextEntry } from '../../src/protocol/generated/a6/text-entry.js';
import { Resp as ErrResp } from '../../src/protocol/generated/a6/err/resp.js';
import { Resp as PrepareConfResp } from '../../src/protocol/generated/a6/prepare-conf/resp.js';
import { Resp as ReqCallResp } from '../../src/protocol/generated/a6/httpreq-call/resp.js';
import { Action } from '../../src/protocol/generated/a6/httpreq-call/action.js';
import { Stop } from '../../src/protocol/generated/a6/httpreq-call/stop.js';
import { Rewrite } from '../../src/protocol/generated/a6/httpreq-call/rewrite.js';
import { Req as ExtraInfoReq } from '../../src/protocol/generated/a6/extra-info/req.js';
import { Info } from '../../src/protocol/generated/a6/extra-info/info.js';
import { Var } from '../../src/protocol/generated/a6/extra-info/var.js';
import { Resp as RespCallResp } from '../../src/protocol/generated/a6/httpresp-call/resp.js';

/** Frame types as PROTOCOL.md lists them (byte 0 of the frame header). */
const FRAME_TYPE = { error: 0, prepareConf: 1, reqCall: 2, extraInfo: 3, respCall: 4 } as const;

export interface IndependentEntry {
  readonly name: string;
  readonly value?: string;
}

/** The same plain shape as apisix-codec's RunnerReply, so both readers compare with one expectation. */
export type IndependentReply =
  | { type: 'error'; code: number }
  | { type: 'prepareConf'; confToken: number }
  | { type: 'reqCall'; id: number; actionType: number; action: { kind: 'none' } | { kind: 'stop'; stop: Record<string, unknown> } | { kind: 'rewrite'; rewrite: Record<string, unknown> } }
  | { type: 'extraInfo'; infoType: number; question: { kind: 'var'; name: string } | { kind: 'reqBody' } | { kind: 'respBody' } }
  | { type: 'respCall'; id: number; status: number; headers?: IndependentEntry[]; body?: Buffer };

interface Table {
  bb: flatbuffers.ByteBuffer | null;
  bb_pos: number;
}

/** Field `slot` (0-based, schema order) is stored when its vtable entry is non-zero. */
function stored(t: Table, slot: number): boolean {
  return t.bb!.__offset(t.bb_pos, 4 + 2 * slot) !== 0;
}

function readEntries(t: Table, slot: number, count: number, at: (i: number) => TextEntry | null): IndependentEntry[] | undefined {
  if (!stored(t, slot)) return undefined;
  const list: IndependentEntry[] = [];
  for (let i = 0; i < count; i++) {
    const e = at(i);
    if (!e) throw new Error(`entry ${i} of field ${slot} is missing`);
    const name = e.name() ?? '';
    const value = e.value();
    list.push(value === null ? { name } : { name, value });
  }
  return list;
}

function readBytes(arr: Uint8Array | null): Buffer | undefined {
  return arr === null ? undefined : Buffer.from(arr);
}

function rootBuffer(payload: Uint8Array): flatbuffers.ByteBuffer {
  // APISIX's reader needs at least a root offset and a vtable offset.
  if (payload.byteLength < 8) throw new Error(`payload of ${payload.byteLength} bytes cannot hold a table`);
  const root = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(0, true);
  if (root + 4 > payload.byteLength) throw new Error(`root table offset ${root} is outside the ${payload.byteLength}-byte payload`);
  return new flatbuffers.ByteBuffer(payload);
}

/** Drops keys whose value is undefined, so "absent" compares equal however it is spelled. */
function defined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** Reads one runner frame's payload the way a schema-only reader would. */
export function readRunnerAnswer(type: number, payload: Uint8Array): IndependentReply {
  const bb = rootBuffer(payload);
  switch (type) {
    case FRAME_TYPE.error:
      return { type: 'error', code: ErrResp.getRootAsResp(bb).code() };
    case FRAME_TYPE.prepareConf:
      return { type: 'prepareConf', confToken: PrepareConfResp.getRootAsResp(bb).confToken() };
    case FRAME_TYPE.reqCall: {
      const resp = ReqCallResp.getRootAsResp(bb);
      const actionType = resp.actionType();
      if (actionType === Action.Stop) {
        const s = resp.action(new Stop()) as Stop | null;
        if (!s) throw new Error('Stop announced without its table');
        const stop = defined({
          status: s.status(),
          headers: readEntries(s, 1, s.headersLength(), (i) => s.headers(i)),
          body: readBytes(s.bodyArray()),
        });
        return { type: 'reqCall', id: resp.id(), actionType, action: { kind: 'stop', stop } };
      }
      if (actionType === Action.Rewrite) {
        const r = resp.action(new Rewrite()) as Rewrite | null;
        if (!r) throw new Error('Rewrite announced without its table');
        const rewrite = defined({
          path: r.path() ?? undefined,
          headers: readEntries(r, 1, r.headersLength(), (i) => r.headers(i)),
          args: readEntries(r, 2, r.argsLength(), (i) => r.args(i)),
          respHeaders: readEntries(r, 3, r.respHeadersLength(), (i) => r.respHeaders(i)),
          body: readBytes(r.bodyArray()),
        });
        return { type: 'reqCall', id: resp.id(), actionType, action: { kind: 'rewrite', rewrite } };
      }
      if (actionType !== Action.NONE) throw new Error(`unknown action type ${actionType}`);
      return { type: 'reqCall', id: resp.id(), actionType, action: { kind: 'none' } };
    }
    case FRAME_TYPE.extraInfo: {
      const req = ExtraInfoReq.getRootAsReq(bb);
      const infoType = req.infoType();
      if (infoType === Info.Var) {
        const v = req.info(new Var()) as Var | null;
        if (!v) throw new Error('Var announced without its table');
        return { type: 'extraInfo', infoType, question: { kind: 'var', name: v.name() ?? '' } };
      }
      if (infoType === Info.ReqBody) return { type: 'extraInfo', infoType, question: { kind: 'reqBody' } };
      if (infoType === Info.RespBody) return { type: 'extraInfo', infoType, question: { kind: 'respBody' } };
      throw new Error(`unknown info type ${infoType}`);
    }
    case FRAME_TYPE.respCall: {
      const resp = RespCallResp.getRootAsResp(bb);
      return defined({
        type: 'respCall',
        id: resp.id(),
        status: resp.status(),
        headers: readEntries(resp, 2, resp.headersLength(), (i) => resp.headers(i)),
        body: readBytes(resp.bodyArray()),
      }) as IndependentReply;
    }
    default:
      throw new Error(`unknown frame type ${type}`);
  }
}

/** Reads one whole frame (4-byte header, payload) without the runner's FrameDecoder. */
export function readRunnerFrameBytes(frame: Uint8Array): IndependentReply {
  if (frame.byteLength < 4) throw new Error(`a frame needs a 4-byte header, got ${frame.byteLength} bytes`);
  const length = (frame[1]! << 16) | (frame[2]! << 8) | frame[3]!;
  if (frame.byteLength !== 4 + length) throw new Error(`header announces ${length} payload bytes, frame has ${frame.byteLength - 4}`);
  return readRunnerAnswer(frame[0]!, frame.subarray(4));
}
