/**
 * Typed decoding and encoding of every ext-plugin message, over the generated FlatBuffers
 * code. Every payload is bounds-checked (verify.ts) before the generated accessors read it.
 */
import * as flatbuffers from 'flatbuffers';
import { TextEntry } from './generated/a6/text-entry.js';
import { Code as ErrCode } from './generated/a6/err/code.js';
import { Resp as ErrResp } from './generated/a6/err/resp.js';
import { Resp as PrepareConfResp } from './generated/a6/prepare-conf/resp.js';
import { Resp as ReqCallResp } from './generated/a6/httpreq-call/resp.js';
import { Stop } from './generated/a6/httpreq-call/stop.js';
import { Rewrite } from './generated/a6/httpreq-call/rewrite.js';
import { Action } from './generated/a6/httpreq-call/action.js';
import { Req as ExtraInfoReq } from './generated/a6/extra-info/req.js';
import { Var } from './generated/a6/extra-info/var.js';
import { ReqBody } from './generated/a6/extra-info/req-body.js';
import { RespBody } from './generated/a6/extra-info/resp-body.js';
import { Info } from './generated/a6/extra-info/info.js';
import { Resp as RespCallResp } from './generated/a6/httpresp-call/resp.js';
import { encodeFrame, MessageType } from './frame.js';
import { nameBucket, namesAscii, verifyRoot, verifyTextEntrySpans, type TableShape } from './verify.js';
import type { HttpMethod, TextPair } from '../plugin-api/request.js';

export { ErrCode, Action, Info };

// ---- shapes for verification (field id order) -------------------------------------------
const TEXT_ENTRY: TableShape = { name: 'A6.TextEntry', fields: ['string', 'string'] };
const TEXT_ENTRIES = { tables: TEXT_ENTRY } as const;
const LAZY_TEXT_ENTRIES = { lazyTables: TEXT_ENTRY } as const;
const EMPTY = (name: string): TableShape => ({ name, fields: [] });

export const SHAPES = {
  prepareConfReq: { name: 'A6.PrepareConf.Req', fields: [TEXT_ENTRIES, 'string'] },
  prepareConfResp: { name: 'A6.PrepareConf.Resp', fields: ['u32'] },
  reqCallReq: {
    name: 'A6.HTTPReqCall.Req',
    // Args and headers are decoded only when a plugin reads them, and checked then.
    fields: ['u32', 'bytes', 'u8', 'string', LAZY_TEXT_ENTRIES, LAZY_TEXT_ENTRIES, 'u32'],
  },
  reqCallResp: {
    name: 'A6.HTTPReqCall.Resp',
    fields: [
      'u32',
      {
        union: [
          { name: 'A6.HTTPReqCall.Stop', fields: ['u16', TEXT_ENTRIES, 'bytes'] },
          { name: 'A6.HTTPReqCall.Rewrite', fields: ['string', TEXT_ENTRIES, TEXT_ENTRIES, TEXT_ENTRIES, 'bytes'] },
        ],
      },
    ],
  },
  extraInfoReq: {
    name: 'A6.ExtraInfo.Req',
    fields: [{ union: [{ name: 'A6.ExtraInfo.Var', fields: ['string'] }, EMPTY('A6.ExtraInfo.ReqBody'), EMPTY('A6.ExtraInfo.RespBody')] }],
  },
  extraInfoResp: { name: 'A6.ExtraInfo.Resp', fields: ['bytes'] },
  respCallReq: { name: 'A6.HTTPRespCall.Req', fields: ['u32', 'u16', TEXT_ENTRIES, 'u32'] },
  respCallResp: { name: 'A6.HTTPRespCall.Resp', fields: ['u32', 'u16', TEXT_ENTRIES, 'bytes'] },
  errResp: { name: 'A6.Err.Resp', fields: ['u8'] },
} satisfies Record<string, TableShape>;

// ---- helpers ----------------------------------------------------------------------------
export const METHOD_NAMES: readonly HttpMethod[] = [
  'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'OPTIONS',
  'PROPFIND', 'PROPPATCH', 'LOCK', 'UNLOCK', 'PATCH', 'TRACE',
];

const METHOD_CODES: ReadonlyMap<string, number> = new Map(METHOD_NAMES.map((m, i) => [m, i]));

/** A6.Method code of a method name, or undefined for a method APISIX cannot send. */
export function methodCode(method: string): number | undefined {
  return METHOD_CODES.get(method.toUpperCase());
}

