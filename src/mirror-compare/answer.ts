/**
 * The seam between the compare room and the code that has the answers.
 *
 * The dispatch engine (which sends the copy) gives a `MirrorAnswer` or a `MirrorFailure` for
 * the candidate and, when the route names a `secondary`, for the secondary too. The post-resp
 * side (ext-plugin-post-resp: HTTPRespCall status and headers, ExtraInfo RespBody for the body)
 * gives a `PrimaryAnswer`. Nothing here knows how either was obtained, so the room has no
 * APISIX protocol or HTTP client knowledge.
 */
import { createHash } from 'node:crypto';

/** Response headers in arrival order, names as sent (compared case-insensitively), repeats kept. */
export type AnswerHeaders = readonly (readonly [name: string, value: string])[];

/**
 * What the comparison needs from one answer. The engine reads at most a cap of the body; it
 * may hash the whole body while reading (cheap, streaming) so bodies over the cap can still be
 * compared by length and hash.
 */
export interface MirrorAnswer {
  readonly status: number;
  readonly headers: AnswerHeaders;
  /** The body as received (still content-encoded), at most the engine's cap. */
  readonly body: Buffer;
  /** True when the body went on past the cap and `body` holds only its start. */
  readonly truncated: boolean;
  /** Length of the whole body, when the engine read it to the end (defaults to body.length when not truncated). */
  readonly bodyBytes?: number;
  /** SHA-256 (hex) of the whole body, when the engine hashed it while reading. */
  readonly bodySha256?: string;
  /** From sending the request to the end of the answer, in milliseconds. */
  readonly durationMs: number;
}

/**
 * The real answer as the post-resp call sees it: HTTPRespCall `status` and `headers`, and the
 * body from ExtraInfo `RespBody` when the route compares bodies (`body` empty and
 * `bodyFetched: false` otherwise). `durationMs` is optional: when absent the room measures from
 * `expect()` (the copy's dispatch) to `recordPrimary()` with its clock.
 */
export interface PrimaryAnswer extends Omit<MirrorAnswer, 'durationMs'> {
  readonly durationMs?: number;
  /** False when the body was not asked from APISIX (body compare off); the body is then not compared. */
  readonly bodyFetched?: boolean;
}

/**
 * Why the engine has no answer for a copy: `timeout` (sent, no answer within the engine's
 * deadline), `error` (sent, failed: refused, reset, TLS…), `not_sent` (dropped before sending:
 * queue full, target closed; counted as `primary_only`, only the real answer exists).
 */
export interface MirrorFailure {
  readonly failure: 'timeout' | 'error' | 'not_sent';
  /** A stable error code for the report (e.g. CONNECT_TIMEOUT, ECONNREFUSED). */
  readonly code?: string;
  readonly durationMs?: number;
}

/** What the engine reports for a copy. */
export type MirrorOutcome = MirrorAnswer | MirrorFailure;

/** Narrows an outcome to a failure. */
export function isFailure<T extends object>(outcome: T | MirrorFailure): outcome is MirrorFailure {
  return 'failure' in outcome;
}

/**
 * An answer as the room holds it while waiting for its pair: the body is kept only up to
 * `maxBodyBytes`; above that only its length and hash are kept (both known only when the whole
 * body was seen, here or by the engine).
 */
export interface HeldAnswer {
  readonly status: number;
  readonly headers: AnswerHeaders;
  /** The whole body (undefined when it was over the cap, truncated, or not fetched). */
  readonly body: Buffer | undefined;
  readonly bodyBytes: number | undefined;
  readonly bodySha256: string | undefined;
  readonly bodyFetched: boolean;
  readonly durationMs: number | undefined;
  /** Bytes this answer holds in memory, for the pending store's byte cap. */
  readonly heldBytes: number;
}

/** Fixed overhead charged per held answer besides its headers and body (object, arrays, strings). */
const ANSWER_OVERHEAD_BYTES = 160;

/**
 * Reduces an answer to what the room keeps: whole bodies up to the cap, length and hash above;
 * with `maxBodyBytes` undefined (bodies not compared) no body at all.
 */
export function holdAnswer(answer: MirrorAnswer | PrimaryAnswer, maxBodyBytes: number | undefined): HeldAnswer {
  let headerBytes = 0;
  for (const [name, value] of answer.headers) headerBytes += name.length + value.length + 32;
  const held = {
    status: answer.status,
    headers: answer.headers.map(([n, v]) => [n, v] as const),
    durationMs: answer.durationMs,
  };
  const fetched = !('bodyFetched' in answer) || answer.bodyFetched !== false;
  if (maxBodyBytes === undefined || !fetched) {
    return { ...held, body: undefined, bodyBytes: undefined, bodySha256: undefined, bodyFetched: false, heldBytes: ANSWER_OVERHEAD_BYTES + headerBytes };
  }
  if (answer.truncated) {
    return { ...held, body: undefined, bodyBytes: answer.bodyBytes, bodySha256: answer.bodySha256, bodyFetched: true, heldBytes: ANSWER_OVERHEAD_BYTES + headerBytes };
  }
  if (answer.body.length > maxBodyBytes) {
    const sha = answer.bodySha256 ?? createHash('sha256').update(answer.body).digest('hex');
    return { ...held, body: undefined, bodyBytes: answer.body.length, bodySha256: sha, bodyFetched: true, heldBytes: ANSWER_OVERHEAD_BYTES + headerBytes };
  }
  // Copied so the room never pins a larger buffer the body was sliced from.
  const body = Buffer.from(answer.body);
  return { ...held, body, bodyBytes: body.length, bodySha256: answer.bodySha256, bodyFetched: true, heldBytes: ANSWER_OVERHEAD_BYTES + headerBytes + body.length };
}
