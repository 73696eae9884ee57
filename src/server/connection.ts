import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameDecoder, FrameTooLargeError, MessageType, messageTypeName } from '../protocol/frame.js';
import {
  ErrCode,
  decodeExtraInfoResp,
  decodeHttpReqCall,
  decodeHttpRespCall,
  decodePrepareConfReq,
  encodeError,
  encodeExtraInfoReq,
  encodeHttpReqCallResp,
  encodePrepareConfResp,
  type ExtraInfoQuestion,
} from '../protocol/messages.js';
import { MalformedPayloadError } from '../protocol/verify.js';
import { CallAbortedError, PluginFailedError, runRequestChain, runResponseChain } from '../plugin-chain.js';
import type { ConfCache } from '../conf-cache.js';
import type { CompiledChain, PluginRegistry } from '../plugin-registry.js';
import type { RpcMetrics } from '../observability/metrics.js';
import type { RateLimitedLog } from '../observability/rate-limited-log.js';
import type { RunnerLogger } from '../observability/logger.js';
import { RequestState } from './request-state.js';
import { ResponseState } from './response-state.js';
import { startReading, type ReadPath } from '../socket-reads.js';
import type { TurnWriter, TurnWrites } from './turn-writes.js';

export interface ConnectionDeps {
  readonly confs: ConfCache;
  readonly registry: PluginRegistry;
  readonly logger: RunnerLogger;
  readonly metrics: RpcMetrics;
  readonly problems: RateLimitedLog;
  /** How long to wait for APISIX's answer to one ExtraInfo question. */
  readonly extraInfoTimeoutMs: number;
  readonly maxPayloadBytes: number;
  /** Read through the stream API even where the reused buffer is available (tests compare the two). */
  readonly streamReads?: boolean;
}

interface Question {
  readonly question: ExtraInfoQuestion;
  readonly resolve: (result: Buffer | undefined) => void;
  readonly reject: (err: Error) => void;
}

const RPC_LABEL = ['error', 'prepare_conf', 'http_req_call', 'extra_info', 'http_resp_call'];

type CallLabel = 'http_req_call' | 'http_resp_call';

/** What an HTTPReqCall or HTTPRespCall holds once its chain has run. */
interface CallState {
  readonly afterReplyTasks: Array<() => void> | undefined;
  encodeReply(): { frame: Buffer; outcome: string };
}

/**
 * One connection from an APISIX worker. RPCs are handled strictly in order; while a call
 * waits for ExtraInfo answers, other frames are queued. Nothing thrown here escapes: bad
 * input gets an error reply (or the connection is closed when no reply is possible).
 */
