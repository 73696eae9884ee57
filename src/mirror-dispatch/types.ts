import type { RawCopy } from './copy-head.js';

/**
 * The dispatch engine's vocabulary. The engine sends prepared HTTP/1.1 or gRPC requests to
 * targets made of one or more nodes; it knows nothing of APISIX, of sampling or of how a copy
 * was built. Its users (proxy-mirror today, a shadow comparison later) hand it requests and an
 * observer, and optionally a sink that receives the target's answer.
 */

/** Connect, send and read timeouts of one request, in milliseconds. */
export interface DispatchTimeouts {
  readonly connectMs: number;
  readonly sendMs: number;
  readonly readMs: number;
}

/** Limits of a target as a whole (all its nodes together). */
export interface DispatchLimits {
  /** Requests in flight at once. */
  readonly maxConcurrency: number;
  /** Requests waiting when maxConcurrency is reached. */
  readonly maxQueue: number;
  /** Bytes the waiting requests may hold. */
  readonly maxQueueBytes: number;
}

/** When a node is taken out after connect failures and how it is retried. */
export interface BreakerSettings {
  /** Consecutive connect failures that take a node out. */
  readonly failures: number;
  /** First retry delay; doubles on every failed probe, up to maxMs; jittered. */
  readonly baseMs: number;
  readonly maxMs: number;
}

/** One node of a target. */
export interface NodeSpec {
  /** `scheme://host:port` as configured; the node's metrics label. */
  readonly label: string;
  /** `host:port` (grpc-js authority) */
  readonly authority: string;
  /** Host name or IP literal (brackets removed). */
  readonly hostname: string;
  readonly port: number;
  /** Relative share of requests (smooth weighted round robin). */
  readonly weight: number;
  /**
   * For an address found by resolving the target's host name: that name. TLS checks it (and
   * sends it as SNI), and gRPC sends it as the default :authority. Absent for a configured node.
   */
  readonly resolvedFrom?: string;
}

/** Everything that shapes a target's transport and limits. */
export interface TargetSpec {
  /** Metrics label of the target as a whole. */
  readonly label: string;
  readonly protocol: 'http' | 'grpc';
  readonly tls: boolean;
  readonly tlsVerify: boolean;
  /** Extra CA certificates (PEM). */
  readonly tlsCa: string | undefined;
  readonly nodes: readonly NodeSpec[];
  /**
   * A single node given by a host name: resolve it and balance over every address it has
   * (re-resolved every `resolveEveryMs`). TLS still checks the name, never the address.
   */
  readonly resolveAll: boolean;
  readonly resolveEveryMs: number;
  /** HTTP only: requests written on one connection before its first answer (default 8; 1: no pipelining). */
  readonly pipelining?: number;
  /**
   * Nameservers (`ip`, `ip:port`, `[ipv6]:port`) asked for the A and AAAA records of a host
   * name; undefined: the system's lookup (getaddrinfo).
   */
  readonly dnsServers?: readonly string[];
  readonly timeouts: DispatchTimeouts;
  readonly limits: DispatchLimits;
  readonly breaker: BreakerSettings;
}

/** A request ready to send. */
export interface DispatchRequest {
  readonly method: string;
  /** Path plus `?query`. For gRPC, the method path. */
  readonly uri: string;
  /** Header entries, names lower case, repeated names kept. */
  readonly headers: readonly (readonly [string, string])[];
  /** Undefined: no body. */
  readonly body: Buffer | undefined;
  /** gRPC only: the request's messages, already split and decompressed. */
  readonly grpcMessages?: readonly Buffer[];
  /** Rough memory the request holds, for the queue's byte bound. */
  readonly sizeBytes: number;
  /**
   * HTTP only: the whole request head, already built and checked by the caller (proxy-mirror
   * builds it from the call's bytes); `method` must match it, `uri` and `headers` only describe
   * it. It must carry a Host header (the node's authority is not added).
   */
  readonly head?: Buffer;
  /**
   * HTTP only: the request's header bytes and the edits to apply, for a head built where the
   * request is sent (copy-head.ts): in a dispatch worker, off the RPC thread.
   */
  readonly raw?: RawCopy;
}

/** Terminal outcome of a request the engine accepted. */
export type DispatchOutcome =
  | '1xx' | '2xx' | '3xx' | '4xx' | '5xx'
  | 'grpc_ok' | 'grpc_error'
  | 'timeout' | 'error' | 'dropped';

/** Why the engine refused a request without sending it. */
export type RefusalReason = 'target_down' | 'closed';

/**
 * What a target answered, for a sink that wants to read it (shadow comparison). The body is
 * kept up to the sink's cap; `truncated` says when the rest was cut off.
 */
export interface DispatchResponse {
  readonly status: number;
  /** Response headers, names lower case. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  readonly truncated: boolean;
  /** Length of the whole body when it was read to its end; undefined when cut at the read limit. */
  readonly bodyBytes: number | undefined;
  /**
   * SHA-256 (hex) of the whole body, for a body over the sink's cap that was read to its end
   * (hashed while reading, so it can be compared without being kept).
   */
  readonly bodySha256: string | undefined;
  /** Node that answered. */
  readonly node: string;
}

/**
 * Optional reader of a target's answer. Without one the engine reads and throws the answer
 * away (up to a fixed cap) and keeps only the outcome.
 */
export interface ResponseSink {
  /** Bytes of the body kept for onResponse (the rest is discarded, `truncated` set). */
  readonly maxBodyBytes: number;
  onResponse(response: DispatchResponse): void;
  /** The request ended without a complete answer. */
  onFailure(outcome: DispatchOutcome, code: string): void;
}

/**
 * The per-request reports of one node of one target, bound once: what `sent`, `finished`
 * and `inflight` of DispatchObserver report for that target and node, without finding the
 * target's and the node's metrics again for every copy (~12 label lookups per copy).
 */
export interface NodeObserver {
  sent(): void;
  /** `seconds` undefined: the duration is not known (copies lost with a worker thread). */
  finished(outcome: DispatchOutcome, seconds: number | undefined): void;
  inflight(delta: number): void;
}

/** The engine's reports (metrics and logs are the observer's business). */
export interface DispatchObserver {
  /** Optional: the reports of one node, bound (else the engine calls the methods below with the labels). */
  bindNode?(target: string, node: string): NodeObserver;
  /** A request was handed to a node. */
  sent(target: string, node: string): void;
  /** Terminal outcome; `seconds` for requests that were sent. */
  finished(target: string, node: string | undefined, outcome: DispatchOutcome, seconds?: number): void;
  /** Refused without being sent (no connect attempt). */
  refused(target: string, reason: RefusalReason): void;
  inflight(target: string, delta: number): void;
  queued(target: string, deltaCount: number, deltaBytes: number): void;
  /** A request failed; `code` is the error code (ECONNREFUSED, READ_TIMEOUT, grpc status…). */
  failed(target: string, node: string, outcome: DispatchOutcome, code: string, message: string): void;
  /** A node was taken out (`open`) or came back (`closed`). Called once per transition. */
  nodeState(target: string, node: string, state: 'open' | 'closed', detail: { code?: string; retryInMs?: number }): void;
  /** The target's queue was full: a request was dropped. */
  dropped(target: string, load: { inflight: number; queued: number }): void;
  /** A dispatch worker thread died and was restarted; `lost` requests in flight were counted as errors. */
  threadRestarted(thread: number, reason: string, lost: number): void;
}

/** What `submit` did with a request. */
export type SubmitResult = 'started' | 'queued' | 'dropped' | 'refused';
