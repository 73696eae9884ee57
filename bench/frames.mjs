/**
 * The frames the load generator sends, built once with the project's generated FlatBuffers
 * code and then reused: the only per-call change is the 4-byte `id` of HTTPReqCall, patched
 * in place (APISIX ignores reply ids, but the runner must still decode one per call).
 *
 * The generated module and the flatbuffers runtime are passed in, so the same code serves
 * the benchmark (dist/, after `npm run build`) and a vitest test (src/, through vite).
 */

const FRAME_HEADER_BYTES = 4;

/** Message types of the frame header (PROTOCOL.md). */
export const FRAME_TYPE = Object.freeze({ error: 0, prepareConf: 1, httpReqCall: 2, extraInfo: 3, httpRespCall: 4 });

/**
 * Twelve request headers of a plain browser-ish GET behind a load balancer: with the path,
 * arg and source address they make a ~918-byte HTTPReqCall frame, the size APISIX sends for
 * an ordinary request (the reference measurement).
 */
export const GET_HEADERS = Object.freeze([
  ['host', 'httpbin.example.com'],
  ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0'],
  ['accept', 'text/html,application/xhtml+xml,*/*;q=0.8'],
  ['accept-encoding', 'gzip, deflate, br'],
  ['accept-language', 'en-US,en;q=0.9'],
  ['cache-control', 'no-cache'],
  ['x-forwarded-for', '203.0.113.195'],
  ['x-forwarded-proto', 'https'],
  ['x-request-id', '7f3c2a9e4b1d4c8e'],
  ['cookie', 'session=3f9a1c7e5b; theme=dark'],
  ['authorization', 'Bearer 4b1d4c8e9a6f2d5e8b1c'],
  ['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
]);

/** Method codes of A6.Method used here. */
const METHOD_GET = 0;
const METHOD_POST = 2;

/** Builds `type` + payload into one frame buffer (same layout as src/protocol/frame.ts). */
export function frameOf(type, payload) {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  frame[0] = type;
  frame[1] = (payload.byteLength >>> 16) & 0xff;
  frame[2] = (payload.byteLength >>> 8) & 0xff;
  frame[3] = payload.byteLength & 0xff;
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** Reads the payload length of a frame header at `offset`. */
export function payloadLength(buf, offset) {
  return (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3];
}

/**
 * Creates the frame factory over the generated code.
 * @param {typeof import('../src/protocol/generated/a6.js')} a6 the generated namespace module
 * @param {typeof import('flatbuffers')} flatbuffers the flatbuffers runtime
 */
export function createBenchFrames(a6, flatbuffers) {
  const { TextEntry } = a6;
  const PrepareConfReq = a6.PrepareConf.Req;
  const PrepareConfResp = a6.PrepareConf.Resp;
  const ReqCallReq = a6.HTTPReqCall.Req;
  const ReqCallResp = a6.HTTPReqCall.Resp;
  const ExtraInfoReq = a6.ExtraInfo.Req;
  const ExtraInfoResp = a6.ExtraInfo.Resp;
  const ErrResp = a6.Err.Resp;

  /**
   * A call frame whose id callers patch in place: two encodings that differ only in the id
   * reveal its offset without reading vtables.
   */
  function patchableFrame(type, encodeWithId) {
    const one = encodeWithId(0x01020304);
    const two = encodeWithId(0x0a0b0c0d);
    let idOffset = -1;
    for (let i = 0; i < one.length; i++) {
      if (one[i] !== two[i]) { idOffset = i; break; }
    }
    if (idOffset < 0 || one.length !== two.length) throw new Error('could not locate the id field');
    return { frame: frameOf(type, one), idOffset: FRAME_HEADER_BYTES + idOffset };
  }

  function entries(builder, pairs) {
    const offsets = pairs.map(([name, value]) => {
      const n = builder.createString(name);
      const v = value === undefined ? 0 : builder.createString(value);
      TextEntry.startTextEntry(builder);
      TextEntry.addName(builder, n);
      if (v) TextEntry.addValue(builder, v);
      return TextEntry.endTextEntry(builder);
    });
    builder.startVector(4, offsets.length, 4);
    for (let i = offsets.length - 1; i >= 0; i--) builder.addOffset(offsets[i]);
    return builder.endVector();
  }

  /** PrepareConf.Req: `conf` is [{name, value}] in execution order, `key` APISIX's idempotency key. */
  function prepareConf(conf, key) {
    const b = new flatbuffers.Builder(256);
    const confVec = entries(b, conf.map((e) => [e.name, e.value]));
    const keyOff = b.createString(key);
    PrepareConfReq.startReq(b);
    PrepareConfReq.addConf(b, confVec);
    PrepareConfReq.addKey(b, keyOff);
    b.finish(PrepareConfReq.endReq(b));
    return frameOf(FRAME_TYPE.prepareConf, b.asUint8Array());
  }

  function reqCallPayload(id, token, { method, path, args, headers, srcIp }) {
    const b = new flatbuffers.Builder(1024);
    const ip = ReqCallReq.createSrcIpVector(b, srcIp);
    const p = b.createString(path);
    const a = entries(b, args);
    const h = entries(b, headers);
    ReqCallReq.startReq(b);
    ReqCallReq.addId(b, id);
    ReqCallReq.addSrcIp(b, ip);
    // APISIX leaves scalars at their default out of the table (GET = 0); so do we.
    if (method !== METHOD_GET) ReqCallReq.addMethod(b, method);
    ReqCallReq.addPath(b, p);
    ReqCallReq.addArgs(b, a);
    ReqCallReq.addHeaders(b, h);
    ReqCallReq.addConfToken(b, token);
    b.finish(ReqCallReq.endReq(b));
    return b.asUint8Array().slice();
  }

  /**
   * The HTTPReqCall frame of the benchmark request and where its id lives, so callers can
   * patch the id per call. `bodySize` > 0 turns it into a POST with content-type and
   * content-length (still 12 headers), whose body the runner must fetch with ExtraInfo.
   */
  function httpReqCall(token, { bodySize = 0 } = {}) {
    const headers = GET_HEADERS.map(([n, v]) => [n, v]);
    if (bodySize > 0) {
      // Swap two headers a GET would carry for the two a body needs: the count stays 12.
      headers[5] = ['content-type', 'application/json'];
      headers[7] = ['content-length', String(bodySize)];
    }
    const shape = {
      method: bodySize > 0 ? METHOD_POST : METHOD_GET,
      path: bodySize > 0 ? '/post' : '/get',
      args: [['x', '1']],
      headers,
      srcIp: new Uint8Array([192, 0, 2, 10]),
    };
    return patchableFrame(FRAME_TYPE.httpReqCall, (id) => reqCallPayload(id, token, shape));
  }

  /**
   * The HTTPRespCall frame (ext-plugin-post-resp) APISIX sends with the upstream's answer:
   * `status` and `headers`, for `token` (the post-resp phase's own conf token), and where its id
   * lives so callers can patch it per call. APISIX builds it in
   * apisix/plugins/ext-plugin/init.lua (`rpc_call` for RPC_HTTP_RESP_CALL): id, status,
   * headers, conf token; the body is only sent when the runner asks (ExtraInfo RespBody).
   */
  function httpRespCall(token, { status = 200, headers = [['content-type', 'application/json'], ['content-length', '0']] } = {}) {
    const RespCallReq = a6.HTTPRespCall.Req;
    const encode = (id) => {
      const b = new flatbuffers.Builder(256);
      const h = entries(b, headers);
      RespCallReq.startReq(b);
      RespCallReq.addId(b, id);
      RespCallReq.addStatus(b, status);
      RespCallReq.addHeaders(b, h);
      RespCallReq.addConfToken(b, token);
      b.finish(RespCallReq.endReq(b));
      return b.asUint8Array().slice();
    };
    return patchableFrame(FRAME_TYPE.httpRespCall, encode);
  }

  /** ExtraInfo.Resp carrying `bytes` (undefined = APISIX had no value: `result` absent). */
  function extraInfoAnswer(bytes) {
    const b = new flatbuffers.Builder(bytes ? bytes.length + 64 : 64);
    const result = bytes === undefined ? 0 : ExtraInfoResp.createResultVector(b, bytes);
    ExtraInfoResp.startResp(b);
    if (result) ExtraInfoResp.addResult(b, result);
    b.finish(ExtraInfoResp.endResp(b));
    return frameOf(FRAME_TYPE.extraInfo, b.asUint8Array());
  }

  /** What an ExtraInfo question asks: { kind: 'var', name } | { kind: 'reqBody' } | { kind: 'respBody' } | { kind: 'unknown' }. */
  function readExtraInfoQuestion(payload) {
    const req = ExtraInfoReq.getRootAsReq(new flatbuffers.ByteBuffer(payload));
    const type = req.infoType();
    if (type === a6.ExtraInfo.Info.Var) {
      const v = req.info(new a6.ExtraInfo.Var());
      return { kind: 'var', name: v ? v.name() ?? '' : '' };
    }
    if (type === a6.ExtraInfo.Info.ReqBody) return { kind: 'reqBody' };
    if (type === a6.ExtraInfo.Info.RespBody) return { kind: 'respBody' };
    return { kind: 'unknown' };
  }

  /** Token of a PrepareConf.Resp payload. */
  function readConfToken(payload) {
    return PrepareConfResp.getRootAsResp(new flatbuffers.ByteBuffer(payload)).confToken();
  }

  /** Action name of an HTTPReqCall.Resp payload: 'none' | 'stop' | 'rewrite'. */
  function readReplyAction(payload) {
    const t = ReqCallResp.getRootAsResp(new flatbuffers.ByteBuffer(payload)).actionType();
    return t === a6.HTTPReqCall.Action.Stop ? 'stop' : t === a6.HTTPReqCall.Action.Rewrite ? 'rewrite' : 'none';
  }

  /** Code of an Err.Resp payload. */
  function readErrorCode(payload) {
    return ErrResp.getRootAsResp(new flatbuffers.ByteBuffer(payload)).code();
  }

  // ---- the floor server's canned answers -------------------------------------------------
  /** PrepareConf.Resp with `token`. */
  function prepareConfReply(token) {
    const b = new flatbuffers.Builder(64);
    b.finish(PrepareConfResp.createResp(b, token));
    return frameOf(FRAME_TYPE.prepareConf, b.asUint8Array());
  }

  /** HTTPReqCall.Resp without an action (the request goes on unchanged). */
  function emptyReqCallReply(id) {
    const b = new flatbuffers.Builder(64);
    ReqCallResp.startResp(b);
    ReqCallResp.addId(b, id);
    b.finish(ReqCallResp.endResp(b));
    return frameOf(FRAME_TYPE.httpReqCall, b.asUint8Array());
  }

  /** ExtraInfo.Req asking for the request body. */
  function reqBodyQuestion() {
    const b = new flatbuffers.Builder(64);
    a6.ExtraInfo.ReqBody.startReqBody(b);
    const body = a6.ExtraInfo.ReqBody.endReqBody(b);
    ExtraInfoReq.startReq(b);
    ExtraInfoReq.addInfoType(b, a6.ExtraInfo.Info.ReqBody);
    ExtraInfoReq.addInfo(b, body);
    b.finish(ExtraInfoReq.endReq(b));
    return frameOf(FRAME_TYPE.extraInfo, b.asUint8Array());
  }

  return {
    prepareConf,
    httpReqCall,
    httpRespCall,
    extraInfoAnswer,
    readExtraInfoQuestion,
    readConfToken,
    readReplyAction,
    readErrorCode,
    prepareConfReply,
    emptyReqCallReply,
    reqBodyQuestion,
  };
}
