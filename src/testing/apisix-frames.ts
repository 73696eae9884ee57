/**
 * The APISIX side of the ext-plugin protocol, for the test kit: builds the frames APISIX sends
 * (field order as in apisix/plugins/ext-plugin/init.lua) and reads the runner's answers into
 * outcomes. Answers are bounds-checked with the runner's own verifier first.
 */
import * as flatbuffers from 'flatbuffers';
import { isIP } from 'node:net';
import type { TextPair } from '../plugin-api/request.js';
import { TextEntry } from '../protocol/generated/a6/text-entry.js';
import { Resp as ErrResp } from '../protocol/generated/a6/err/resp.js';
import { Req as PrepareConfReq } from '../protocol/generated/a6/prepare-conf/req.js';
import { Resp as PrepareConfResp } from '../protocol/generated/a6/prepare-conf/resp.js';
import { Req as ReqCallReq } from '../protocol/generated/a6/httpreq-call/req.js';
import { Resp as ReqCallResp } from '../protocol/generated/a6/httpreq-call/resp.js';
import { Stop } from '../protocol/generated/a6/httpreq-call/stop.js';
import { Rewrite } from '../protocol/generated/a6/httpreq-call/rewrite.js';
import { Req as ExtraInfoReq } from '../protocol/generated/a6/extra-info/req.js';
import { Resp as ExtraInfoResp } from '../protocol/generated/a6/extra-info/resp.js';
import { Var } from '../protocol/generated/a6/extra-info/var.js';
import { Req as RespCallReq } from '../protocol/generated/a6/httpresp-call/req.js';
import { Resp as RespCallResp } from '../protocol/generated/a6/httpresp-call/resp.js';
import { Action, ErrCode, Info, SHAPES, methodCode, type ExtraInfoQuestion } from '../protocol/messages.js';
import { verifyRoot, type TableShape } from '../protocol/verify.js';
import type { ErrorOutcome, RequestOutcome, ResponseOutcome } from './outcomes.js';

/** Frame types (the first header byte). */
export const FRAME = { error: 0, prepareConf: 1, httpReqCall: 2, extraInfo: 3, httpRespCall: 4 } as const;

/** A header, query arg or conf entry; `value` undefined = the entry has no value field. */
export interface FrameEntry {
  readonly name: string;
  readonly value?: string | undefined;
}

function entryVector(b: flatbuffers.Builder, entries: readonly FrameEntry[]): flatbuffers.Offset {
  const offsets = entries.map((e) => {
    // Strings before the table, as the Lua encoder does (build_args / build_headers).
    const name = b.createString(e.name);
    const value = e.value === undefined ? 0 : b.createString(e.value);
    TextEntry.startTextEntry(b);
    TextEntry.addName(b, name);
    if (e.value !== undefined) TextEntry.addValue(b, value);
    return TextEntry.endTextEntry(b);
  });
  b.startVector(4, offsets.length, 4);
  for (let i = offsets.length - 1; i >= 0; i--) b.addOffset(offsets[i]!);
  return b.endVector();
}

function finished(b: flatbuffers.Builder, root: flatbuffers.Offset): Uint8Array {
  b.finish(root);
  return b.asUint8Array().slice();
}

/** PrepareConf.Req as APISIX builds it; `conf` undefined = the route's plugin has no conf (field left out). */
export function encodePrepareConf(key: string, conf: readonly FrameEntry[] | undefined): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const keyOffset = b.createString(key);
  const confOffset = conf === undefined ? 0 : entryVector(b, conf);
  PrepareConfReq.startReq(b);
  PrepareConfReq.addKey(b, keyOffset);
  if (conf !== undefined) PrepareConfReq.addConf(b, confOffset);
  return finished(b, PrepareConfReq.endReq(b));
}

export interface ReqCallFields {
  readonly id: number;
  readonly confToken: number;
  /** Method name (GET, POST...) or its A6.Method code. */
  readonly method: string | number;
  readonly path: string;
  /** Text form, or the 4/16 bytes of nginx's `$binary_remote_addr`. */
  readonly srcIp: string | Uint8Array;
  readonly args: readonly FrameEntry[];
  readonly headers: readonly FrameEntry[];
}

