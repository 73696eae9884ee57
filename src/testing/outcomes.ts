import type { TextPair } from '../plugin-api/request.js';
import type { ExtraInfoQuestion } from '../protocol/messages.js';

export type { ExtraInfoQuestion };

/** Every outcome lists the ExtraInfo questions (vars, bodies) the plugins asked, in order. */
interface Asked {
  readonly asked: readonly ExtraInfoQuestion[];
}

/** A plugin stopped the request: APISIX answers the client with this. */
export interface StopOutcome extends Asked {
  readonly kind: 'stop';
  readonly status: number;
  readonly headers: readonly TextPair[];
  readonly body: Buffer | undefined;
}

/**
 * The request goes upstream changed. Each list holds the changes only: an entry with a value
 * sets that name (a name repeated = several values), an entry whose value is undefined removes it.
 */
export interface RewriteOutcome extends Asked {
  readonly kind: 'rewrite';
  /** The new upstream path (decoded), or undefined when unchanged. */
  readonly path: string | undefined;
  readonly headers: readonly TextPair[];
  readonly args: readonly TextPair[];
  /** Headers added to the response to the client. */
  readonly responseHeaders: readonly TextPair[];
  /** The new request body, or undefined when unchanged. */
  readonly body: Buffer | undefined;
}

/** No plugin changed anything: the request goes upstream as it came. */
export interface NoneOutcome extends Asked {
  readonly kind: 'none';
}

/**
 * The runner answered with an error, so APISIX answers 503 (or skips the runner when the route
 * sets `allow_degradation`): a fail-closed plugin's conf is invalid (`BAD_REQUEST`) or it threw
 * (`SERVICE_UNAVAILABLE`).
 */
export interface ErrorOutcome extends Asked {
  readonly kind: 'error';
  readonly code: 'BAD_REQUEST' | 'SERVICE_UNAVAILABLE' | 'CONF_TOKEN_NOT_FOUND';
  /** Why, as the runner logs it (in-process) or as APISIX would log it (over the socket). */
  readonly message: string;
}

/** The outcome of an HTTPReqCall (ext-plugin-pre-req / post-req). */
export type RequestOutcome = StopOutcome | RewriteOutcome | NoneOutcome | ErrorOutcome;

/**
 * The outcome of an HTTPRespCall (ext-plugin-post-resp): what the client gets instead of the
 * upstream's response. undefined = the upstream's is kept.
 */
export interface ResponseChangeOutcome extends Asked {
  readonly kind: 'response';
  readonly status: number | undefined;
  /**
   * The headers the client receives: the upstream's minus removed plus set, with the framing the
   * runner sets (content-length of the body sent; hop-by-hop headers dropped). The runner always
   * sends the full set, because APISIX replaces the client's headers with the list it gets.
   */
  readonly headers: readonly TextPair[] | undefined;
  readonly body: Buffer | undefined;
}

export type ResponseOutcome = ResponseChangeOutcome | ErrorOutcome;
