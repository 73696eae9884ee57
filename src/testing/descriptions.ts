import type { HttpMethod, TextPair } from '../plugin-api/request.js';
import type { ExtraInfoQuestion } from '../protocol/messages.js';

/** One entry of a route's ext-plugin `conf` array: a plugin name and its conf (an object, or raw JSON text). */
export interface ConfEntry {
  readonly name: string;
  /** Serialised with JSON.stringify unless it is already a string; undefined sends `""` (the empty conf). */
  readonly conf?: unknown;
}

/** Repeated values: a list sends the header or arg once per item. */
export type TextMap = Readonly<Record<string, string | readonly string[]>>;

/** A request as APISIX describes it to the runner, plus what APISIX could answer when asked. */
export interface RequestDescription {
  /** Default GET. */
  readonly method?: HttpMethod;
  /** Decoded path without the query (nginx `$uri`). Default `/`. */
  readonly path?: string;
  /** Query args; `null` is a valueless arg (`?flag`). */
  readonly args?: Readonly<Record<string, string | readonly string[] | null>>;
  /** Request headers (names are sent lower case, as APISIX does). */
  readonly headers?: TextMap;
  /** Client address, IPv4 or IPv6 text. Default `127.0.0.1`. */
  readonly srcIp?: string;
  /** nginx variables the plugin may ask for (`req.var(name)`); numbers travel as text. */
  readonly vars?: Readonly<Record<string, string | number>>;
  /** The request body the plugin may ask for (`req.body()`). */
  readonly body?: string | Uint8Array;
}

/** An upstream response as APISIX describes it in an HTTPRespCall (ext-plugin-post-resp). */
export interface ResponseDescription {
  /** Upstream status. Default 200. */
  readonly status?: number;
  /** Upstream headers, names as the upstream spelled them. */
  readonly headers?: TextMap;
  /** nginx variables the plugin may ask for (`res.var(name)`). */
  readonly vars?: Readonly<Record<string, string | number>>;
  /** The upstream body the plugin may ask for (`res.body()`). */
  readonly body?: string | Uint8Array;
}

/**
 * What happens when a plugin asks for a var or a body the description does not give:
 * `'error'` (default) answers like APISIX (nil) and then fails the run with
 * MissingRequestDataError naming what to add; `'undefined'` just answers nil.
 */
export type MissingDataPolicy = 'error' | 'undefined';

/** A plugin asked for a var or body that the test's description does not give. */
export class MissingRequestDataError extends Error {
  readonly code = 'A6_ERR_TEST_MISSING_DATA';
  constructor(readonly questions: readonly ExtraInfoQuestion[]) {
    super(
      `the plugin asked for ${questions.map(describeQuestion).join(', ')}, which the test does not give: ` +
        'add it to the description (vars: {...} / body), or pass { missing: "undefined" } to answer nil as APISIX does for an unset value',
    );
  }
}

export function describeQuestion(q: ExtraInfoQuestion): string {
  return q.kind === 'var' ? `var "${q.name}"` : q.kind === 'reqBody' ? 'the request body' : 'the response body';
}

/** Header or arg map → wire entries, in insertion order. */
export function textMapEntries(map: Readonly<Record<string, string | readonly string[] | null>> | undefined, lowerCaseNames: boolean): TextPair[] {
  const out: TextPair[] = [];
  for (const [rawName, v] of Object.entries(map ?? {})) {
    const name = lowerCaseNames ? rawName.toLowerCase() : rawName;
    if (v === null) out.push({ name, value: undefined });
    else if (typeof v === 'string') out.push({ name, value: v });
    else for (const item of v) out.push({ name, value: item });
  }
  return out;
}

/** The conf entries as APISIX sends them in PrepareConf (name → JSON text). */
export function confPairs(conf: readonly ConfEntry[]): TextPair[] {
  return conf.map((e) => ({ name: e.name, value: e.conf === undefined ? '' : typeof e.conf === 'string' ? e.conf : JSON.stringify(e.conf) }));
}

/**
 * Answers one ExtraInfo question from a description, the way APISIX would (tostring of the
 * value; nil when unset), recording every question and the unanswerable ones.
 */
export class QuestionAnswerer {
  readonly asked: ExtraInfoQuestion[] = [];
  private readonly missing: ExtraInfoQuestion[] = [];

  constructor(
    private readonly source: { readonly vars?: Readonly<Record<string, string | number>> | undefined; readonly body?: string | Uint8Array | undefined },
    private readonly bodyKind: 'reqBody' | 'respBody',
    private readonly policy: MissingDataPolicy,
  ) {}

  answer(q: ExtraInfoQuestion): Buffer | undefined {
    this.asked.push(q);
    let value: string | number | Uint8Array | undefined;
    if (q.kind === 'var') value = this.source.vars && Object.hasOwn(this.source.vars, q.name) ? this.source.vars[q.name] : undefined;
    else if (q.kind === this.bodyKind) value = this.source.body;
    if (value === undefined) {
      this.missing.push(q);
      return undefined;
    }
    return typeof value === 'string' || typeof value === 'number' ? Buffer.from(String(value)) : Buffer.from(value);
  }

  /** Throws MissingRequestDataError when policy is 'error' and something asked was not given. */
  check(): void {
    if (this.policy === 'error' && this.missing.length > 0) throw new MissingRequestDataError(this.missing);
  }
}