function asBuffer(payload: Uint8Array): Buffer {
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

function u16(b: Uint8Array, p: number): number {
  return b[p]! | (b[p + 1]! << 8);
}

function u32(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

/**
 * The offset within the table at `table` of the field whose vtable entry is at `vtableOffset`
 * (4 + 2 × field id), 0 when absent: FlatBuffers' `__offset` on a verified payload.
 */
function fieldOffset(b: Uint8Array, table: number, vtableOffset: number): number {
  const vtable = table - (b[table]! | (b[table + 1]! << 8) | (b[table + 2]! << 16) | (b[table + 3]! << 24));
  return vtableOffset < u16(b, vtable) ? u16(b, vtable + vtableOffset) : 0;
}

/** Where the vector (string, bytes or tables) in field `vtableOffset` of `table` starts (its length word), -1 when absent. */
function vectorAt(b: Uint8Array, table: number, vtableOffset: number): number {
  const o = fieldOffset(b, table, vtableOffset);
  return o ? table + o + u32(b, table + o) : -1;
}

/** A FlatBuffers string at the uoffset stored at `at` (textAt: no TextDecoder, short ASCII built in JS). */
function readString(b: Buffer, at: number): string {
  const start = at + u32(b, at);
  return textAt(b, start + 4, start + 4 + u32(b, start));
}

/** Position of the TextEntry table `i` of the vector whose first element is at `vec`. */
function entryTable(b: Buffer, vec: number, i: number): number {
  const elem = vec + 4 * i;
  return elem + u32(b, elem);
}

/** The TextEntry at `t`: its name field's offset (low 16 bits) and its value field's (high 16), 0 when absent. */
function entryFields(b: Buffer, t: number): number {
  const vt = t - (b[t]! | (b[t + 1]! << 8) | (b[t + 2]! << 16) | (b[t + 3]! << 24));
  const vtSize = u16(b, vt);
  return (vtSize > 4 ? u16(b, vt + 4) : 0) | ((vtSize > 6 ? u16(b, vt + 6) : 0) << 16);
}

/**
 * Reads the [TextEntry] vector in field `vtableOffset` (4 + 2 × field id) of the table at
 * `tablePos`. The payload has been verified (verify.ts), so offsets are in bounds; this is
 * the per-request hot path, hence the direct reads instead of the generated TextEntry class.
 */
function readEntries(b: Buffer, tablePos: number, vtableOffset: number): TextPair[] {
  const at = vectorAt(b, tablePos, vtableOffset);
  if (at < 0) return [];
  const vec = at + 4;
  const count = u32(b, at);
  const out: TextPair[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const t = entryTable(b, vec, i);
    const fields = entryFields(b, t);
    const nameOff = fields & 0xffff;
    const valueOff = fields >>> 16;
    out[i] = {
      name: nameOff ? readString(b, t + nameOff) : '',
      value: valueOff ? readString(b, t + valueOff) : undefined,
    };
  }
  return out;
}

/**
 * Byte ranges of the [TextEntry] vector in field `vtableOffset` of the table at `tablePos`,
 * checked as verifyTablesVector checks a [TextEntry] vector (verifyTextEntrySpans), without
 * decoding a string: four int32 per entry, name start and end, value start and end (-1, -1
 * for an entry without a value; a missing name is an empty range). A plain array, cheaper to
 * allocate than an Int32Array.
 */
function entrySpans(b: Buffer, tablePos: number, vtableOffset: number): number[] {
  const vec = vectorAt(b, tablePos, vtableOffset);
  if (vec < 0) return [];
  const spans: number[] = new Array<number>(u32(b, vec) * 4);
  verifyTextEntrySpans(b, vec, spans);
  return spans;
}

/**
 * The entries whose strings `spans` locate (entrySpans: checked), decoded. Short ASCII strings
 * (an arg's `x` and `1`) are built in JS: a call into Buffer#toString cost ~90 ns whatever the
 * length, a one-byte string built here ~9.
 */
function entriesFromSpans(b: Buffer, spans: ArrayLike<number>): TextPair[] {
  const n = spans.length >> 2;
  const out: TextPair[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    const vs = spans[o + 2]!;
    out[i] = { name: textAt(b, spans[o]!, spans[o + 1]!), value: vs < 0 ? undefined : textAt(b, vs, spans[o + 3]!) };
  }
  return out;
}

const SHORT_TEXT = 8;

/** Bytes [start, end) as UTF-8, as Buffer#toString gives them. */
function textAt(b: Buffer, start: number, end: number): string {
  if (end - start > SHORT_TEXT) return b.toString('utf8', start, end);
  let out = '';
  for (let k = start; k < end; k++) {
    const c = b[k]!;
    if (c >= 0x80) return b.toString('utf8', start, end);
    out += String.fromCharCode(c);
  }
  return out;
}

/** True when bytes [start, end) equal `lower` (ASCII, lower case) ignoring ASCII case. */
function asciiNameIs(b: Buffer, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let k = 0; k < lower.length; k++) {
    const c = b[start + k]!;
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(k)) return false;
  }
  return true;
}

