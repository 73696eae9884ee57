/** Runner-wide mirror settings added with the dispatch engine: threads, breaker, node lists. */
import { describe, it, expect } from 'vitest';
import { ConfigError, resolveConfig } from '../../../src/config.js';
import { DEFAULT_SETTINGS, parseProxyMirrorConf, parseSettings } from '../../../src/plugins/proxy-mirror/conf.js';

describe('mirror settings', () => {
  it('--mirror-threads sets plugin_attr.proxy-mirror.mirror_threads, keeping the rest of the block', () => {
    const cmd = resolveConfig(['--mirror-threads', '3'], {});
    expect(cmd.kind === 'run' && cmd.config.pluginAttr).toEqual({ 'proxy-mirror': { mirror_threads: 3 } });
    expect(parseSettings({ mirror_threads: 3 }).mirrorThreads).toBe(3);
    expect(() => resolveConfig(['--mirror-threads', '0'], {})).toThrow(ConfigError);
    expect(() => parseSettings({ mirror_threads: 0 })).toThrow(/mirror_threads/);
  });

  it('sends copies from the RPC thread unless workers are asked for', () => {
    expect(DEFAULT_SETTINGS.mirrorThreads).toBe(1);
    expect(parseSettings({}).mirrorThreads).toBe(1);
    expect(parseSettings({ mirror_threads: 2 }).mirrorThreads).toBe(2);
  });

  it('reads mirror_thread_nice (default 0, 0 to 19)', () => {
    expect(DEFAULT_SETTINGS.mirrorThreadNice).toBe(0);
    expect(parseSettings({ mirror_thread_nice: 10 }).mirrorThreadNice).toBe(10);
    expect(parseSettings({ mirror_thread_nice: 19 }).mirrorThreadNice).toBe(19);
    expect(() => parseSettings({ mirror_thread_nice: -1 })).toThrow(/mirror_thread_nice/);
    expect(() => parseSettings({ mirror_thread_nice: 20 })).toThrow(/mirror_thread_nice/);
    expect(() => parseSettings({ mirror_thread_nice: '10' })).toThrow(/mirror_thread_nice/);
  });

  it('reads the breaker block and refuses a maximum below the base', () => {
    expect(parseSettings({ breaker: { failures: 5, retry_base: '2s', retry_max: '1m' } }).breaker).toEqual({ failures: 5, baseMs: 2000, maxMs: 60_000 });
    expect(() => parseSettings({ breaker: { retry_base: '10s', retry_max: '1s' } })).toThrow(/retry_max/);
    expect(() => parseSettings({ breaker: { failures: 0 } })).toThrow(/failures/);
  });

  it('keeps the APISIX string host and accepts a weighted list of nodes', () => {
    const one = parseProxyMirrorConf({ host: 'http://127.0.0.1:8080' }, DEFAULT_SETTINGS).target;
    expect(one.label).toBe('http://127.0.0.1:8080');
    expect(one.nodes).toHaveLength(1);
    const list = parseProxyMirrorConf({ host: ['http://10.0.0.1:8080', { host: 'http://10.0.0.2:8080', weight: 3 }] }, DEFAULT_SETTINGS).target;
    expect(list.label).toBe('http://10.0.0.1:8080,http://10.0.0.2:8080');
    expect(list.nodes.map((n) => [n.label, n.weight])).toEqual([['http://10.0.0.1:8080', 1], ['http://10.0.0.2:8080', 3]]);
    expect(list.resolveAll).toBe(false);
  });

  it('reads pipelining (default 32, 1 to 64) and hands it to every HTTP target', () => {
    expect(DEFAULT_SETTINGS.pipelining).toBe(32);
    const settings = parseSettings({ pipelining: 1 });
    expect(settings.pipelining).toBe(1);
    expect(parseProxyMirrorConf({ host: 'http://127.0.0.1:8080' }, settings).target.pipelining).toBe(1);
    expect(() => parseSettings({ pipelining: 0 })).toThrow(/pipelining/);
    expect(() => parseSettings({ pipelining: 65 })).toThrow(/pipelining/);
    expect(() => parseSettings({ pipelining: '8' })).toThrow(/pipelining/);
  });
});
