/**
 * The APISIX side of the ext-plugin protocol, for tests: encodes what APISIX sends
 * (PrepareConf.Req, HTTPReqCall.Req, ExtraInfo.Resp, HTTPRespCall.Req) the way APISIX's Lua
 * encoder lays it out, and decodes what a runner answers into plain objects.
 *
 * Layout rules taken from APISIX's own bytes (test/fixtures/conformance/README.md):
 * - scalars at their default (id 0, conf_token 0, method GET, status 0) are left out;
 * - HTTPReqCall.Req always carries `src_ip`, `path`, `args` and `headers` (vectors even when empty);
 * - HTTPRespCall.Req always carries `headers`;
 * - PrepareConf.Req has no `conf` field at all when the route's plugin has no conf;
 * - a valueless query arg (`?flag`) is a TextEntry without `value`.
 * Byte-level differences that carry no meaning (full-length vtables, missing NUL after empty
 * strings) are not reproduced: the runner is tested against those with the recorded vectors.
 *
 * Every runner answer is bounds-checked with the runner's own `verifyRoot` + `SHAPES` first;
 * anything APISIX could not use is reported as MalformedReplyError (APISIX fails the request).
 */
import * as flatbuffers from 'flatbuffers';
import { TextEntry } from '../../src/protocol/generated/a6/text-entry.js';
import { Resp as ErrResp } from '../../src/protocol/generated/a6/err/resp.js';
import { Resp as PrepareConfResp } from '../../src/protocol/generated/a6/prepare-conf/resp.js';
import { Resp as ReqCallResp } from '../../src/protocol/generated/a6/httpreq-call/resp.js';
import { Stop } from '../../src/protocol/generated/a6/httpreq-call/stop.js';
import { Rewrite } from '../../src/protocol/generated/a6/httpreq-call/rewrite.js';
import { Req as ExtraInfoReq } from '../../src/protocol/generated/a6/extra-info/req.js';
import { Var } from '../../src/protocol/generated/a6/extra-info/var.js';
import { Resp as RespCallResp } from '../../src/protocol/generated/a6/httpresp-call/resp.js';
import { encodeFrame } from '../../src/protocol/frame.js';
import {
  encodeExtraInfoAnswer, encodeHttpReqCall, encodeHttpRespCall, encodePrepareConf, ipBytes, methodToCode,
  type FrameEntry, type ReqCallFields, type RespCallFields,
} from '../../src/testing/apisix-frames.js';
import { verifyRoot, MalformedPayloadError, type TableShape } from '../../src/protocol/verify.js';
import { SHAPES } from '../../src/protocol/messages.js';

/** A header, query arg or conf entry; `value` undefined = the entry has no value field. */
export type Entry = FrameEntry;

/** Frame types (byte 0 of the header). */
export const RPC = {
  ERROR: 0,
  PREPARE_CONF: 1,
  HTTP_REQ_CALL: 2,
  EXTRA_INFO: 3,
  HTTP_RESP_CALL: 4,
} as const;

/** A runner answer APISIX could not use (bad table, unknown type, missing union member). */
export class MalformedReplyError extends Error {
  readonly code = 'APISIX_ERR_MALFORMED_REPLY';
}

// ---- encoding (APISIX -> runner): the public test kit's encoders, one copy for both -------

export interface PrepareConfInput {
  readonly key: string;
  /** undefined = the plugin has no `conf` (the field is left out, as APISIX does). */
  readonly conf?: readonly Entry[] | undefined;
}

/** PrepareConf.Req payload as APISIX builds it. */
export function encodePrepareConfReq(input: PrepareConfInput): Uint8Array {
  return encodePrepareConf(input.key, input.conf);
}

export interface HttpReqCallInput extends ReqCallFields {
  /** 4 bytes (IPv4) or 16 bytes (IPv6), like nginx's `$binary_remote_addr`. */
  readonly srcIp: Uint8Array;
}

export { methodToCode };

/** HTTPReqCall.Req payload as APISIX builds it (args, headers, src_ip and path always present). */
export const encodeHttpReqCallReq: (input: HttpReqCallInput) => Uint8Array = encodeHttpReqCall;

/** ExtraInfo.Resp payload: `result` absent for nil (undefined), a vector otherwise (even empty). */
export const encodeExtraInfoResp = encodeExtraInfoAnswer;