const ASCII_ONLY = /^[\x00-\x7f]*$/;

/**
 * Header names as looked up (nearly always the same few literals) → their lower case when
 * ASCII, else null; remembered so a lookup costs a Map hit instead of toLowerCase and a
 * regular expression (measured: about a quarter of a lookup). Bounded: cleared at 1,024 names.
 */
const lowerNames = new Map<string, string | null>();
function asciiLower(name: string): string | null {
  let lower = lowerNames.get(name);
  if (lower === undefined) {
    const l = name.toLowerCase();
    lower = ASCII_ONLY.test(l) ? l : null;
    if (lowerNames.size >= 1024) lowerNames.clear();
    lowerNames.set(name, lower);
  }
  return lower;
}

/** Formats a 4- or 16-byte address; anything else as hex (never throws). */
export function formatIp(bytes: Uint8Array | null): string {
  if (!bytes || bytes.length === 0) return '';
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) return Buffer.from(bytes).toString('hex');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  // RFC 5952: compress the longest run (>= 2) of zero words.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

// ---- APISIX -> runner -------------------------------------------------------------------
export interface PrepareConfRequest {
  /** APISIX's idempotency key (same key = same conf). */
  readonly key: string;
  /** Plugin name -> JSON conf string, in execution order; empty when the route has none. */
  readonly conf: readonly TextPair[];
}

export function decodePrepareConfReq(payload: Uint8Array): PrepareConfRequest {
  verifyRoot(payload, SHAPES.prepareConfReq);
  // Read straight from the verified bytes (conf: field 0, key: field 1), as HttpReqCallMessage does.
  const b = asBuffer(payload);
  const pos = u32(b, 0);
  const k = fieldOffset(b, pos, 6);
  return {
    key: k ? readString(b, pos + k) : '',
    conf: readEntries(b, pos, 4),
  };
}

/**
 * An HTTPReqCall request; headers and args are checked and decoded on first use (a plugin
 * that never reads them costs nothing for them). Reading them may throw
 * MalformedPayloadError, which the runner answers with BAD_REQUEST like an eager failure.
 */
export class HttpReqCallMessage {
  readonly id: number;
  readonly confToken: number;
  readonly methodCode: number;
  /** Position of the root table in the payload (verified). */
  private readonly pos: number;
  private readonly payload: Buffer;
  private argsCache: TextPair[] | undefined;
  private headersCache: TextPair[] | undefined;
  private spansCache: number[] | undefined;
  /**
   * The header names' buckets (nameBucket), 0-31 and 32-63, set with spansCache: a lookup whose
   * bucket is empty finds nothing without comparing a name. The mirror looks up three headers
   * of every copied GET that are usually absent (Content-Length, Transfer-Encoding, Content-Type).
   */
  private namesLow = 0;
  private namesHigh = 0;
  private argSpansCache: number[] | undefined;
  private asciiCache: boolean | undefined;
  private pathCache: string | undefined;

  constructor(payload: Uint8Array) {
    verifyRoot(payload, SHAPES.reqCallReq);
    this.payload = asBuffer(payload);
    // Fields read straight from the verified bytes, as the generated Req class reads them
    // (defaults when absent): its ByteBuffer builds a TextDecoder per call.
    const b = this.payload;
    const pos = u32(b, 0);
    this.pos = pos;
    let o = fieldOffset(b, pos, 4);
    this.id = o ? u32(b, pos + o) : 0;
    o = fieldOffset(b, pos, 16);
    this.confToken = o ? u32(b, pos + o) : 0;
    o = fieldOffset(b, pos, 8);
    this.methodCode = o ? b[pos + o]! : 0;
  }