/** A6.Method code of a method name; throws for a method APISIX cannot send. */
export function methodToCode(method: string | number): number {
  if (typeof method === 'number') return method;
  const code = methodCode(method);
  if (code === undefined) throw new TypeError(`APISIX cannot send method ${method} (it has no A6.Method code)`);
  return code;
}

/** HTTPReqCall.Req as APISIX builds it (args, headers, src_ip and path always present). */
export function encodeHttpReqCall(f: ReqCallFields): Uint8Array {
  const method = methodToCode(f.method);
  const b = new flatbuffers.Builder(512);
  const path = b.createString(f.path);
  const srcIp = ReqCallReq.createSrcIpVector(b, typeof f.srcIp === 'string' ? ipBytes(f.srcIp) : f.srcIp);
  const args = entryVector(b, f.args);
  const headers = entryVector(b, f.headers);
  ReqCallReq.startReq(b);
  // Same add order as init.lua; defaults (id 0, token 0, GET) are skipped by the builder.
  ReqCallReq.addId(b, f.id);
  ReqCallReq.addConfToken(b, f.confToken);
  ReqCallReq.addSrcIp(b, srcIp);
  ReqCallReq.addPath(b, path);
  ReqCallReq.addArgs(b, args);
  ReqCallReq.addHeaders(b, headers);
  ReqCallReq.addMethod(b, method);
  return finished(b, ReqCallReq.endReq(b));
}

export interface RespCallFields {
  readonly id: number;
  readonly confToken: number;
  readonly status: number;
  readonly headers: readonly FrameEntry[];
}

/** HTTPRespCall.Req as APISIX builds it (headers always present). */
export function encodeHttpRespCall(f: RespCallFields): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const headers = entryVector(b, f.headers);
  RespCallReq.startReq(b);
  RespCallReq.addId(b, f.id);
  RespCallReq.addStatus(b, f.status);
  RespCallReq.addConfToken(b, f.confToken);
  RespCallReq.addHeaders(b, headers);
  return finished(b, RespCallReq.endReq(b));
}

/**
 * ExtraInfo.Resp: `result` absent for nil (undefined), present (even empty) otherwise. APISIX
 * answers tostring(value): numbers and strings travel as their text.
 */
export function encodeExtraInfoAnswer(result: Uint8Array | string | number | undefined): Uint8Array {
  const b = new flatbuffers.Builder(64);
  const bytes = result === undefined ? undefined : typeof result === 'number' || typeof result === 'string' ? Buffer.from(String(result)) : result;
  const vec = bytes === undefined ? 0 : ExtraInfoResp.createResultVector(b, bytes);
  ExtraInfoResp.startResp(b);
  if (bytes !== undefined) ExtraInfoResp.addResult(b, vec);
  return finished(b, ExtraInfoResp.endResp(b));
}

/**
 * nginx's `$binary_remote_addr` of a textual address: 4 bytes for IPv4 (and IPv4-mapped IPv6,
 * which is how Node reports IPv4 peers on dual-stack sockets), 16 bytes for IPv6.
 */
export function ipBytes(ip: string): Uint8Array {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return ipBytes(mapped[1]!);
  const family = isIP(ip);
  if (family === 4) return Uint8Array.from(ip.split('.').map(Number));
  if (family !== 6) throw new TypeError(`srcIp must be an IPv4 or IPv6 address, got "${ip}"`);
  const zone = ip.indexOf('%');
  let text = zone >= 0 ? ip.slice(0, zone) : ip;
  // A trailing dotted quad stands for the last two words.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b2, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b2).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headWords = head ? head.split(':') : [];
  const tailWords = tail ? tail.split(':') : [];
  const words = [...headWords, ...new Array<string>(8 - headWords.length - tailWords.length).fill('0'), ...tailWords];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    const n = parseInt(w, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  });
  return out;
}

// ---- runner -> APISIX -------------------------------------------------------------------

/** A runner answer APISIX could not use. */
export class MalformedAnswerError extends Error {
  readonly code = 'A6_ERR_TEST_MALFORMED_ANSWER';
}

function verified(payload: Uint8Array, shape: TableShape): flatbuffers.ByteBuffer {
  try {
    verifyRoot(payload, shape);
  } catch (err) {
    throw new MalformedAnswerError(`the runner sent a malformed ${shape.name}: ${(err as Error).message}`);
  }
  return new flatbuffers.ByteBuffer(payload);
}

