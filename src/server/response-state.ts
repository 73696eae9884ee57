import type { HttpResponse } from '../plugin-api/response.js';
import type { TextPair } from '../plugin-api/request.js';
import { encodeHttpRespCallResp, type HttpRespCallRequest, type RespCallAnswer } from '../protocol/messages.js';
import { EntryEdits, toBytes } from './header-edits.js';
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
  setBody(body: string | Uint8Array): void { this.bodyEdit = toBytes(body); }
  afterReply(task: () => void): void { (this.afterReplyTasks ??= []).push(task); }

  /** The answer frame for APISIX. */
  encodeReply(): { frame: Buffer; outcome: string } {
    return { frame: encodeHttpRespCallResp(this.msg.id, this.toAnswer()), outcome: 'ok' };
  }

  /**
   * The answer for APISIX: status 0 keeps the upstream's. APISIX takes a non-empty header
   * list as the response's headers, so once any header is edited the whole set is sent
   * (upstream headers with the edits applied) plus a valueless entry per deleted name, which
   * is right whether APISIX replaces the set or applies the entries one by one.
   */
  toAnswer(): RespCallAnswer {
    let headers: readonly TextPair[] = [];
    if (this.headerEdits.size > 0) {
      const deleted = this.headerEdits.toEntries().filter((e) => e.value === undefined);
      headers = [...this.headerEntries(), ...deleted];
    }
    return { status: this.statusEdit ?? 0, headers, body: this.bodyEdit };
  }
}
