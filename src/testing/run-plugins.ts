/**
 * Runs plugins in-process through the runner's own code: the registry compiles the conf
 * (schema, parseConf), the chain runs over the same request/response views the server
 * uses, and the reply frame those views encode is decoded back into an outcome, so what a
 * test sees is what APISIX would get.
 */
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Logger, Plugin, PluginFactory, PluginHost } from '../plugin-api/index.js';
import { PluginRegistry, type CompiledChain, type ConfProblem } from '../plugin-registry.js';
import { PluginFailedError, runRequestChain, runResponseChain } from '../plugin-chain.js';
import { decodeHttpReqCall, decodeHttpRespCall } from '../protocol/messages.js';
import { RequestState } from '../server/request-state.js';
import { ResponseState } from '../server/response-state.js';
import { decodeRequestAnswer, decodeResponseAnswer, encodeHttpReqCall, encodeHttpRespCall } from './apisix-frames.js';
import { QuestionAnswerer, confPairs, textMapEntries, type ConfEntry, type MissingDataPolicy, type RequestDescription, type ResponseDescription } from './descriptions.js';
import type { ErrorOutcome, RequestOutcome, ResponseOutcome } from './outcomes.js';

export type { ConfProblem };

/** Plugins to run: one, a list, or a factory as a plugin module exports it. */
export type PluginSource = Plugin<unknown> | readonly Plugin<unknown>[] | PluginFactory;

export interface RunOptions {
  /** What a question the description cannot answer does (default `'error'`). */
  readonly missing?: MissingDataPolicy;
  /** APISIX's conf key (`ctx.routeKey`); default `route#test#ext-plugin-pre-req#1`. */
  readonly routeKey?: string;
  /** `plugin_attr` settings a factory reads with `host.settings(name)`. */
  readonly settings?: Readonly<Record<string, unknown>>;
  /** Where the runner's and the plugins' logs go; silent by default. */
  readonly logger?: Logger;
}

/** In-process runs also tell which conf entries were rejected, with the field (JSON pointer) and message. */
export interface ConfReport {
  readonly confProblems: readonly ConfProblem[];
}

interface Bench {
  readonly registry: PluginRegistry;
  readonly logger: Logger;
  close(): Promise<void>;
}

function bench(plugins: PluginSource, options: RunOptions): Bench {
  const logger = options.logger ?? pino({ level: 'silent' });
  const closeTasks: Array<() => Promise<void> | void> = [];
  const host: PluginHost = {
    logger,
    metrics: new Registry(),
    settings: (name) => options.settings?.[name],
    onClose: (task) => closeTasks.push(task),
  };
  const built = typeof plugins === 'function' ? plugins(host) : plugins;
  const registry = new PluginRegistry();
  for (const p of Array.isArray(built) ? built : [built as Plugin<unknown>]) registry.register(p);
  return { registry, logger, close: async () => void (await Promise.allSettled(closeTasks.map((t) => t()))) };
}

function problems(chain: CompiledChain): ConfProblem[] {
  return chain.fatal ? [...chain.skipped, chain.fatal] : [...chain.skipped];
}

function invalidConf(chain: CompiledChain): ErrorOutcome | undefined {
  const p = chain.fatal;
  if (!p) return undefined;
  return { kind: 'error', code: 'BAD_REQUEST', message: `invalid conf for plugin "${p.plugin}"${p.field ? ` at ${p.field}` : ''}: ${p.message}`, asked: [] };
}

function runAfterReply(tasks: Array<() => void> | undefined, logger: Logger): void {
  for (const task of tasks ?? []) {
    try {
      task();
    } catch (err) {
      logger.error({ err }, 'an afterReply task threw');
    }
  }
}

/** Settles a chain run: a fail-closed plugin's throw becomes the error outcome APISIX would see. */
async function settle(pending: Promise<void> | undefined): Promise<ErrorOutcome | undefined> {
  try {
    await pending;
    return undefined;
  } catch (err) {
    if (err instanceof PluginFailedError) return { kind: 'error', code: 'SERVICE_UNAVAILABLE', message: err.message, asked: [] };
    throw err;
  }
}