  get method(): HttpMethod {
    return METHOD_NAMES[this.methodCode] ?? 'GET';
  }

  /**
   * The path, decoded once, by textAt (verified with the root table): the generated
   * accessor's TextDecoder cost a mirrored call 0.3 µs, and it would drop a leading U+FEFF,
   * which is part of the path APISIX sent.
   */
  get path(): string {
    if (this.pathCache === undefined) {
      const o = fieldOffset(this.payload, this.pos, 10);
      this.pathCache = o ? readString(this.payload, this.pos + o) : '';
    }
    return this.pathCache;
  }

  get srcIpBytes(): Uint8Array | null {
    return this.srcIpView();
  }

  get srcIp(): string {
    return formatIp(this.srcIpView());
  }

  /** The src_ip bytes, a view of the payload (null when absent). */
  private srcIpView(): Uint8Array | null {
    const b = this.payload;
    const vec = vectorAt(b, this.pos, 6);
    if (vec < 0) return null;
    return new Uint8Array(b.buffer, b.byteOffset + vec + 4, u32(b, vec));
  }

  get args(): TextPair[] {
    return (this.argsCache ??= entriesFromSpans(this.payload, this.argSpans));
  }

  /** Where the arg entries are in `bytes` (as headerSpans), checked on first use (may throw MalformedPayloadError). */
  get argSpans(): readonly number[] {
    return (this.argSpansCache ??= entrySpans(this.payload, this.pos, 12));
  }

  get headers(): TextPair[] {
    return (this.headersCache ??= entriesFromSpans(this.payload, this.headerSpans));
  }

  /** The call's bytes (the FlatBuffers payload), for readers of headerSpans. */
  get bytes(): Buffer {
    return this.payload;
  }

  /**
   * Where the header entries are in `bytes` (four per entry, see entrySpans), checked on first
   * use (may throw MalformedPayloadError).
   */
  get headerSpans(): readonly number[] {
    if (this.spansCache === undefined) {
      const b = this.payload;
      const spans = entrySpans(b, this.pos, 14);
      let low = 0;
      let high = 0;
      for (let i = 0; i < spans.length; i += 4) {
        const ns = spans[i]!;
        const ne = spans[i + 1]!;
        if (ne === ns) continue;
        const k = nameBucket(ne - ns, b[ns]!, b[ne - 1]!);
        if (k < 32) low |= 1 << k;
        else high |= 1 << (k - 32);
      }
      this.namesLow = low;
      this.namesHigh = high;
      this.spansCache = spans;
    }
    return this.spansCache;
  }

  /** Whether every header name is ASCII (a pass over the names, made once and only when asked). */
  get headerNamesAscii(): boolean {
    return (this.asciiCache ??= namesAscii(this.payload, this.headerSpans));
  }

  /**
   * The first value of header `name` (case-insensitive; '' for an entry without a value),
   * as `firstValue(headers, name, true)` gives it, but decoding only the value found while
   * the headers have not been decoded yet: a plugin that reads three headers of twenty pays
   * for three strings.
   */
  header(name: string): string | undefined {
    const lower = asciiLower(name);
    if (this.headersCache || lower === null) return firstValue(this.headers, name.toLowerCase());
    const spans = this.headerSpans;
    // A byte-wise match equals the decoded names' toLowerCase() match unless a name holds a
    // character whose lower case is ASCII: of all Unicode only U+212A KELVIN SIGN is (→ `k`;
    // U+0130 gives `i` plus U+0307). So only a name with a `k` needs the names to be ASCII.
    if (lower.includes('k') && !this.headerNamesAscii) return firstValue(this.headers, lower);
    // No name in this one's bucket: absent, without comparing names.
    const n = lower.length;
    if (n > 0) {
      const k = nameBucket(n, lower.charCodeAt(0), lower.charCodeAt(n - 1));
      if (((k < 32 ? this.namesLow >>> k : this.namesHigh >>> (k - 32)) & 1) === 0) return undefined;
    }
    const b = this.payload;
    for (let i = 0; i < spans.length; i += 4) {
      if (!asciiNameIs(b, spans[i]!, spans[i + 1]!, lower)) continue;
      const vs = spans[i + 2]!;
      return vs < 0 ? '' : textAt(b, vs, spans[i + 3]!);
    }
    return undefined;
  }
}

