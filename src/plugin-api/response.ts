import type { TextPair } from './request.js';

/**
 * Thrown by `HttpResponse.setBody` for a zero-length body. APISIX cannot deliver one: its
 * ext-plugin code (apisix/plugins/ext-plugin/init.lua, the HTTPRespCall handler) treats a
 * zero-length body in the answer as "no new body" and sends the upstream's body instead.
 * To answer without a body, set status 204 (nginx sends no body with 204, nor with 304 or to a
 * HEAD request).
 */
export class EmptyResponseBodyError extends Error {
  readonly code = 'A6_ERR_EMPTY_RESPONSE_BODY';
  constructor() {
    super(
      'setBody() was given an empty body, which APISIX cannot send (ext-plugin init.lua ignores a zero-length body and would send the upstream\'s); to answer without a body call setStatus(204) instead',
    );
  }
}

/**
 * The upstream response of an HTTPRespCall (ext-plugin-post-resp), as a plugin sees it.
 *
 * What the client receives: the upstream's status and headers with every plugin's edits
 * applied, and the upstream's body or the one a plugin set. The runner frames it: hop-by-hop
 * headers (connection, keep-alive, transfer-encoding, te, trailer, upgrade, proxy-connection)
 * are never forwarded, `content-length` is the length of the body actually sent (a plugin
 * cannot set it), and a replaced body drops the upstream's `content-encoding` unless a plugin
 * set one itself (the new body is sent as the plugin wrote it).
 */
export interface HttpResponse {
  /** The call id APISIX chose. */
  readonly id: number;
  /** Current status, including a change by an earlier plugin. */
  readonly status: number;
  /** The status the upstream answered. */
  readonly upstreamStatus: number;
  /** First value of a response header (case-insensitive). */
  header(name: string): string | undefined;
  /** All values of a response header. */
  headerValues(name: string): string[];
  /** Every response header entry, edits applied (names as the upstream spelled them). */
  headerEntries(): readonly TextPair[];
  /** Reads an nginx variable from APISIX; cached per call. */
  var(name: string): Promise<string | undefined>;
  /** Reads the upstream response body from APISIX; cached per call. */
  body(): Promise<Buffer | undefined>;

  /** Changes the status sent to the client. */
  setStatus(status: number): void;
  /** Sets a response header (replaces every earlier value); framing headers are the runner's and ignored. */
  setHeader(name: string, value: string): void;
  /** Removes a response header. */
  deleteHeader(name: string): void;
  /** Replaces the response body sent to the client; throws EmptyResponseBodyError for an empty one. */
  setBody(body: string | Uint8Array): void;
  /** Schedules work for after the reply to APISIX is written. */
  afterReply(task: () => void): void;
}