function syncRun(run: () => Promise<void> | undefined): Promise<void> | undefined {
  try {
    return run();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** What one call needs: its view (request or response state) and how to run the chain over it. */
interface CallUnderTest {
  readonly state: { encodeReply(): { frame: Buffer }; readonly afterReplyTasks: Array<() => void> | undefined };
  run(): Promise<void> | undefined;
}

/** Compile the conf, run the chain, encode the answer and decode it: the server's steps for one call. */
async function runCall<T extends RequestOutcome | ResponseOutcome>(
  plugins: PluginSource,
  conf: readonly ConfEntry[],
  options: RunOptions,
  defaultRouteKey: string,
  answerer: QuestionAnswerer,
  start: (chain: CompiledChain) => CallUnderTest,
  decode: (payload: Buffer, asked: QuestionAnswerer['asked']) => T,
): Promise<(T | ErrorOutcome) & ConfReport> {
  const { registry, logger, close } = bench(plugins, options);
  try {
    const chain = registry.compile(options.routeKey ?? defaultRouteKey, confPairs(conf), logger);
    const confProblems = problems(chain);
    const rejected = invalidConf(chain);
    if (rejected) return { ...rejected, confProblems };
    const call = start(chain);
    const failed = await settle(syncRun(() => call.run()));
    answerer.check();
    if (failed) return { ...failed, asked: answerer.asked, confProblems };
    const outcome = decode(call.state.encodeReply().frame.subarray(4), answerer.asked);
    runAfterReply(call.state.afterReplyTasks, logger);
    return { ...outcome, confProblems };
  } finally {
    await close();
  }
}

/**
 * Runs an HTTPReqCall (ext-plugin-pre-req / post-req) of a route whose ext-plugin `conf` is
 * `conf`, against `request`, and returns what the runner would answer APISIX.
 */
export function runRequest(plugins: PluginSource, conf: readonly ConfEntry[], request: RequestDescription = {}, options: RunOptions = {}): Promise<RequestOutcome & ConfReport> {
  const answerer = new QuestionAnswerer(request, 'reqBody', options.missing ?? 'error');
  return runCall(plugins, conf, options, 'route#test#ext-plugin-pre-req#1', answerer, (chain) => {
    const payload = encodeHttpReqCall({
      id: 1,
      confToken: 1,
      method: request.method ?? 'GET',
      path: request.path ?? '/',
      srcIp: request.srcIp ?? '127.0.0.1',
      args: textMapEntries(request.args, false),
      headers: textMapEntries(request.headers, true),
    });
    const state = new RequestState(decodeHttpReqCall(payload), (q) => Promise.resolve(answerer.answer(q)));
    return { state, run: () => runRequestChain(chain.entries, state, chain.context) };
  }, decodeRequestAnswer);
}

/**
 * Runs an HTTPRespCall (ext-plugin-post-resp) of a route whose ext-plugin `conf` is `conf`,
 * against the upstream `response`, and returns what the client would get instead.
 */
export function runResponse(plugins: PluginSource, conf: readonly ConfEntry[], response: ResponseDescription = {}, options: RunOptions = {}): Promise<ResponseOutcome & ConfReport> {
  const answerer = new QuestionAnswerer(response, 'respBody', options.missing ?? 'error');
  return runCall(plugins, conf, options, 'route#test#ext-plugin-post-resp#1', answerer, (chain) => {
    const payload = encodeHttpRespCall({ id: 1, confToken: 1, status: response.status ?? 200, headers: textMapEntries(response.headers, false) });
    const state = new ResponseState(decodeHttpRespCall(payload), (q) => Promise.resolve(answerer.answer(q)));
    return { state, run: () => runResponseChain(chain.entries, state, chain.context) };
  }, decodeResponseAnswer);
}
