/**
 * What the runner loads only when something uses it (docs/performance.md, "Footprint, third
 * pass"): prom-client only when metrics are served or the registry is used, the built-in
 * plugins' schemas only with the first route that uses the plugin.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { ROOT, killAllCli, startCli, type CliProcess } from '../harness/cli-process.js';
import { ApisixClient } from '../harness/apisix-client.js';
import { GET, runnerWithClient } from '../harness/test-runner.js';
import { tempDirs } from '../harness/temp-dir.js';
import { createLogger } from '../../src/observability/logger.js';
import { LazyRegistry } from '../../src/observability/lazy-registry.js';
import { PluginRegistry } from '../../src/plugin-registry.js';
import { builtinPlugins } from '../../src/plugins/index.js';
import { createSayPlugin, sayConfSchema } from '../../src/plugins/say/index.js';
import type { Plugin } from '../../src/plugin-api/index.js';

const PRELOAD = join(ROOT, 'test/fixtures/preload/report-loaded-packages.cjs');

const dirs = tempDirs();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  killAllCli();
  dirs.removeAll();
});

const route = (key: string, name: string, value: unknown) => ({ key, conf: [{ name, value: JSON.stringify(value) }] });

/** Stops a CLI runner with SIGTERM; returns the packages its preload saw loaded and the schemas ajv compiled. */
async function whatItLoaded(proc: CliProcess): Promise<{ packages: string[]; ajvCompiles: number }> {
  proc.child.kill('SIGTERM');
  expect(await proc.exited).toBe(0);
  const packages = /LOADED_PACKAGES (\[.*\])/.exec(proc.output());
  const compiles = /AJV_COMPILES (\d+)/.exec(proc.output());
  if (!packages || !compiles) throw new Error(`the preload wrote no report; output:\n${proc.output()}`);
  return { packages: JSON.parse(packages[1]!) as string[], ajvCompiles: Number(compiles[1]) };
}

/** A CLI runner with the package-reporting preload, and a client on its socket. */
async function cliRunner(args: string[]): Promise<{ proc: CliProcess; client: ApisixClient }> {
  const socketPath = join(dirs.make('a6lazy-'), 'r.sock');
  const proc = await startCli(['--mirror-threads', '1', ...args], { APISIX_LISTEN_ADDRESS: `unix:${socketPath}`, NODE_OPTIONS: `--require ${PRELOAD}` });
  const client = new ApisixClient({ socketPath, readTimeoutMs: 5000 });
  cleanups.push(() => client.close());
  return { proc, client };
}

