import type { TextPair } from './request.js';

/** The upstream response of an HTTPRespCall (ext-plugin-post-resp), as a plugin sees it. */
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
  /** Sets a response header (replaces every earlier value). */
  setHeader(name: string, value: string): void;
  /** Removes a response header. */
  deleteHeader(name: string): void;
  /** Replaces the response body sent to the client. */
  setBody(body: string | Uint8Array): void;
  /** Schedules work for after the reply to APISIX is written. */
  afterReply(task: () => void): void;
}