export type HttpRespCallInput = RespCallFields;

/** HTTPRespCall.Req payload as APISIX builds it (headers always present). */
export const encodeHttpRespCallReq: (input: HttpRespCallInput) => Uint8Array = encodeHttpRespCall;

/** Wraps a payload in the 4-byte frame header. */
export function frame(type: number, payload: Uint8Array): Buffer {
  return encodeFrame(type, payload);
}

/** nginx's `$binary_remote_addr` of a textual address (IPv4, IPv4-mapped IPv6, IPv6). */
export const ipToBytes = ipBytes;

// ---- decoding (runner -> APISIX) --------------------------------------------------------

export type StopReply = {
  readonly status: number;
  /** undefined when the field is absent. */
  readonly headers?: Entry[] | undefined;
  readonly body?: Buffer | undefined;
};

export type RewriteReply = {
  readonly path?: string | undefined;
  readonly headers?: Entry[] | undefined;
  readonly args?: Entry[] | undefined;
  readonly respHeaders?: Entry[] | undefined;
  readonly body?: Buffer | undefined;
};

export type ExtraInfoQuestion =
  | { readonly kind: 'var'; readonly name: string }
  | { readonly kind: 'reqBody' }
  | { readonly kind: 'respBody' };

/** One decoded runner frame. Vectors/strings are undefined when the field is absent. */
export type RunnerReply =
  | { readonly type: 'error'; readonly code: number }
  | { readonly type: 'prepareConf'; readonly confToken: number }
  | { readonly type: 'reqCall'; readonly id: number; readonly actionType: number; readonly action: { readonly kind: 'none' } | { readonly kind: 'stop'; readonly stop: StopReply } | { readonly kind: 'rewrite'; readonly rewrite: RewriteReply } }
  | { readonly type: 'extraInfo'; readonly infoType: number; readonly question: ExtraInfoQuestion }
  | { readonly type: 'respCall'; readonly id: number; readonly status: number; readonly headers?: Entry[] | undefined; readonly body?: Buffer | undefined };

interface GeneratedTable {
  bb: flatbuffers.ByteBuffer | null;
  bb_pos: number;
}

/** True when field `id` of a generated table is stored (its vtable slot is non-zero). */
function has(table: GeneratedTable, id: number): boolean {
  return table.bb!.__offset(table.bb_pos, 4 + 2 * id) !== 0;
}

function entries(table: GeneratedTable, id: number, length: number, at: (i: number, e: TextEntry) => TextEntry | null): Entry[] | undefined {
  if (!has(table, id)) return undefined;
  const out: Entry[] = [];
  for (let i = 0; i < length; i++) {
    const e = at(i, new TextEntry())!;
    const value = e.value();
    out.push(value === null ? { name: e.name() ?? '' } : { name: e.name() ?? '', value });
  }
  return out;
}

function bytes(arr: Uint8Array | null): Buffer | undefined {
  return arr ? Buffer.from(arr) : undefined;
}

function verified(payload: Uint8Array, shape: TableShape): flatbuffers.ByteBuffer {
  try {
    verifyRoot(payload, shape);
  } catch (err) {
    if (err instanceof MalformedPayloadError) throw new MalformedReplyError(err.message);
    throw err;
  }
  return new flatbuffers.ByteBuffer(payload);
}

/** Decodes one runner frame into a plain object; throws MalformedReplyError when APISIX could not use it. */
export function decodeRunnerFrame(type: number, payload: Uint8Array): RunnerReply {
  switch (type) {
    case RPC.ERROR: {
      const resp = ErrResp.getRootAsResp(verified(payload, SHAPES.errResp));
      return { type: 'error', code: resp.code() };
    }
    case RPC.PREPARE_CONF: {
      const resp = PrepareConfResp.getRootAsResp(verified(payload, SHAPES.prepareConfResp));
      return { type: 'prepareConf', confToken: resp.confToken() };
    }
    case RPC.HTTP_REQ_CALL:
      return decodeReqCallResp(payload);
    case RPC.EXTRA_INFO:
      return decodeExtraInfoReq(payload);
    case RPC.HTTP_RESP_CALL: {
      const resp = RespCallResp.getRootAsResp(verified(payload, SHAPES.respCallResp));
      return {
        type: 'respCall',
        id: resp.id(),
        status: resp.status(),
        headers: entries(resp, 2, resp.headersLength(), (i, e) => resp.headers(i, e)),
        body: bytes(resp.bodyArray()),
      };
    }
    default:
      throw new MalformedReplyError(`unexpected frame type ${type}`);
  }
}

