/** HTTP methods APISIX can send (A6.Method). */
export type HttpMethod =
  | 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'MKCOL' | 'COPY' | 'MOVE' | 'OPTIONS'
  | 'PROPFIND' | 'PROPPATCH' | 'LOCK' | 'UNLOCK' | 'PATCH' | 'TRACE';

/** One header or query arg as APISIX sent it; `value` undefined = valueless arg (`?flag`). */
export interface TextPair {
  readonly name: string;
  readonly value: string | undefined;
}

/** A header map for `stop()` and the like: a list value sends the header once per item. */
export type HeaderInit = Readonly<Record<string, string | readonly string[]>>;

/** What a plugin answers the client with when it stops the request. */
export interface StopResponse {
  /** Defaults to 200 (APISIX turns 0 into 200). */
  readonly status?: number;
  readonly headers?: HeaderInit;
  readonly body?: string | Uint8Array;
}

/**
 * The request of an HTTPReqCall, as a plugin sees it. Reads reflect edits made by earlier
 * plugins of the same chain; edits are sent to APISIX as one Rewrite (or one Stop).
 */
export interface HttpRequest {
  /** The call id APISIX chose (worker id << 22 | counter). */
  readonly id: number;
  readonly method: HttpMethod;
  /** Current path (decoded, without query), including edits by earlier plugins. */
  readonly path: string;
  /** The path APISIX sent, before any edit. */
  readonly originalPath: string;
  /** Client address as text (`192.0.2.1`, `2001:db8::1`). */
  readonly srcIp: string;
  /** First value of a header (name case-insensitive), or undefined. */
  header(name: string): string | undefined;
  /** All values of a header, in request order. */
  headerValues(name: string): string[];
  /** Every header entry (names lower case), edits applied. */
  headerEntries(): readonly TextPair[];
  /** First value of a query arg; '' for a valueless arg (`?flag`); undefined when absent. */
  arg(name: string): string | undefined;
  /** All values of a query arg, in order (valueless → ''). */
  argValues(name: string): string[];
  /** Every query arg entry, edits applied. */
  argEntries(): readonly TextPair[];
  /** Reads an nginx variable (`ngx.var[name]`) from APISIX; cached per call. */
  var(name: string): Promise<string | undefined>;
  /** Reads the request body from APISIX; cached per call; undefined when there is none. */
  body(): Promise<Buffer | undefined>;

  /** Sets the upstream path (give it decoded: APISIX escapes it again). */
  setPath(path: string): void;
  /** Sets a request header (replaces every earlier value). */
  setHeader(name: string, value: string): void;
  /** Removes a request header. */
  deleteHeader(name: string): void;
  /** Sets a query arg; a list sends the arg once per item. */
  setArg(name: string, value: string | readonly string[]): void;
  /** Removes a query arg. */
  deleteArg(name: string): void;
  /** Replaces the request body sent upstream. */
  setBody(body: string | Uint8Array): void;
  /** Sets a header on the response to the client (APISIX ignores a fixed list of names). */
  setResponseHeader(name: string, value: string): void;
  /**
   * Answers the client directly; plugins after this one are not run. Pass the same frozen
   * object (Object.freeze, headers included) on every call and the runner encodes it once.
   */
  stop(response?: StopResponse): void;
  /** True once a plugin has called stop(). */
  readonly stopped: boolean;
  /**
   * Schedules work for after the reply to APISIX is written, so that it never delays the
   * request. Exceptions thrown by `task` are logged, never propagated.
   */
  afterReply(task: () => void): void;
}