export class Connection implements TurnWriter {
  private readonly decoder: FrameDecoder;
  /** Frames made this turn, written at its end by `turn` (turn-writes.ts). */
  private queuedFrame: Buffer | undefined;
  private queuedMore: Buffer[] | undefined;
  private busy = false;
  /** The call whose chain is still running (set with `busy`), for the close log line. */
  private inFlight: CallLabel | undefined;
  private closed = false;
  private backlog: Array<{ type: number; payload: Buffer }> | undefined;
  private asking: Question | undefined;
  /** When the outstanding question was sent (ms, monotonic); checked by the server's watchdog. */
  private askedAt = 0;
  private questions: Question[] | undefined;
  private idleWaiters: Array<() => void> | undefined;
  private readonly ask = (question: ExtraInfoQuestion): Promise<Buffer | undefined> =>
    new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new CallAbortedError('connection closed'));
        return;
      }
      const q: Question = { question, resolve, reject };
      if (this.asking) (this.questions ??= []).push(q);
      else this.sendQuestion(q);
    });

  constructor(
    private readonly socket: Socket,
    private readonly deps: ConnectionDeps,
    private readonly turn: TurnWrites,
  ) {
    this.decoder = new FrameDecoder(deps.maxPayloadBytes);
    socket.on('error', (err) => deps.logger.debug({ err }, 'connection error'));
    socket.on('close', this.onClose);
    this.readPath = startReading(socket, this.onData, deps.streamReads === true);
  }

  /** How this connection's bytes are read (socket-reads.ts). */
  readonly readPath: ReadPath;

  /** Resolves when no RPC is in progress (immediately when idle). */
  whenIdle(): Promise<void> {
    if (!this.busy || this.closed) return Promise.resolve();
    return new Promise((resolve) => (this.idleWaiters ??= []).push(resolve));
  }

  /** Closes the connection now (frames already made are written first). */
  destroy(): void {
    this.writeQueued();
    this.socket.destroy();
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.decoder.push(chunk, this.onFrame);
    } catch (err) {
      if (err instanceof FrameTooLargeError) {
        this.deps.logger.error({ length: err.length, limit: err.limit }, `closing connection: ${err.message}`);
        this.deps.metrics.record('unknown', 'frame_too_large', this.deps.metrics.start());
        this.writeQueued();
        this.socket.end(encodeError(ErrCode.BAD_REQUEST));
        this.closed = true;
        // A peer that never closes its side must not hold the connection forever.
        setTimeout(() => this.socket.destroy(), 1000).unref();
        return;
      }
      this.deps.logger.error({ err }, 'closing connection after an unexpected error');
      this.destroy();
    }
  };

  private readonly onFrame = (type: number, payload: Buffer): void => {
    if (this.closed) return;
    if (type === MessageType.ExtraInfo && this.asking) {
      this.answer(payload);
      return;
    }
    if (this.busy) {
      (this.backlog ??= []).push({ type, payload });
      return;
    }
    this.handle(type, payload);
  };

  private readonly onClose = (): void => {
    const wasClosing = this.closed;
    this.closed = true;
    this.logDroppedWork(wasClosing);
    const pending = [...(this.asking ? [this.asking] : []), ...(this.questions ?? [])];
    this.asking = undefined;
    this.questions = undefined;
    for (const q of pending) q.reject(new CallAbortedError('connection closed while waiting for an ExtraInfo answer'));
    this.backlog = undefined;
    this.notifyIdle();
  };

  /**
   * An operator reading why a call vanished needs to know the connection went away under it:
   * a partial frame, a call still running, or frames queued behind it are dropped with no one
   * to answer. A clean close between calls logs nothing (APISIX closes idle connections).
   */
  private logDroppedWork(closedByRunner: boolean): void {
    const partialFrameBytes = this.decoder.bufferedBytes;
    const queuedFrames = this.backlog?.length ?? 0;
    if (closedByRunner || (partialFrameBytes === 0 && this.inFlight === undefined && queuedFrames === 0)) return;
    this.deps.logger.debug(
      { partialFrameBytes, rpcInFlight: this.inFlight, queuedFrames },
      'connection closed mid-frame or mid-call; its work is dropped (no one to answer)',
    );
  }

  /** Queues `frame` for the end of the turn (turn-writes.ts). */
  private write(frame: Buffer): void {
    if (this.closed) return;
    if (this.queuedFrame === undefined) {
      this.queuedFrame = frame;
      this.turn.queued(this);
    } else {
      (this.queuedMore ??= []).push(frame);
    }
  }

  writeQueued(): void {
    const first = this.queuedFrame;
    if (first === undefined) return;
    const more = this.queuedMore;
    this.queuedFrame = undefined;
    this.queuedMore = undefined;
    if (this.socket.destroyed) return;
    if (!more) {
      this.socket.write(first);
      return;
    }
    // Several frames for one connection (a pipelining peer, or calls and questions together): one writev.
    this.socket.cork();
    this.socket.write(first);
    for (const frame of more) this.socket.write(frame);
    this.socket.uncork();
  }

  private handle(type: number, payload: Buffer): void {
    const started = this.deps.metrics.start();
    switch (type) {
      case MessageType.PrepareConf:
        this.prepareConf(payload, started);
        return;
      case MessageType.HttpReqCall:
        this.httpReqCall(payload, started);
        return;
      case MessageType.HttpRespCall:
        this.httpRespCall(payload, started);
        return;
      default: {
        const what = type === MessageType.ExtraInfo ? 'an ExtraInfo answer with no question outstanding' : `unknown message type ${type}`;
        this.deps.problems.maybe(`bad-type:${type}`, (suppressed) =>
          this.deps.logger.error({ type, suppressed }, `answered BAD_REQUEST to ${what}; is APISIX's ext-plugin protocol version compatible with this runner?`),
        );
        this.reply(encodeError(ErrCode.BAD_REQUEST), RPC_LABEL[type] ?? 'unknown', 'bad_request', started);
      }
    }
  }

  private reply(frame: Buffer, label: string, outcome: string, started: number): void {
    this.write(frame);
    this.deps.metrics.record(label, outcome, started);
  }

  private malformed(err: unknown, type: number, started: number): void {
    const label = RPC_LABEL[type] ?? 'unknown';
    if (!(err instanceof MalformedPayloadError)) {
      this.deps.logger.error({ err, rpc: messageTypeName(type) }, 'unexpected error while decoding; answered BAD_REQUEST');
    } else {
      this.deps.problems.maybe(`malformed:${type}`, (suppressed) =>
        this.deps.logger.error({ rpc: messageTypeName(type), reason: err.message, suppressed }, 'answered BAD_REQUEST to a malformed payload'),
      );
    }
    this.reply(encodeError(ErrCode.BAD_REQUEST), label, 'bad_request', started);
  }

  private prepareConf(payload: Buffer, started: number): void {
    let req;
    try {
      req = decodePrepareConfReq(payload);
    } catch (err) {
      this.malformed(err, MessageType.PrepareConf, started);
      return;
    }
    const { confs, registry, logger } = this.deps;
    let entry = confs.refresh(req.key);
    if (!entry) {
      const chain = registry.compile(req.key, req.conf, logger);
      for (const p of chain.skipped) {
        logger.error(
          { route: req.key, plugin: p.plugin, index: p.index, field: p.field, policy: p.policy },
          `invalid conf for plugin "${p.plugin}" on route ${req.key}: ${p.message}; the plugin is left out of this route (fail-open), the route keeps working`,
        );
      }
      if (chain.fatal) {
        const p = chain.fatal;
        logger.error(
          { route: req.key, plugin: p.plugin, index: p.index, field: p.field, policy: p.policy },
          `invalid conf for plugin "${p.plugin}" on route ${req.key}: ${p.message}; requests on this route are answered with an error (fail-closed) until the conf is fixed`,
        );
      }
      entry = confs.put(req.key, chain);
      this.deps.metrics.confs.set(confs.size);
    }
    this.reply(encodePrepareConfResp(entry.token), 'prepare_conf', 'ok', started);
  }

  private httpReqCall(payload: Buffer, started: number): void {
    let msg;
    try {
      msg = decodeHttpReqCall(payload);
    } catch (err) {
      this.malformed(err, MessageType.HttpReqCall, started);
      return;
    }
    const chain = this.chainFor(msg.confToken, 'http_req_call', started);
    if (!chain) return;
    if (!chain.hasRequestPlugins) {
      this.reply(encodeHttpReqCallResp(msg.id, { type: 'none' }), 'http_req_call', 'none', started);
      return;
    }
    const state = new RequestState(msg, this.ask);
    let pending: Promise<void> | undefined;
    try {
      pending = runRequestChain(chain.entries, state, chain.context);
    } catch (err) {
      this.callFailed(err, 'http_req_call', started);
      return;
    }
    this.settle(state, pending, 'http_req_call', started);
  }

  private httpRespCall(payload: Buffer, started: number): void {
    let msg;
    try {
      msg = decodeHttpRespCall(payload);
    } catch (err) {
      this.malformed(err, MessageType.HttpRespCall, started);
      return;
    }
    const chain = this.chainFor(msg.confToken, 'http_resp_call', started);
    if (!chain) return;
    const state = new ResponseState(msg, this.ask);
    let pending: Promise<void> | undefined;
    try {
      pending = chain.hasResponsePlugins ? runResponseChain(chain.entries, state, chain.context) : undefined;
    } catch (err) {
      this.callFailed(err, 'http_resp_call', started);
      return;
    }
    this.settle(state, pending, 'http_resp_call', started);
  }

  /** The route's chain, or undefined once an unknown token or a broken route has been answered. */
  private chainFor(token: number, label: CallLabel, started: number): CompiledChain | undefined {
    const entry = this.deps.confs.get(token);
    if (!entry) {
      this.deps.logger.debug({ token }, 'unknown conf token; APISIX will prepare the conf again');
      this.reply(encodeError(ErrCode.CONF_TOKEN_NOT_FOUND), label, 'conf_token_not_found', started);
      return undefined;
    }
    if (entry.chain.fatal) {
      this.routeBroken(entry.key, entry.chain.fatal.plugin, label, started);
      return undefined;
    }
    return entry.chain;
  }

  /**
   * Replies at once when the chain ran synchronously; otherwise marks the connection busy
   * (later frames wait in the backlog) and replies when the chain settles.
   */
  private settle(state: CallState, pending: Promise<void> | undefined, label: CallLabel, started: number): void {
    if (!pending) {
      this.finish(state, label, started);
      return;
    }
    this.busy = true;
    this.inFlight = label;
    pending.then(
      () => {
        this.finish(state, label, started);
        this.next();
      },
      (err: unknown) => {
        this.callFailed(err, label, started);
        this.next();
      },
    );
  }

  private finish(state: CallState, label: CallLabel, started: number): void {
    if (this.closed) return;
    let reply;
    try {
      reply = state.encodeReply();
    } catch (err) {
      this.callFailed(err, label, started);
      return;
    }
    this.reply(reply.frame, label, reply.outcome, started);
    if (state.afterReplyTasks) this.turn.afterWrites(this, state.afterReplyTasks);
  }

  private routeBroken(key: string, plugin: string, label: string, started: number): void {
    this.deps.problems.maybe(`fatal:${key}`, (suppressed) =>
      this.deps.logger.error({ route: key, plugin, suppressed }, `route ${key} has an invalid conf for plugin "${plugin}" (see the PrepareConf error); answered BAD_REQUEST`),
    );
    this.reply(encodeError(ErrCode.BAD_REQUEST), label, 'invalid_conf', started);
  }

  private callFailed(err: unknown, label: CallLabel, started: number): void {
    if (err instanceof MalformedPayloadError && !this.closed) {
      this.malformed(err, label === 'http_req_call' ? MessageType.HttpReqCall : MessageType.HttpRespCall, started);
      return;
    }
    if (err instanceof CallAbortedError || this.closed) {
      this.deps.metrics.record(label, 'aborted', started);
      return;
    }
    if (!(err instanceof PluginFailedError)) {
      this.deps.logger.error({ err }, `unexpected error in ${label}; answered SERVICE_UNAVAILABLE`);
    }
    this.reply(encodeError(ErrCode.SERVICE_UNAVAILABLE), label, 'plugin_failed', started);
  }

  runAfterReply(tasks: ReadonlyArray<() => void>): void {
    for (const task of tasks) {
      try {
        task();
      } catch (err) {
        this.deps.problems.maybe('after-reply', (suppressed) => this.deps.logger.error({ err, suppressed }, 'an afterReply task threw'));
      }
    }
  }

  /** Handles queued frames once the current call is over. */
  private next(): void {
    this.busy = false;
    this.inFlight = undefined;
    while (!this.busy && !this.closed && this.backlog && this.backlog.length > 0) {
      const { type, payload } = this.backlog.shift()!;
      this.handle(type, payload);
    }
    if (!this.busy) this.notifyIdle();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = undefined;
    if (waiters) for (const w of waiters) w();
  }

  private sendQuestion(q: Question): void {
    this.asking = q;
    this.askedAt = performance.now();
    this.write(encodeExtraInfoReq(q.question));
  }

  /**
   * Closes the connection when APISIX has left a question unanswered for longer than the
   * timeout. Called by the server's watchdog: one timer for all connections instead of a
   * timer armed and cleared per question on the hot path.
   */
  checkExtraInfoTimeout(now: number): void {
    const q = this.asking;
    if (!q || this.closed || now - this.askedAt < this.deps.extraInfoTimeoutMs) return;
    this.deps.logger.error(
      { question: q.question.kind, timeoutMs: this.deps.extraInfoTimeoutMs },
      'APISIX did not answer an ExtraInfo question in time; closing the connection',
    );
    this.destroy();
  }

  private answer(payload: Buffer): void {
    const q = this.asking!;
    this.asking = undefined;
    let result: Buffer | undefined;
    try {
      result = decodeExtraInfoResp(payload);
    } catch (err) {
      this.deps.logger.error({ reason: (err as Error).message }, 'malformed ExtraInfo answer from APISIX; closing the connection');
      q.reject(new CallAbortedError('malformed ExtraInfo answer'));
      this.destroy();
      return;
    }
    const nextQ = this.questions?.shift();
    if (nextQ) this.sendQuestion(nextQ);
    q.resolve(result);
  }
}