interface EntryTable {
  bb: flatbuffers.ByteBuffer | null;
  bb_pos: number;
}

function entries(length: number, at: (i: number, e: TextEntry) => TextEntry | null): TextPair[] {
  const out: TextPair[] = [];
  for (let i = 0; i < length; i++) {
    const e = at(i, new TextEntry())!;
    out.push({ name: e.name() ?? '', value: e.value() ?? undefined });
  }
  return out;
}

function present(table: EntryTable, fieldId: number): boolean {
  return table.bb!.__offset(table.bb_pos, 4 + 2 * fieldId) !== 0;
}

function bytes(arr: Uint8Array | null): Buffer | undefined {
  return arr ? Buffer.from(arr) : undefined;
}

const ERR_NAMES: Readonly<Record<number, ErrorOutcome['code']>> = {
  [ErrCode.BAD_REQUEST]: 'BAD_REQUEST',
  [ErrCode.SERVICE_UNAVAILABLE]: 'SERVICE_UNAVAILABLE',
  [ErrCode.CONF_TOKEN_NOT_FOUND]: 'CONF_TOKEN_NOT_FOUND',
};

export function decodeError(payload: Uint8Array, asked: readonly ExtraInfoQuestion[], detail?: string): ErrorOutcome {
  const code = ErrResp.getRootAsResp(verified(payload, SHAPES.errResp)).code();
  const name = ERR_NAMES[code];
  if (!name) throw new MalformedAnswerError(`unknown Err code ${code}`);
  return { kind: 'error', code: name, message: detail ?? `the runner answered ${name}; APISIX answers the client 503`, asked };
}

export function decodePrepareConfAnswer(payload: Uint8Array): number {
  return PrepareConfResp.getRootAsResp(verified(payload, SHAPES.prepareConfResp)).confToken();
}

export function decodeQuestion(payload: Uint8Array): ExtraInfoQuestion {
  const req = ExtraInfoReq.getRootAsReq(verified(payload, SHAPES.extraInfoReq));
  const type = req.infoType();
  if (type === Info.Var) {
    const v = req.info(new Var()) as Var | null;
    return { kind: 'var', name: v?.name() ?? '' };
  }
  if (type === Info.ReqBody) return { kind: 'reqBody' };
  if (type === Info.RespBody) return { kind: 'respBody' };
  throw new MalformedAnswerError(`unknown ExtraInfo type ${type}`);
}

export function decodeRequestAnswer(payload: Uint8Array, asked: readonly ExtraInfoQuestion[]): RequestOutcome {
  const resp = ReqCallResp.getRootAsResp(verified(payload, SHAPES.reqCallResp));
  const type = resp.actionType();
  if (type === Action.Stop) {
    const s = resp.action(new Stop()) as Stop | null;
    if (!s) throw new MalformedAnswerError('Stop action without its table');
    return { kind: 'stop', status: s.status(), headers: entries(s.headersLength(), (i, e) => s.headers(i, e)), body: bytes(s.bodyArray()), asked };
  }
  if (type === Action.Rewrite) {
    const r = resp.action(new Rewrite()) as Rewrite | null;
    if (!r) throw new MalformedAnswerError('Rewrite action without its table');
    return {
      kind: 'rewrite',
      path: r.path() ?? undefined,
      headers: entries(r.headersLength(), (i, e) => r.headers(i, e)),
      args: entries(r.argsLength(), (i, e) => r.args(i, e)),
      responseHeaders: entries(r.respHeadersLength(), (i, e) => r.respHeaders(i, e)),
      body: bytes(r.bodyArray()),
      asked,
    };
  }
  return { kind: 'none', asked };
}

/**
 * An HTTPRespCall answer as the client sees it: status 0 keeps the upstream's; a header list
 * replaces the upstream's headers (entries without a value only name removed headers).
 */
export function decodeResponseAnswer(payload: Uint8Array, asked: readonly ExtraInfoQuestion[]): ResponseOutcome {
  const resp = RespCallResp.getRootAsResp(verified(payload, SHAPES.respCallResp));
  const headers = present(resp, 2) ? entries(resp.headersLength(), (i, e) => resp.headers(i, e)).filter((e) => e.value !== undefined) : undefined;
  return { kind: 'response', status: resp.status() || undefined, headers, body: bytes(resp.bodyArray()), asked };
}
