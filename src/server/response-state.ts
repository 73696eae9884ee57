import { EmptyResponseBodyError, type HttpResponse } from '../plugin-api/response.js';
import type { TextPair } from '../plugin-api/request.js';
import { encodeHttpRespCallResp, type HttpRespCallRequest, type RespCallAnswer } from '../protocol/messages.js';
import { EntryEdits, allValues, toBytes } from './header-edits.js';
import { ExtraInfoCache, type AskExtraInfo } from './extra-info.js';

/** The HttpResponse view of one HTTPRespCall, collecting every plugin's changes. */
export class ResponseState implements HttpResponse {
  private readonly headerEdits = new EntryEdits(true);
  private statusEdit: number | undefined;
  private bodyEdit: Uint8Array | undefined;
  private readonly extra: ExtraInfoCache;
  afterReplyTasks: Array<() => void> | undefined;

  constructor(private readonly msg: HttpRespCallRequest, ask: AskExtraInfo) {
    this.extra = new ExtraInfoCache(ask, 'respBody');
  }

  get id(): number { return this.msg.id; }
  get status(): number { return this.statusEdit ?? this.msg.status; }
  get upstreamStatus(): number { return this.msg.status; }

  header(name: string): string | undefined { return this.headerEdits.first(this.msg.headers, name); }
  headerValues(name: string): string[] { return this.headerEdits.all(this.msg.headers, name); }
  headerEntries(): readonly TextPair[] { return this.headerEdits.apply(this.msg.headers); }
  var(name: string): Promise<string | undefined> { return this.extra.var(name); }
  body(): Promise<Buffer | undefined> { return this.extra.body(); }

  setStatus(status: number): void { this.statusEdit = status; }
  setHeader(name: string, value: string): void { this.headerEdits.set(name, [value]); }
  deleteHeader(name: string): void { this.headerEdits.set(name, null); }
  setBody(body: string | Uint8Array): void {
    const bytes = toBytes(body);
    if (bytes.length === 0) throw new EmptyResponseBodyError();
    this.bodyEdit = bytes;
  }
  afterReply(task: () => void): void { (this.afterReplyTasks ??= []).push(task); }

  /** The answer frame for APISIX. */
  encodeReply(): { frame: Buffer; outcome: string } {
    return { frame: encodeHttpRespCallResp(this.msg.id, this.toAnswer()), outcome: 'ok' };
  }

  /**
   * The answer for APISIX. ext-plugin init.lua (the HTTPRespCall handler) applies it like this:
   * with a non-empty header list it sets exactly those headers, unfiltered, and none of the
   * upstream's; with an empty list it copies the upstream's minus connection, content-length,
   * transfer-encoding, location, server, www-authenticate, content-encoding, content-type,
   * content-location and content-language. The second path loses headers the client needs, so
   * the answer always carries the full set: the upstream's headers with the plugins' edits,
   * minus hop-by-hop headers (which nginx would send twice), with a content-length that matches
   * the body sent, and a valueless entry per deleted name (APISIX unsets it; it also keeps the
   * list non-empty when every header was deleted). Status 0 keeps the upstream's.
   */
  toAnswer(): RespCallAnswer {
    const status = this.statusEdit ?? 0;
    return { status, headers: this.replyHeaders(status || this.msg.status), body: this.bodyEdit };
  }

  private replyHeaders(finalStatus: number): TextPair[] {
    const body = this.bodyEdit;
    // A new body is the plugin's bytes: the upstream's encoding no longer describes it.
    const dropEncoding = body !== undefined && this.headerEdits.get('content-encoding') === undefined;
    const out: TextPair[] = [];
    for (const e of this.headerEntries()) {
      const name = e.name.toLowerCase();
      if (HOP_BY_HOP.has(name) || name === 'content-length') continue;
      if (dropEncoding && name === 'content-encoding') continue;
      out.push(e);
    }
    const length = bodylessStatus(finalStatus) ? undefined : body !== undefined ? body.length : this.upstreamContentLength();
    if (length !== undefined) out.push({ name: 'content-length', value: String(length) });
    for (const e of this.headerEdits.toEntries()) {
      const name = e.name.toLowerCase();
      if (e.value === undefined && !HOP_BY_HOP.has(name) && name !== 'content-length') out.push(e);
    }
    return out;
  }

  /**
   * The upstream's content-length when it still describes the body APISIX will stream (the
   * body is unchanged and the upstream did not also send transfer-encoding); else undefined and
   * nginx frames the body itself (chunked). Kept so that a HEAD answer keeps its length.
   */
  private upstreamContentLength(): number | undefined {
    const values = allValues(this.msg.headers, 'content-length', true);
    if (values.length !== 1 || allValues(this.msg.headers, 'transfer-encoding', true).length > 0) return undefined;
    const v = values[0]!.trim();
    return /^\d{1,15}$/.test(v) ? Number(v) : undefined;
  }
}

/** Headers that describe one connection, never forwarded (RFC 9110 §7.6.1, plus proxy-connection). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

/** Statuses nginx sends without a body (and without content-length for 204). */
function bodylessStatus(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}