function decodeReqCallResp(payload: Uint8Array): RunnerReply {
  const resp = ReqCallResp.getRootAsResp(verified(payload, SHAPES.reqCallResp));
  const id = resp.id();
  const actionType = resp.actionType();
  if (actionType === 1) {
    const stop = resp.action(new Stop()) as Stop | null;
    if (!stop) throw new MalformedReplyError('HTTPReqCall.Resp: action_type Stop without its table');
    return {
      type: 'reqCall',
      id,
      actionType,
      action: {
        kind: 'stop',
        stop: {
          status: stop.status(),
          headers: entries(stop, 1, stop.headersLength(), (i, e) => stop.headers(i, e)),
          body: bytes(stop.bodyArray()),
        },
      },
    };
  }
  if (actionType === 2) {
    const rw = resp.action(new Rewrite()) as Rewrite | null;
    if (!rw) throw new MalformedReplyError('HTTPReqCall.Resp: action_type Rewrite without its table');
    return {
      type: 'reqCall',
      id,
      actionType,
      action: {
        kind: 'rewrite',
        rewrite: {
          path: rw.path() ?? undefined,
          headers: entries(rw, 1, rw.headersLength(), (i, e) => rw.headers(i, e)),
          args: entries(rw, 2, rw.argsLength(), (i, e) => rw.args(i, e)),
          respHeaders: entries(rw, 3, rw.respHeadersLength(), (i, e) => rw.respHeaders(i, e)),
          body: bytes(rw.bodyArray()),
        },
      },
    };
  }
  if (actionType !== 0) throw new MalformedReplyError(`HTTPReqCall.Resp: unknown action_type ${actionType}`);
  return { type: 'reqCall', id, actionType, action: { kind: 'none' } };
}

function decodeExtraInfoReq(payload: Uint8Array): RunnerReply {
  const req = ExtraInfoReq.getRootAsReq(verified(payload, SHAPES.extraInfoReq));
  const infoType = req.infoType();
  if (infoType === 1) {
    const v = req.info(new Var()) as Var | null;
    if (!v) throw new MalformedReplyError('ExtraInfo.Req: info_type Var without its table');
    return { type: 'extraInfo', infoType, question: { kind: 'var', name: v.name() ?? '' } };
  }
  if (infoType === 2) return { type: 'extraInfo', infoType, question: { kind: 'reqBody' } };
  if (infoType === 3) return { type: 'extraInfo', infoType, question: { kind: 'respBody' } };
  // APISIX answers "unsupported info type" and fails the request.
  throw new MalformedReplyError(`ExtraInfo.Req: unsupported info type ${infoType}`);
}

/**
 * Names of the fields stored in the root table of `payload` (non-zero vtable slots), given
 * the table's field names in id order. Used to compare field presence with APISIX's bytes.
 */
export function storedFields(payload: Uint8Array, fieldNames: readonly string[], tableAt?: number): string[] {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const table = tableAt ?? view.getUint32(0, true);
  const vtable = table - view.getInt32(table, true);
  const vtableSize = view.getUint16(vtable, true);
  const out: string[] = [];
  fieldNames.forEach((name, id) => {
    const slot = 4 + 2 * id;
    if (slot + 2 <= vtableSize && view.getUint16(vtable + slot, true) !== 0) out.push(name);
  });
  return out;
}

/** Position of the table a root-table offset field (by id) points to, for storedFields on nested tables. */
export function nestedTableAt(payload: Uint8Array, fieldId: number): number | undefined {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const table = view.getUint32(0, true);
  const vtable = table - view.getInt32(table, true);
  const vtableSize = view.getUint16(vtable, true);
  const slot = 4 + 2 * fieldId;
  if (slot + 2 > vtableSize) return undefined;
  const off = view.getUint16(vtable + slot, true);
  if (!off) return undefined;
  return table + off + view.getUint32(table + off, true);
}
