import type { HttpMethod, HttpRequest, StopResponse, TextPair } from '../plugin-api/request.js';
import { encodeHttpReqCallResp, reqCallRespIdOffset, type HttpReqCallMessage, type ReqCallAction } from '../protocol/messages.js';
import { EntryEdits, headerInitEntries, toBytes } from './header-edits.js';
import { ExtraInfoCache, type AskExtraInfo } from './extra-info.js';
import { RAW_CALL, RAW_HEADERS, type RawCall, type RawHeaders } from './raw-headers.js';

/** An encoded answer and where its id sits, re-stamped with each call's id. */
interface AnswerTemplate { readonly frame: Buffer; readonly idAt: number }

/** Encoded answers of frozen StopResponse objects (e.g. `say`'s). */
const frozenStops = new WeakMap<StopResponse, AnswerTemplate>();

/**
 * The answer of a call no plugin changed: the commonest (a mirror, a check that passes). The
 * FlatBuffers builder cost about a microsecond per call for these 28 bytes; a copy of them with
 * the call's id written in costs a tenth (docs/performance.md, "Mirror dispatch, twelfth pass").
 */
let noAction: AnswerTemplate | undefined;

function templateOf(frame: Buffer): AnswerTemplate {
  return { frame, idAt: reqCallRespIdOffset(frame) };
}

/** The template's bytes with `id` in place of its id. */
function stamped(t: AnswerTemplate, id: number): Buffer {
  const frame = Buffer.allocUnsafe(t.frame.length);
  t.frame.copy(frame);
  frame.writeUInt32LE(id >>> 0, t.idAt);
  return frame;
}

/** The HttpRequest view of one HTTPReqCall, collecting every plugin's edits. */
export class RequestState implements HttpRequest {
  private readonly headerEdits = new EntryEdits(true);
  private readonly argEdits = new EntryEdits(false);
  private readonly respHeaderEdits = new EntryEdits(true);
  private pathEdit: string | undefined;
  private bodyEdit: Uint8Array | undefined;
  private stopResponse: StopResponse | undefined;
  private extra: ExtraInfoCache | undefined;
  /** Tasks to run once the reply is written; read by the connection. */
  afterReplyTasks: Array<() => void> | undefined;

  constructor(private readonly msg: HttpReqCallMessage, private readonly ask: AskExtraInfo) {}

  get id(): number { return this.msg.id; }
  get method(): HttpMethod { return this.msg.method; }
  get originalPath(): string { return this.msg.path; }
  get path(): string { return this.pathEdit ?? this.msg.path; }
  get srcIp(): string { return this.msg.srcIp; }
  get stopped(): boolean { return this.stopResponse !== undefined; }

  header(name: string): string | undefined {
    const edit = this.headerEdits.get(name);
    if (edit !== undefined) return edit === null ? undefined : edit[0];
    return this.msg.header(name);
  }
  headerValues(name: string): string[] { return this.headerEdits.all(this.msg.headers, name); }
  headerEntries(): readonly TextPair[] { return this.headerEdits.apply(this.msg.headers); }
  /** The call's header bytes while no plugin has edited a header (raw-headers.ts). */
  [RAW_HEADERS](): RawHeaders | undefined {
    if (this.headerEdits.size > 0) return undefined;
    return { bytes: this.msg.bytes, spans: this.msg.headerSpans };
  }

  /** The call's bytes and arg spans while no plugin has edited the path or an arg (raw-headers.ts). */
  [RAW_CALL](): RawCall | undefined {
    if (this.pathEdit !== undefined || this.argEdits.size > 0) return undefined;
    return { bytes: this.msg.bytes, argSpans: this.msg.argSpans };
  }

  arg(name: string): string | undefined { return this.argEdits.first(this.msg.args, name); }
  argValues(name: string): string[] { return this.argEdits.all(this.msg.args, name); }
  argEntries(): readonly TextPair[] { return this.argEdits.apply(this.msg.args); }

  var(name: string): Promise<string | undefined> {
    return (this.extra ??= new ExtraInfoCache(this.ask, 'reqBody')).var(name);
  }
  body(): Promise<Buffer | undefined> {
    return (this.extra ??= new ExtraInfoCache(this.ask, 'reqBody')).body();
  }

  setPath(path: string): void { this.pathEdit = path; }
  setHeader(name: string, value: string): void { this.headerEdits.set(name, [value]); }
  deleteHeader(name: string): void { this.headerEdits.set(name, null); }
  setArg(name: string, value: string | readonly string[]): void {
    this.argEdits.set(name, typeof value === 'string' ? [value] : [...value]);
  }
  deleteArg(name: string): void { this.argEdits.set(name, null); }
  setBody(body: string | Uint8Array): void { this.bodyEdit = toBytes(body); }
  setResponseHeader(name: string, value: string): void { this.respHeaderEdits.set(name, [value]); }
  stop(response: StopResponse = {}): void { this.stopResponse = response; }
  afterReply(task: () => void): void { (this.afterReplyTasks ??= []).push(task); }

  /** The answer frame; a Stop with a frozen response object is encoded once and reused. */
  encodeReply(): { frame: Buffer; outcome: ReqCallAction['type'] } {
    const stop = this.stopResponse;
    if (stop && Object.isFrozen(stop)) {
      let cached = frozenStops.get(stop);
      if (!cached) {
        cached = templateOf(encodeHttpReqCallResp(0, this.toAction()));
        frozenStops.set(stop, cached);
      }
      return { frame: stamped(cached, this.msg.id), outcome: 'stop' };
    }
    if (!stop && this.unchanged()) {
      noAction ??= templateOf(encodeHttpReqCallResp(0, { type: 'none' }));
      return { frame: stamped(noAction, this.msg.id), outcome: 'none' };
    }
    const action = this.toAction();
    return { frame: encodeHttpReqCallResp(this.msg.id, action), outcome: action.type };
  }

  /** True when no plugin edited anything a Rewrite would carry. */
  private unchanged(): boolean {
    return this.pathEdit === undefined && this.bodyEdit === undefined && this.headerEdits.size === 0
      && this.argEdits.size === 0 && this.respHeaderEdits.size === 0;
  }

  /** The one answer for APISIX: Stop wins, else a Rewrite of everything edited, else none. */
  toAction(): ReqCallAction {
    const stop = this.stopResponse;
    if (stop) {
      return {
        type: 'stop',
        stop: {
          status: stop.status ?? 200,
          headers: headerInitEntries(stop.headers),
          body: stop.body === undefined ? undefined : toBytes(stop.body),
        },
      };
    }
    if (this.unchanged()) return { type: 'none' };
    return {
      type: 'rewrite',
      rewrite: {
        path: this.pathEdit,
        headers: this.headerEdits.toEntries(),
        args: this.argEdits.toEntries(),
        respHeaders: this.respHeaderEdits.toEntries(),
        body: this.bodyEdit,
      },
    };
  }
}
