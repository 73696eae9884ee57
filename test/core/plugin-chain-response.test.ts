/**
 * The chain runner beyond the request path: several plugins on the response path (sync and
 * async mixed), odd throws and return values, and what a failure logs. Found untested by
 * mutation testing (no test had two plugins in onResponse).
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { PluginRegistry } from '../../src/plugin-registry.js';
import { CallAbortedError, PluginFailedError, runRequestChain, runResponseChain } from '../../src/plugin-chain.js';
import { MalformedPayloadError } from '../../src/protocol/verify.js';
import { definePlugin, type HttpRequest, type HttpResponse, type Plugin } from '../../src/plugin-api/index.js';

/** A logger that keeps every line (JSON) so failures can be checked. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { logger, lines };
}

type Step = 'ok' | 'async' | 'throw' | 'reject' | 'throw-null' | 'throw-undefined' | 'return-null' | 'abort' | 'malformed';

/** A plugin whose onRequest and onResponse record their name, then do `step`. */
function plugin(name: string, step: Step, policy: 'open' | 'closed' = 'closed'): Plugin<unknown> {
  const act = (log: string[]): unknown => {
    log.push(name);
    switch (step) {
      case 'ok': return undefined;
      case 'async': return Promise.resolve();
      case 'throw': throw new Error(`${name} broke`);
      case 'reject': return Promise.reject(new Error(`${name} rejected`));
      case 'throw-null': throw null; // eslint-disable-line no-throw-literal
      case 'throw-undefined': throw undefined; // eslint-disable-line no-throw-literal
      case 'return-null': return null;
      case 'abort': throw new CallAbortedError('connection closed');
      case 'malformed': throw new MalformedPayloadError('bad table');
    }
  };
  return definePlugin<unknown>({
    name,
    failurePolicy: policy,
    onRequest: (_c, req) => act((req as unknown as { log: string[] }).log) as void,
    onResponse: (_c, res) => act((res as unknown as { log: string[] }).log) as void,
  });
}

function compile(logger: pino.Logger, ...plugins: Plugin<unknown>[]) {
  const reg = new PluginRegistry();
  for (const p of plugins) reg.register(p);
  const c = reg.compile('route#9', plugins.map((p) => ({ name: p.name, value: '{}' })), logger);
  return { ...c, context: { ...c.context, logger } };
}

/** Only what the chain touches: a log, and `stopped` for requests. */
const response = () => ({ log: [] as string[] }) as unknown as HttpResponse & { log: string[] };
const request = () => ({ log: [] as string[], stopped: false }) as unknown as HttpRequest & { log: string[] };

describe('response chain', () => {
  it('runs every plugin\'s onResponse in conf order, synchronously when all are', () => {
    const { logger } = capturingLogger();
    const c = compile(logger, plugin('a', 'ok'), plugin('b', 'ok'), plugin('c', 'ok'));
    const res = response();
    expect(runResponseChain(c.entries, res, c.context)).toBeUndefined();
    expect(res.log).toEqual(['a', 'b', 'c']);
  });

  it('goes on after an asynchronous plugin, in order', async () => {
    const { logger } = capturingLogger();
    const c = compile(logger, plugin('a', 'async'), plugin('b', 'ok'), plugin('c', 'async'), plugin('d', 'ok'));
    const res = response();
    const pending = runResponseChain(c.entries, res, c.context);
    expect(pending).toBeInstanceOf(Promise);
    expect(res.log).toEqual(['a']);
    await pending;
    expect(res.log).toEqual(['a', 'b', 'c', 'd']);
  });

  it('skips a fail-open plugin that throws or rejects, logs it, and runs the rest', async () => {
    const { logger, lines } = capturingLogger();
    const c = compile(logger, plugin('a', 'throw', 'open'), plugin('b', 'reject', 'open'), plugin('c', 'ok'));
    const res = response();
    await runResponseChain(c.entries, res, c.context);
    expect(res.log).toEqual(['a', 'b', 'c']);
    const errors = lines.filter((l) => l['level'] === 50);
    expect(errors.map((l) => [l['plugin'], l['index'], l['policy']])).toEqual([['a', 0, 'open'], ['b', 1, 'open']]);
    expect(String(errors[0]!['msg'])).toMatch(/plugin "a" threw; skipped it \(fail-open\)/);
  });

  it('a fail-closed plugin ends the response chain with PluginFailedError, logged with its name', async () => {
    const { logger, lines } = capturingLogger();
    const c = compile(logger, plugin('a', 'async'), plugin('b', 'reject'), plugin('c', 'ok'));
    const res = response();
    await expect(runResponseChain(c.entries, res, c.context)).rejects.toMatchObject({ plugin: 'b', code: 'A6_ERR_PLUGIN_FAILED' });
    expect(res.log).toEqual(['a', 'b']);
    const line = lines.find((l) => l['level'] === 50)!;
    expect(line).toMatchObject({ plugin: 'b', index: 1, policy: 'closed' });
    expect(String(line['msg'])).toMatch(/plugin "b" threw; answering APISIX with an error \(fail-closed\)/);
  });
});

