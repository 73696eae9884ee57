/** The compare wiring's conf, settings and flag: what proxy-mirror accepts and refuses for shadow comparison. */
import { resolve } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../../src/config.js';
import { compareRouteName } from '../../../src/plugins/proxy-mirror/compare-wiring.js';
import { DEFAULT_SETTINGS, parseProxyMirrorConf, parseSettings, unknownFields } from '../../../src/plugins/proxy-mirror/conf.js';
import { proxyMirrorSchema } from '../../../src/plugins/proxy-mirror/schema.js';
import { confError } from './conf-error.js';

const parse = (extra: Record<string, unknown>) => parseProxyMirrorConf({ host: 'http://127.0.0.1:9000', ...extra }, DEFAULT_SETTINGS);


describe('proxy-mirror compare block', () => {
  it('is off unless given; {} turns it on with the documented defaults', () => {
    expect(parse({}).compare).toBeUndefined();
    expect(parse({}).secondaryTarget).toBeUndefined();
    const c = parse({ compare: {} }).compare!;
    expect(c).toMatchObject({ route: undefined, status: true, secondary: undefined, maxPending: 10_000, maxAgeMs: 30_000, examples: 20 });
    expect(c.body?.maxBytes).toBe(1_048_576);
    expect(c.headers.mode).toBe('ignore');
  });

  it('is a known field of the schema (no unknown-field warning) and validates there too', () => {
    expect(unknownFields({ host: 'http://h', compare: {} })).toEqual([]);
    const validate = new Ajv({ useDefaults: true, strict: false }).compile(proxyMirrorSchema);
    expect(validate({ host: 'http://h', compare: { body: { ignore: ['/ts'] }, route: 'checkout' } })).toBe(true);
    expect(validate({ host: 'http://h', compare: { colour: 1 } })).toBe(false);
  });

  it('refuses a bad block naming the field under /compare, and a gRPC target', () => {
    expect(confError(() => parse({ compare: { max_pending: 0 } })).field).toBe('/compare/max_pending');
    expect(confError(() => parse({ compare: { secondary: 'ftp://x' } })).field).toBe('/compare/secondary');
    expect(confError(() => parse({ compare: { route: 'has space' } })).field).toBe('/compare/route');
    expect(confError(() => parse({ compare: { max_age: 'soon' } })).field).toBe('/compare/max_age');
    const grpc = confError(() => parseProxyMirrorConf({ host: 'grpc://127.0.0.1:9000', compare: {} }, DEFAULT_SETTINGS));
    expect(grpc.field).toBe('/compare');
    expect(grpc.message).toContain('must be http:// or https://');
  });

  it('a secondary is a target of its own: one node, the mirror target\'s timeouts and limits', () => {
    const conf = parse({ compare: { secondary: 'https://10.0.0.9:8443' }, timeout: { read: '5s' }, max_concurrency: 7 });
    const sec = conf.secondaryTarget!;
    expect(sec).toMatchObject({ host: 'https://10.0.0.9:8443', label: 'https://10.0.0.9:8443', scheme: 'https', tls: true, protocol: 'http', grpc: false });
    expect(sec.nodes.map((n) => n.label)).toEqual(['https://10.0.0.9:8443']);
    expect(sec.timeouts).toEqual(conf.target.timeouts);
    expect(sec.limits.maxConcurrency).toBe(7);
  });

  it('the route name is compare.route, or what precedes the phase in the conf key (both phases and every version agree)', () => {
    const c = parse({ compare: {} }).compare!;
    expect(compareRouteName(c, 'route#1#ext-plugin-pre-req#3')).toBe('route#1');
    expect(compareRouteName(c, 'route#1#ext-plugin-post-resp#4')).toBe('route#1');
    expect(compareRouteName(c, 'route#orders#ext-plugin-pre-req#17')).toBe('route#orders');
    // A key without a phase segment (not APISIX's form) is used whole.
    expect(compareRouteName(c, 'custom-key')).toBe('custom-key');
    expect(compareRouteName(parse({ compare: { route: 'checkout' } }).compare!, 'route#1#ext-plugin-pre-req#3')).toBe('checkout');
  });
});

describe('--mirror-diff-log', () => {
  it('sets plugin_attr.proxy-mirror.diff_log (absolute), keeping the rest of the block', () => {
    const cmd = resolveConfig(['--mirror-threads', '1', '--mirror-diff-log', 'diffs.jsonl'], {});
    expect(cmd.kind === 'run' && cmd.config.pluginAttr).toEqual({ 'proxy-mirror': { mirror_threads: 1, diff_log: resolve('diffs.jsonl') } });
    expect(parseSettings({ diff_log: '/var/log/diffs.jsonl' }).diffLog).toBe('/var/log/diffs.jsonl');
    expect(DEFAULT_SETTINGS.diffLog).toBeUndefined();
  });

  it('refuses an empty path, on the command line and in plugin_attr', () => {
    expect(() => resolveConfig(['--mirror-diff-log', ''], {})).toThrow(ConfigError);
    expect(confError(() => parseSettings({ diff_log: '' })).field).toBe('proxy-mirror.diff_log');
    expect(confError(() => parseSettings({ diff_log: 3 })).field).toBe('proxy-mirror.diff_log');
  });
});
