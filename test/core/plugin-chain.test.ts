import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { PluginRegistry } from '../../src/plugin-registry.js';
import { PluginFailedError, runRequestChain } from '../../src/plugin-chain.js';
import { ConfError, definePlugin, type HttpRequest, type Plugin } from '../../src/plugin-api/index.js';

const logger = pino({ level: 'silent' });

/** A minimal request double: only what the chain itself touches (stopped). */
function fakeRequest(): HttpRequest & { log: string[] } {
  let stopped = false;
  const log: string[] = [];
  return {
    log,
    get stopped() {
      return stopped;
    },
    stop() {
      stopped = true;
    },
  } as unknown as HttpRequest & { log: string[] };
}

function recorder(name: string, opts: { stop?: boolean; throws?: boolean; async?: boolean; policy?: 'open' | 'closed' } = {}): Plugin<unknown> {
  return definePlugin<unknown>({
    name,
    failurePolicy: opts.policy,
    onRequest(_conf, req) {
      const act = (): void => {
        (req as unknown as { log: string[] }).log.push(name);
        if (opts.throws) throw new Error(`${name} broke`);
        if (opts.stop) req.stop({ status: 403 });
      };
      if (opts.async) return Promise.resolve().then(act);
      act();
      return undefined;
    },
  });
}

function chainOf(...plugins: Plugin<unknown>[]) {
  const reg = new PluginRegistry();
  for (const p of plugins) reg.register(p);
  return reg.compile('route#1', plugins.map((p) => ({ name: p.name, value: '{}' })), logger);
}

describe('plugin chain', () => {
  it('runs plugins in conf order and stays synchronous when every plugin is', () => {
    const c = chainOf(recorder('a'), recorder('b'), recorder('c'));
    const req = fakeRequest();
    expect(runRequestChain(c.entries, req, c.context)).toBeUndefined();
    expect(req.log).toEqual(['a', 'b', 'c']);
  });

  it('first Stop wins: later plugins are not run (sync and async)', async () => {
    const c = chainOf(recorder('a', { async: true }), recorder('b', { stop: true, async: true }), recorder('c'));
    const req = fakeRequest();
    await runRequestChain(c.entries, req, c.context);
    expect(req.log).toEqual(['a', 'b']);
    expect(req.stopped).toBe(true);
  });

  it('a fail-open plugin that throws is skipped and the chain goes on', async () => {
    const c = chainOf(recorder('a', { throws: true, policy: 'open' }), recorder('b', { throws: true, policy: 'open', async: true }), recorder('c'));
    const req = fakeRequest();
    await runRequestChain(c.entries, req, c.context);
    expect(req.log).toEqual(['a', 'b', 'c']);
  });

  it('a fail-closed plugin that throws ends the chain with PluginFailedError naming it', async () => {
    const c = chainOf(recorder('a'), recorder('b', { throws: true, async: true }), recorder('c'));
    const req = fakeRequest();
    await expect(runRequestChain(c.entries, req, c.context)).rejects.toThrow(PluginFailedError);
    expect(req.log).toEqual(['a', 'b']);
    const sync = chainOf(recorder('x', { throws: true }));
    expect(() => runRequestChain(sync.entries, fakeRequest(), sync.context)).toThrow(/plugin "x" failed/);
  });
});

describe('conf compilation', () => {
  const strict = definePlugin<{ n: number }>({
    name: 'strict',
    confSchema: { type: 'object', properties: { n: { type: 'integer', minimum: 1, default: 5 } }, additionalProperties: false },
    parseConf: (v) => {
      const conf = v as { n: number };
      if (conf.n === 13) throw new ConfError('/n', 'must not be 13');
      return conf;
    },
  });
  const lenient = { ...strict, name: 'lenient', failurePolicy: 'open' as const };
  const reg = new PluginRegistry();
  reg.register(strict);
  reg.register(lenient);

  it('applies schema defaults and keeps entries in order', () => {
    const c = reg.compile('k', [{ name: 'strict', value: '' }, { name: 'lenient', value: '{"n":2}' }], logger);
    expect(c.fatal).toBeUndefined();
    expect(c.entries.map((e) => [e.plugin.name, e.conf])).toEqual([['strict', { n: 5 }], ['lenient', { n: 2 }]]);
  });

  it('names the field of a schema violation; fail-closed makes the route fatal', () => {
    const c = reg.compile('k', [{ name: 'strict', value: '{"n":0,"x":1}' }], logger);
    expect(c.fatal?.plugin).toBe('strict');
    expect(['/n', '/x']).toContain(c.fatal?.field);
    expect(c.fatal?.message).toMatch(/\/x is not a known field/);
    expect(c.fatal?.message).toMatch(/\/n must be >= 1/);
  });

  it('fail-open leaves the plugin out and keeps the rest', () => {
    const c = reg.compile('k', [{ name: 'lenient', value: '{"n":13}' }, { name: 'strict', value: '{}' }], logger);
    expect(c.fatal).toBeUndefined();
    expect(c.skipped).toMatchObject([{ plugin: 'lenient', field: '/n', message: '/n: must not be 13' }]);
    expect(c.entries.map((e) => e.plugin.name)).toEqual(['strict']);
  });

  it('invalid JSON and unknown plugins are reported', () => {
    expect(reg.compile('k', [{ name: 'strict', value: '{nope' }], logger).fatal?.message).toMatch(/not valid JSON/);
    expect(reg.compile('k', [{ name: 'nope', value: '{}' }], logger).fatal?.message).toMatch(/unknown plugin "nope" \(known: strict, lenient\)/);
  });

  it('refuses duplicate names and broken schemas at registration', () => {
    expect(() => reg.register(strict)).toThrow(/registered twice/);
    expect(() => new PluginRegistry().register({ name: 'bad', confSchema: { type: 'nonsense' } })).toThrow(/invalid confSchema/);
  });
});