describe('a runner started from the CLI loads prom-client only when metrics are served, and compiles schemas with their routes', () => {
  it('an idle runner compiles no schema and does not load ajv, prom-client or undici', async () => {
    const { proc } = await cliRunner([]);
    const { packages, ajvCompiles } = await whatItLoaded(proc);
    expect(ajvCompiles).toBe(0);
    expect(packages).toContain('pino');
    expect(packages).not.toContain('ajv');
    expect(packages).not.toContain('prom-client');
    expect(packages).not.toContain('undici');
  });

  it('a runner without --metrics-address serves say and rewrite routes without loading prom-client or @opentelemetry/api', async () => {
    const { proc, client } = await cliRunner([]);
    expect((await client.httpReqCall(route('s', 'say', { body: 'hi' }), GET)).kind).toBe('stop');
    expect((await client.httpReqCall(route('r', 'rewrite', { path: '/other' }), GET)).kind).toBe('rewrite');
    await client.close();
    const { packages, ajvCompiles } = await whatItLoaded(proc);
    // The preload sees CommonJS packages: pino is one, and every runner logs.
    expect(packages).toContain('pino');
    // say's and rewrite's schemas, compiled with their routes; proxy-mirror's, never used, is not.
    expect(ajvCompiles).toBe(2);
    expect(packages).not.toContain('prom-client');
    expect(packages).not.toContain('@opentelemetry/api');
  });

  it('with --metrics-address, prom-client is loaded at start and /metrics serves the RPC counts and process metrics', async () => {
    const { proc, client } = await cliRunner(['--metrics-address', '127.0.0.1:0']);
    const url = /"metrics":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/.exec(proc.output())?.[1];
    expect(url).toBeDefined();
    expect((await client.httpReqCall(route('s', 'say', { body: 'hi' }), GET)).kind).toBe('stop');
    const text = await (await fetch(url!)).text();
    expect(text).toMatch(/^apisix_runner_rpc_total\{type="http_req_call",outcome="stop"\} 1$/m);
    expect(text).toMatch(/^apisix_runner_connections 1$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    await client.close();
    expect((await whatItLoaded(proc)).packages).toContain('prom-client');
  });

});

describe('in-process, the registry is created on first use', () => {
  it('counts made before the registry exists are all there at its first use', async () => {
    const env = await runnerWithClient({ plugins: () => [createSayPlugin()] as Plugin<unknown>[] });
    cleanups.push(env.close);
    for (let i = 0; i < 3; i++) expect((await env.client.httpReqCall(route('s', 'say', { body: 'hi' }), GET)).kind).toBe('stop');
    expect((await env.client.httpReqCall(route('bad', 'say', { status: 200 }), GET)).kind).toBe('error');
    const metrics = env.runner.host.metrics;
    expect(metrics).toBeInstanceOf(LazyRegistry);
    expect((metrics as LazyRegistry).created).toBe(false);
    const text = await metrics.metrics();
    expect((metrics as LazyRegistry).created).toBe(true);
    expect(text).toMatch(/^apisix_runner_rpc_total\{type="prepare_conf",outcome="ok"\} 2$/m);
    expect(text).toMatch(/^apisix_runner_rpc_total\{type="http_req_call",outcome="stop"\} 3$/m);
    expect(text).toMatch(/^apisix_runner_rpc_total\{type="http_req_call",outcome="invalid_conf"\} 1$/m);
    expect(text).toMatch(/^apisix_runner_conf_rejected_total\{plugin="say",reason="schema"\} 1$/m);
    expect(text).toMatch(/^apisix_runner_connections 1$/m);
    expect(text).toMatch(/^apisix_runner_confs 2$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    // Not served and not given: no latency histogram, as before.
    expect(text).not.toContain('apisix_runner_rpc_duration_seconds');
  });
});

describe('built-in plugin schemas are compiled with their first route', () => {
  const logger = createLogger({ level: 'silent' });

  it('every built-in schema compiles with the registry options (what lets the runner compile them late)', () => {
    const registry = new PluginRegistry();
    const host = { logger, metrics: new Registry(), settings: () => undefined, onClose: () => undefined };
    for (const plugin of builtinPlugins(host)) expect(() => registry.register(plugin)).not.toThrow();
    expect(registry.names()).toEqual(['say', 'rewrite', 'proxy-mirror']);
  });

  it('a schema listed in compileOnFirstUse is compiled at the first PrepareConf: a broken one then fails that route, not the registration', () => {
    const broken = { type: 'nonsense' };
    const rejected: string[] = [];
    const lazy = new PluginRegistry({ compileOnFirstUse: new Set([broken]), onReject: (p, r) => rejected.push(`${p}:${r}`) });
    expect(() => lazy.register({ name: 'late', confSchema: broken })).not.toThrow();
    // Without the list, the same schema fails at registration (plugin-authoring.md).
    expect(() => new PluginRegistry().register({ name: 'late', confSchema: broken })).toThrow(/invalid confSchema/);
    const chain = lazy.compile('route#1', [{ name: 'late', value: '{}' }], logger);
    expect(chain.fatal?.message).toMatch(/plugin "late" has an invalid confSchema/);
    expect(chain.fatal?.policy).toBe('closed');
    expect(rejected).toEqual(['late:schema']);
  });

  it('a lazily compiled schema validates and applies defaults exactly like one compiled at registration', () => {
    const eager = new PluginRegistry();
    const lazy = new PluginRegistry({ compileOnFirstUse: new Set([sayConfSchema]) });
    const say = createSayPlugin();
    eager.register(say);
    lazy.register(say);
    for (const value of ['{"body":"hi"}', '{"body":"hi","status":700}', '{"status":200}', '{"body":"hi","extra":1}']) {
      const a = eager.compile('r', [{ name: 'say', value }], logger);
      const b = lazy.compile('r', [{ name: 'say', value }], logger);
      expect(b.fatal).toEqual(a.fatal);
      expect(b.entries.map((e) => e.conf)).toEqual(a.entries.map((e) => e.conf));
    }
  });
});