/** firstValue of header-edits.ts for a lower-case name (kept here to avoid a protocol → server import). */
function firstValue(entries: readonly TextPair[], lower: string): string | undefined {
  for (const e of entries) if (e.name.toLowerCase() === lower) return e.value ?? '';
  return undefined;
}

export function decodeHttpReqCall(payload: Uint8Array): HttpReqCallMessage {
  return new HttpReqCallMessage(payload);
}

/** The `result` of an ExtraInfo answer: undefined when APISIX had no value (nil). */
export function decodeExtraInfoResp(payload: Uint8Array): Buffer | undefined {
  verifyRoot(payload, SHAPES.extraInfoResp);
  const b = asBuffer(payload);
  const pos = u32(b, 0);
  const vec = vectorAt(b, pos, 4);
  if (vec < 0) return undefined;
  // A copy: the answer outlives the socket read it came in.
  return Buffer.from(b.subarray(vec + 4, vec + 4 + u32(b, vec)));
}

export interface HttpRespCallRequest {
  readonly id: number;
  readonly status: number;
  readonly headers: readonly TextPair[];
  readonly confToken: number;
}

export function decodeHttpRespCall(payload: Uint8Array): HttpRespCallRequest {
  verifyRoot(payload, SHAPES.respCallReq);
  // Read straight from the verified bytes (id, status, headers, conf_token), as
  // HttpReqCallMessage does: no ByteBuffer and its TextDecoder per call.
  const b = asBuffer(payload);
  const pos = u32(b, 0);
  const id = fieldOffset(b, pos, 4);
  const status = fieldOffset(b, pos, 6);
  const token = fieldOffset(b, pos, 10);
  return {
    id: id ? u32(b, pos + id) : 0,
    status: status ? u16(b, pos + status) : 0,
    headers: readEntries(b, pos, 8),
    confToken: token ? u32(b, pos + token) : 0,
  };
}

// ---- runner -> APISIX -------------------------------------------------------------------
// One builder for the whole process: encoding is synchronous, so it is never shared mid-use.
const builder = new flatbuffers.Builder(1024);
const utf8 = new TextEncoder();
let scratch = new Uint8Array(4096);

/** createString via encodeInto a reused buffer: TextEncoder.encode allocates and is 10x slower for short strings. */
function createString(s: string): flatbuffers.Offset {
  if (s.length * 3 > scratch.length) scratch = new Uint8Array(Math.max(s.length * 3, scratch.length * 2));
  const n = utf8.encodeInto(s, scratch).written;
  return builder.createString(scratch.subarray(0, n));
}

function finish(type: MessageType, root: flatbuffers.Offset): Buffer {
  builder.finish(root);
  const frame = encodeFrame(type, builder.asUint8Array());
  builder.clear();
  return frame;
}

function createEntries(entries: readonly TextPair[]): flatbuffers.Offset {
  const offsets: flatbuffers.Offset[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const name = createString(e.name);
    const value = e.value === undefined ? 0 : createString(e.value);
    TextEntry.startTextEntry(builder);
    TextEntry.addName(builder, name);
    if (value) TextEntry.addValue(builder, value);
    offsets[i] = TextEntry.endTextEntry(builder);
  }
  builder.startVector(4, offsets.length, 4);
  for (let i = offsets.length - 1; i >= 0; i--) builder.addOffset(offsets[i]!);
  return builder.endVector();
}

export function encodeError(code: ErrCode): Buffer {
  ErrResp.startResp(builder);
  // Written even at its default (BAD_REQUEST = 0) so the payload is never an empty table.
  builder.forceDefaults(true);
  ErrResp.addCode(builder, code);
  builder.forceDefaults(false);
  return finish(MessageType.Error, ErrResp.endResp(builder));
}

export function encodePrepareConfResp(token: number): Buffer {
  return finish(MessageType.PrepareConf, PrepareConfResp.createResp(builder, token));
}

export interface StopAction {
  readonly status: number;
  readonly headers: readonly TextPair[];
  readonly body?: Uint8Array | undefined;
}

export interface RewriteAction {
  readonly path?: string | undefined;
  readonly headers: readonly TextPair[];
  readonly args: readonly TextPair[];
  readonly respHeaders: readonly TextPair[];
  readonly body?: Uint8Array | undefined;
}

export type ReqCallAction =
  | { readonly type: 'none' }
  | { readonly type: 'stop'; readonly stop: StopAction }
  | { readonly type: 'rewrite'; readonly rewrite: RewriteAction };