describe('odd throws and return values', () => {
  it('a plugin that throws null or undefined fails with a message naming it', () => {
    const { logger } = capturingLogger();
    for (const [step, shown] of [['throw-null', 'null'], ['throw-undefined', 'undefined']] as const) {
      const c = compile(logger, plugin('odd', step));
      let err: unknown;
      try { runRequestChain(c.entries, request(), c.context); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(PluginFailedError);
      expect((err as PluginFailedError).message).toBe(`plugin "odd" failed: ${shown}`);
      expect((err as PluginFailedError).reason).toBe(step === 'throw-null' ? null : undefined);
    }
  });

  it('a fail-open plugin that throws null is skipped like any other throw', () => {
    const { logger } = capturingLogger();
    const c = compile(logger, plugin('odd', 'throw-null', 'open'), plugin('next', 'ok'));
    const req = request();
    expect(runRequestChain(c.entries, req, c.context)).toBeUndefined();
    expect(req.log).toEqual(['odd', 'next']);
  });

  it('a plugin returning null (not a promise) lets the chain go on synchronously', () => {
    const { logger } = capturingLogger();
    const c = compile(logger, plugin('a', 'return-null'), plugin('b', 'ok'));
    const req = request();
    expect(runRequestChain(c.entries, req, c.context)).toBeUndefined();
    expect(req.log).toEqual(['a', 'b']);
  });

  it('a plugin without onResponse is passed over on the response path', () => {
    const { logger, lines } = capturingLogger();
    const requestOnly = definePlugin<unknown>({ name: 'req-only', onRequest: () => undefined });
    const c = compile(logger, requestOnly, plugin('b', 'ok'));
    const res = response();
    expect(runResponseChain(c.entries, res, c.context)).toBeUndefined();
    expect(res.log).toEqual(['b']);
    expect(lines.filter((l) => l['level'] === 50)).toEqual([]);
  });

  it('a returned object whose then is not a function is not a promise: the chain goes on synchronously', () => {
    const { logger } = capturingLogger();
    const odd = definePlugin<unknown>({
      name: 'then-not-fn',
      onRequest: (_c, req) => {
        (req as unknown as { log: string[] }).log.push('then-not-fn');
        return { then: 'not a function' } as unknown as void;
      },
    });
    const c = compile(logger, odd, plugin('b', 'ok'));
    const req = request();
    expect(runRequestChain(c.entries, req, c.context)).toBeUndefined();
    expect(req.log).toEqual(['then-not-fn', 'b']);
  });

  it('the errors carry stable codes', () => {
    expect(new CallAbortedError('x').code).toBe('A6_ERR_CALL_ABORTED');
    expect(new PluginFailedError('p', new Error('e')).code).toBe('A6_ERR_PLUGIN_FAILED');
  });

  it('a plugin without onRequest is passed over', () => {
    const { logger } = capturingLogger();
    const observer = definePlugin<unknown>({ name: 'resp-only', onResponse: () => undefined });
    const c = compile(logger, observer, plugin('b', 'ok'));
    const req = request();
    expect(runRequestChain(c.entries, req, c.context)).toBeUndefined();
    expect(req.log).toEqual(['b']);
  });

  it('an aborted call or a malformed payload is not the plugin\'s fault: rethrown as is, even fail-open, nothing logged', async () => {
    const { logger, lines } = capturingLogger();
    for (const [step, type] of [['abort', CallAbortedError], ['malformed', MalformedPayloadError]] as const) {
      const c = compile(logger, plugin(`p-${step}`, step, 'open'), plugin(`after-${step}`, 'ok'));
      const req = request();
      expect(() => runRequestChain(c.entries, req, c.context)).toThrow(type);
      expect(req.log).toEqual([`p-${step}`]);
      const asyncFirst = compile(logger, plugin(`q-${step}`, 'async'), plugin(`r-${step}`, step, 'open'), plugin(`s-${step}`, 'ok'));
      await expect(runRequestChain(asyncFirst.entries, request(), asyncFirst.context)).rejects.toBeInstanceOf(type);
    }
    expect(lines.filter((l) => l['level'] === 50)).toEqual([]);
  });

  it('a Stop by an asynchronous plugin ends the chain; a rejected fail-open plugin does not', async () => {
    const { logger } = capturingLogger();
    const stopper = definePlugin<unknown>({
      name: 'stopper',
      async onRequest(_c, req) {
        (req as unknown as { log: string[] }).log.push('stopper');
        (req as unknown as { stopped: boolean }).stopped = true;
      },
    });
    const c = compile(logger, plugin('a', 'reject', 'open'), stopper, plugin('never', 'ok'));
    const req = request();
    await runRequestChain(c.entries, req, c.context);
    expect(req.log).toEqual(['a', 'stopper']);
    // Stopped, then rejected (fail-open): the Stop still ends the chain.
    const stopThenReject = definePlugin<unknown>({
      name: 'stop-then-reject',
      failurePolicy: 'open',
      onRequest(_c, r) {
        (r as unknown as { log: string[] }).log.push('stop-then-reject');
        (r as unknown as { stopped: boolean }).stopped = true;
        return Promise.reject(new Error('after the stop'));
      },
    });
    const c2 = compile(logger, stopThenReject, plugin('never2', 'ok'));
    const req2 = request();
    await runRequestChain(c2.entries, req2, c2.context);
    expect(req2.log).toEqual(['stop-then-reject']);
  });
});
