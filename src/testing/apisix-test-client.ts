/**
 * Talks to a runner over its Unix socket the way APISIX's ext-plugin does
 * (apisix/plugins/ext-plugin/init.lua): PrepareConf once per conf key, then HTTPReqCall or
 * HTTPRespCall, answering the runner's ExtraInfo questions from the test's description, and
 * preparing the conf again when the runner answers CONF_TOKEN_NOT_FOUND. One connection,
 * one call at a time: lean on purpose, for plugin authors' integration tests.
 */
import { connect, type Socket } from 'node:net';
import { FrameDecoder, encodeFrame } from '../protocol/frame.js';
import type { ExtraInfoQuestion } from '../protocol/messages.js';
import {
  FRAME,
  decodeError,
  decodePrepareConfAnswer,
  decodeQuestion,
  decodeRequestAnswer,
  decodeResponseAnswer,
  encodeExtraInfoAnswer,
  encodeHttpReqCall,
  encodeHttpRespCall,
  encodePrepareConf,
} from './apisix-frames.js';
import { QuestionAnswerer, confPairs, textMapEntries, type ConfEntry, type MissingDataPolicy, type RequestDescription, type ResponseDescription } from './descriptions.js';
import type { ErrorOutcome, RequestOutcome, ResponseOutcome } from './outcomes.js';

export interface ApisixTestClientOptions {
  /** How long to wait for each frame from the runner (APISIX's default is 60 s). Default 10 s. */
  readonly readTimeoutMs?: number;
  /** How long to wait for the socket to accept. Default 5 s. */
  readonly connectTimeoutMs?: number;
}

export interface CallOptions {
  readonly missing?: MissingDataPolicy;
  /** APISIX's conf key; default: one key per distinct conf. */
  readonly routeKey?: string;
}

interface Frame {
  readonly type: number;
  readonly payload: Buffer;
}

export class ApisixTestClient {
  private readonly frames: Frame[] = [];
  private waiter: ((frame: Frame | Error) => void) | undefined;
  private closedError: Error | undefined;
  private readonly tokens = new Map<string, number>();
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 1;

  private constructor(private readonly socket: Socket, private readonly readTimeoutMs: number) {
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (type, payload) => this.deliver({ type, payload: Buffer.from(payload) }));
      } catch (err) {
        this.fail(err as Error);
      }
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('the runner closed the connection')));
  }

  /** Connects to a runner's socket. */
  static connect(socketPath: string, options: ApisixTestClientOptions = {}): Promise<ApisixTestClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`cannot connect to ${socketPath} within ${options.connectTimeoutMs ?? 5000} ms`));
      }, options.connectTimeoutMs ?? 5000);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot connect to ${socketPath}: ${err.message}`));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ApisixTestClient(socket, options.readTimeoutMs ?? 10_000));
      });
    });
  }

  /** One HTTPReqCall (ext-plugin-pre-req / post-req) for a route with this ext-plugin `conf`. */
  request(conf: readonly ConfEntry[], request: RequestDescription = {}, options: CallOptions = {}): Promise<RequestOutcome> {
    const answerer = new QuestionAnswerer(request, 'reqBody', options.missing ?? 'error');
    return this.call(conf, options, answerer, FRAME.httpReqCall, (token) =>
      encodeHttpReqCall({
        id: this.nextId++,
        confToken: token,
        method: request.method ?? 'GET',
        path: request.path ?? '/',
        srcIp: request.srcIp ?? '127.0.0.1',
        args: textMapEntries(request.args, false),
        headers: textMapEntries(request.headers, true),
      }),
      (payload) => decodeRequestAnswer(payload, answerer.asked),
    );
  }

  /** One HTTPRespCall (ext-plugin-post-resp) for a route with this ext-plugin `conf`. */
  response(conf: readonly ConfEntry[], response: ResponseDescription = {}, options: CallOptions = {}): Promise<ResponseOutcome> {
    const answerer = new QuestionAnswerer(response, 'respBody', options.missing ?? 'error');
    return this.call(conf, options, answerer, FRAME.httpRespCall, (token) =>
      encodeHttpRespCall({ id: this.nextId++, confToken: token, status: response.status ?? 200, headers: textMapEntries(response.headers, false) }),
      (payload) => decodeResponseAnswer(payload, answerer.asked),
    );
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }

  private call<T extends RequestOutcome | ResponseOutcome>(
    conf: readonly ConfEntry[],
    options: CallOptions,
    answerer: QuestionAnswerer,
    type: number,
    encode: (token: number) => Uint8Array,
    decode: (payload: Buffer) => T,
  ): Promise<T | ErrorOutcome> {
    const run = async (): Promise<T | ErrorOutcome> => {
      const key = options.routeKey ?? `route#test#ext-plugin#${JSON.stringify(conf)}`;
      // APISIX prepares the conf again after CONF_TOKEN_NOT_FOUND (the runner forgot it).
      for (let attempt = 1; ; attempt++) {
        const token = await this.prepareConf(key, conf);
        this.send(type, encode(token));
        const frame = await this.answerQuestions(answerer);
        if (frame.type === FRAME.error) {
          const error = decodeError(frame.payload, answerer.asked);
          if (error.code === 'CONF_TOKEN_NOT_FOUND' && attempt < 3) {
            this.tokens.delete(key);
            continue;
          }
          answerer.check();
          return error;
        }
        if (frame.type !== type) throw new Error(`expected frame type ${type} from the runner, got ${frame.type}`);
        answerer.check();
        return decode(frame.payload);
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async prepareConf(key: string, conf: readonly ConfEntry[]): Promise<number> {
    const cached = this.tokens.get(key);
    if (cached !== undefined) return cached;
    this.send(FRAME.prepareConf, encodePrepareConf(key, confPairs(conf)));
    const frame = await this.read();
    if (frame.type === FRAME.error) throw new Error(`PrepareConf failed: ${decodeError(frame.payload, []).code}`);
    const token = decodePrepareConfAnswer(frame.payload);
    this.tokens.set(key, token);
    return token;
  }

  /** Answers ExtraInfo questions until the call's final frame arrives. */
  private async answerQuestions(answerer: QuestionAnswerer): Promise<Frame> {
    for (;;) {
      const frame = await this.read();
      if (frame.type !== FRAME.extraInfo) return frame;
      const question: ExtraInfoQuestion = decodeQuestion(frame.payload);
      this.send(FRAME.extraInfo, encodeExtraInfoAnswer(answerer.answer(question)));
    }
  }

  private send(type: number, payload: Uint8Array): void {
    if (this.closedError) throw this.closedError;
    this.socket.write(encodeFrame(type, payload));
  }

  private read(): Promise<Frame> {
    const queued = this.frames.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no answer from the runner within ${this.readTimeoutMs} ms`));
      }, this.readTimeoutMs);
      this.waiter = (frame) => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (frame instanceof Error) reject(frame);
        else resolve(frame);
      };
    });
  }

  private deliver(frame: Frame): void {
    if (this.waiter) this.waiter(frame);
    else this.frames.push(frame);
  }

  private fail(err: Error): void {
    this.closedError ??= err;
    this.waiter?.(err);
  }
}