export function encodeHttpReqCallResp(id: number, action: ReqCallAction): Buffer {
  let actionType = Action.NONE;
  let actionOffset = 0;
  if (action.type === 'stop') {
    const s = action.stop;
    const headers = s.headers.length ? createEntries(s.headers) : 0;
    const body = s.body && s.body.length ? builder.createByteVector(s.body) : 0;
    Stop.startStop(builder);
    Stop.addStatus(builder, s.status);
    if (headers) Stop.addHeaders(builder, headers);
    if (body) Stop.addBody(builder, body);
    actionOffset = Stop.endStop(builder);
    actionType = Action.Stop;
  } else if (action.type === 'rewrite') {
    const r = action.rewrite;
    const path = r.path !== undefined ? createString(r.path) : 0;
    const headers = r.headers.length ? createEntries(r.headers) : 0;
    const args = r.args.length ? createEntries(r.args) : 0;
    const respHeaders = r.respHeaders.length ? createEntries(r.respHeaders) : 0;
    const body = r.body && r.body.length ? builder.createByteVector(r.body) : 0;
    Rewrite.startRewrite(builder);
    if (path) Rewrite.addPath(builder, path);
    if (headers) Rewrite.addHeaders(builder, headers);
    if (args) Rewrite.addArgs(builder, args);
    if (respHeaders) Rewrite.addRespHeaders(builder, respHeaders);
    if (body) Rewrite.addBody(builder, body);
    actionOffset = Rewrite.endRewrite(builder);
    actionType = Action.Rewrite;
  }
  ReqCallResp.startResp(builder);
  // id 0 is APISIX's default: force it so the answer is never a zero-length table.
  builder.forceDefaults(true);
  ReqCallResp.addId(builder, id);
  builder.forceDefaults(false);
  if (actionType !== Action.NONE) {
    ReqCallResp.addActionType(builder, actionType);
    ReqCallResp.addAction(builder, actionOffset);
  }
  return finish(MessageType.HttpReqCall, ReqCallResp.endResp(builder));
}

/**
 * Where the `id` of an HTTPReqCall answer frame (built by encodeHttpReqCallResp, which always
 * stores the id) sits, so that a constant answer can be encoded once and re-stamped per call.
 */
export function reqCallRespIdOffset(frame: Buffer): number {
  const payload = frame.subarray(4);
  const root = payload.readUInt32LE(0);
  const vtable = root - payload.readInt32LE(root);
  return 4 + root + payload.readUInt16LE(vtable + 4);
}

export type ExtraInfoQuestion = { readonly kind: 'var'; readonly name: string } | { readonly kind: 'reqBody' } | { readonly kind: 'respBody' };

export function encodeExtraInfoReq(q: ExtraInfoQuestion): Buffer {
  let type: Info;
  let offset: flatbuffers.Offset;
  if (q.kind === 'var') {
    offset = Var.createVar(builder, createString(q.name));
    type = Info.Var;
  } else if (q.kind === 'reqBody') {
    ReqBody.startReqBody(builder);
    offset = ReqBody.endReqBody(builder);
    type = Info.ReqBody;
  } else {
    RespBody.startRespBody(builder);
    offset = RespBody.endRespBody(builder);
    type = Info.RespBody;
  }
  ExtraInfoReq.startReq(builder);
  ExtraInfoReq.addInfoType(builder, type);
  ExtraInfoReq.addInfo(builder, offset);
  return finish(MessageType.ExtraInfo, ExtraInfoReq.endReq(builder));
}

export interface RespCallAnswer {
  readonly status: number;
  readonly headers: readonly TextPair[];
  readonly body?: Uint8Array | undefined;
}

export function encodeHttpRespCallResp(id: number, answer: RespCallAnswer): Buffer {
  const headers = answer.headers.length ? createEntries(answer.headers) : 0;
  const body = answer.body && answer.body.length ? builder.createByteVector(answer.body) : 0;
  RespCallResp.startResp(builder);
  builder.forceDefaults(true);
  RespCallResp.addId(builder, id);
  builder.forceDefaults(false);
  if (answer.status) RespCallResp.addStatus(builder, answer.status);
  if (headers) RespCallResp.addHeaders(builder, headers);
  if (body) RespCallResp.addBody(builder, body);
  return finish(MessageType.HttpRespCall, RespCallResp.endResp(builder));
}
