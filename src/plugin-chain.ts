import type { CallContext, Logger } from './plugin-api/plugin.js';
import type { HttpRequest } from './plugin-api/request.js';
import type { HttpResponse } from './plugin-api/response.js';
import type { ChainEntry } from './plugin-registry.js';
import { MalformedPayloadError } from './protocol/verify.js';

/** A plugin threw (or rejected) under a fail-closed policy: the call must be answered with an error. */
export class PluginFailedError extends Error {
  readonly code = 'A6_ERR_PLUGIN_FAILED';
  constructor(readonly plugin: string, readonly reason: unknown) {
    super(`plugin "${plugin}" failed: ${(reason as Error)?.message ?? String(reason)}`);
  }
}

/** The call cannot go on (its connection closed, an ExtraInfo question timed out): stop quietly. */
export class CallAbortedError extends Error {
  readonly code = 'A6_ERR_CALL_ABORTED';
}

function isPromise(v: unknown): v is Promise<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

type Step = (entry: ChainEntry) => unknown;

/**
 * Runs a chain in order without allocating a promise unless a plugin is asynchronous:
 * returns undefined when everything ran synchronously, a promise otherwise.
 * A throw from a fail-open plugin is logged and skipped; from a fail-closed one it ends the
 * chain with PluginFailedError.
 */
function run(entries: readonly ChainEntry[], start: number, step: Step, done: () => boolean, logger: Logger): Promise<void> | undefined {
  for (let i = start; i < entries.length; i++) {
    const entry = entries[i]!;
    let result: unknown;
    try {
      result = step(entry);
    } catch (err) {
      onFailure(entry, err, logger);
      continue;
    }
    if (isPromise(result)) {
      return result.then(
        () => (done() ? undefined : run(entries, i + 1, step, done, logger)),
        (err: unknown) => {
          onFailure(entry, err, logger);
          return done() ? undefined : run(entries, i + 1, step, done, logger);
        },
      );
    }
    if (done()) return undefined;
  }
  return undefined;
}

function onFailure(entry: ChainEntry, err: unknown, logger: Logger): void {
  // Not the plugin's fault: the call itself cannot go on (or its payload is malformed).
  if (err instanceof CallAbortedError || err instanceof MalformedPayloadError) throw err;
  const policy = entry.plugin.failurePolicy ?? 'closed';
  logger.error(
    { plugin: entry.plugin.name, index: entry.index, policy, err },
    policy === 'open'
      ? `plugin "${entry.plugin.name}" threw; skipped it (fail-open) and went on with the chain`
      : `plugin "${entry.plugin.name}" threw; answering APISIX with an error (fail-closed), so the request gets 503 unless allow_degradation is set`,
  );
  if (policy === 'closed') throw new PluginFailedError(entry.plugin.name, err);
}

/** Runs `onRequest` of each plugin until one stops the request. */
export function runRequestChain(entries: readonly ChainEntry[], req: HttpRequest, ctx: CallContext): Promise<void> | undefined {
  return run(entries, 0, (e) => e.plugin.onRequest?.(e.conf, req, ctx), () => req.stopped, ctx.logger);
}

/** Runs `onResponse` of each plugin. */
export function runResponseChain(entries: readonly ChainEntry[], res: HttpResponse, ctx: CallContext): Promise<void> | undefined {
  return run(entries, 0, (e) => e.plugin.onResponse?.(e.conf, res, ctx), () => false, ctx.logger);
}
