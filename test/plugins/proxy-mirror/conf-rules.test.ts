/**
 * proxy-mirror conf and settings rules that mutation testing found unchecked: the port range
 * (the host pattern admits `:0` and `:70000`), zero and negative durations, every runner-wide
 * setting's bounds, default ports per scheme, header edits with only `remove`, the case of
 * sample-key names, `max_body_size: 0`, and the unknown-field list. Plain function tests; the
 * end-to-end behaviour of a bad conf (plugin left out, route works) is in http-mirror.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ConfError } from '../../../src/plugin-api/index.js';
import {
  DEFAULT_SETTINGS, grpcMethodAllowed, parseDuration, parseProxyMirrorConf, parseSettings, unknownFields,
} from '../../../src/plugins/proxy-mirror/conf.js';
import { MAX_FRAME_BODY_BYTES } from '../../../src/plugins/proxy-mirror/schema.js';
import { confError } from './conf-error.js';

const parse = (v: Record<string, unknown>) => parseProxyMirrorConf({ host: 'http://127.0.0.1:9', ...v }, DEFAULT_SETTINGS);


describe('host', () => {
  it('accepts ports 1 and 65535 and refuses 0 and anything above 65535', () => {
    expect(parseProxyMirrorConf({ host: 'http://h:1' }, DEFAULT_SETTINGS).target.nodes[0]!.authority).toBe('h:1');
    expect(parseProxyMirrorConf({ host: 'http://h:65535' }, DEFAULT_SETTINGS).target.nodes[0]!.authority).toBe('h:65535');
    for (const [host, port] of [['http://h:0', 0], ['http://h:65536', 65536], ['grpc://h:70000', 70000]] as const) {
      const err = confError(() => parseProxyMirrorConf({ host }, DEFAULT_SETTINGS));
      expect(err.field, host).toBe('/host');
      expect(err.message).toContain(`port out of range (${port})`);
    }
  });

  it('gives each scheme its default port and transport', () => {
    const t = (host: string) => {
      const target = parseProxyMirrorConf({ host }, DEFAULT_SETTINGS).target;
      return { ...target, authority: target.nodes[0]!.authority };
    };
    expect(t('http://h')).toMatchObject({ scheme: 'http', authority: 'h:80', tls: false, grpc: false, host: 'http://h' });
    expect(t('https://h')).toMatchObject({ scheme: 'https', authority: 'h:443', tls: true, grpc: false });
    expect(t('grpc://h')).toMatchObject({ scheme: 'grpc', authority: 'h:80', tls: false, grpc: true });
    expect(t('grpcs://h')).toMatchObject({ scheme: 'grpcs', authority: 'h:443', tls: true, grpc: true });
    expect(t('https://h:8443')).toMatchObject({ authority: 'h:8443' });
  });

  it('names /host for a missing or non-string host, a path or an unknown scheme', () => {
    expect(confError(() => parseProxyMirrorConf({}, DEFAULT_SETTINGS)).message).toMatch(/is required/);
    expect(confError(() => parseProxyMirrorConf({ host: 5 }, DEFAULT_SETTINGS)).field).toBe('/host');
    for (const host of ['http://h/path', 'ws://h', 'http://', 'http://h:']) {
      expect(confError(() => parseProxyMirrorConf({ host }, DEFAULT_SETTINGS)).field, host).toBe('/host');
    }
    expect(confError(() => parseProxyMirrorConf('not an object', DEFAULT_SETTINGS))).toMatchObject({ field: '' });
    expect(confError(() => parseProxyMirrorConf(['http://h'], DEFAULT_SETTINGS))).toMatchObject({ field: '' });
  });
});

describe('runner settings nobody reads', () => {
  it('an unknown key at the top, in timeout or in breaker is refused with its place and a did-you-mean', () => {
    expect(confError(() => parseSettings({ timout: { connect: '1s' } }))).toMatchObject({ field: 'proxy-mirror' });
    expect(confError(() => parseSettings({ timout: { connect: '1s' } })).message).toContain('unknown setting "timout" (did you mean "timeout"?');
    expect(confError(() => parseSettings({ timeout: { conect: '1s' } }))).toMatchObject({ field: 'proxy-mirror.timeout' });
    expect(confError(() => parseSettings({ timeout: { conect: '1s' } })).message).toContain('unknown setting "conect" (did you mean "connect"?');
    expect(confError(() => parseSettings({ breaker: { failure: 5 } }))).toMatchObject({ field: 'proxy-mirror.breaker' });
    expect(confError(() => parseSettings({ breaker: { failure: 5 } })).message).toContain('unknown setting "failure" (did you mean "failures"?');
  });

  it('every documented setting is known', () => {
    const all = {
      timeout: { connect: '1s', read: '2s', send: '3s' }, max_body_size: 10, max_concurrency: 2, max_queue: 3, max_queue_bytes: 4,
      tls_ca: 'PEM', log_interval: '1s', close_grace: '1s', breaker: { failures: 2, retry_base: '1s', retry_max: '2s' },
      mirror_threads: 1, resolve_every: '5s', diff_log: '/tmp/diffs.jsonl',
    };
    expect(parseSettings(all)).toMatchObject({ timeout: { connectMs: 1000, readMs: 2000, sendMs: 3000 }, breaker: { failures: 2, baseMs: 1000, maxMs: 2000 } });
  });
});

describe('durations', () => {
  it('refuses zero, negative and non-finite durations, as numbers or strings', () => {
    for (const v of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(confError(() => parseDuration(v, '/timeout/read')).message, String(v)).toMatch(/positive number of milliseconds/);
    }
    for (const v of ['0ms', '0s', '0m', '0.0s', '-1s', '1h', '1', 's', '']) {
      const err = confError(() => parseDuration(v, '/timeout/read'));
      expect(err.field, v).toBe('/timeout/read');
      expect(err.message).toContain(JSON.stringify(v));
    }
    expect(confError(() => parseDuration(true, 'f')).message).toMatch(/got true/);
  });

  it('reads the smallest positive values of each unit', () => {
    expect(parseDuration('1ms', 'f')).toBe(1);
    expect(parseDuration('0.5ms', 'f')).toBe(0.5);
    expect(parseDuration('0.001s', 'f')).toBe(1);
    expect(parseDuration('1.5s', 'f')).toBe(1500);
    expect(parseDuration('0.5m', 'f')).toBe(30_000);
    expect(parseDuration(0.001, 'f')).toBe(0.001);
  });

  it('refuses a zero route timeout and a timeout that is not an object, naming the field', () => {
    expect(confError(() => parse({ timeout: { connect: '0ms' } })).field).toBe('/timeout/connect');
    expect(confError(() => parse({ timeout: { read: 0 } })).field).toBe('/timeout/read');
    expect(confError(() => parse({ timeout: { send: '0s' } })).field).toBe('/timeout/send');
    expect(confError(() => parse({ timeout: '1s' })).field).toBe('/timeout');
    expect(confError(() => parse({ timeout: null })).field).toBe('/timeout');
    expect(confError(() => parse({ timeout: ['1s'] })).field).toBe('/timeout');
  });

  it('a route timeout overrides only the fields it names', () => {
    const settings = parseSettings({ timeout: { connect: '1s', read: '2s', send: '3s' } });
    const c = parseProxyMirrorConf({ host: 'http://h', timeout: { send: '30ms' } }, settings);
    expect(c.target.timeouts).toEqual({ connectMs: 1000, readMs: 2000, sendMs: 30 });
    expect(parseProxyMirrorConf({ host: 'http://h', timeout: {} }, settings).target.timeouts).toEqual(settings.timeout);
  });
});

describe('runner-wide settings', () => {
  it('null and undefined mean the defaults; anything but an object is refused', () => {
    expect(parseSettings(undefined)).toBe(DEFAULT_SETTINGS);
    expect(parseSettings(null)).toBe(DEFAULT_SETTINGS);
    for (const bad of [[], 'x', 3, true]) {
      expect(confError(() => parseSettings(bad))).toMatchObject({ field: 'proxy-mirror' });
    }
    expect(parseSettings({})).toEqual(DEFAULT_SETTINGS);
  });

  it('checks every integer setting against its range, inclusive', () => {
    const ranges: Array<[string, number, number, (s: ReturnType<typeof parseSettings>) => number]> = [
      ['max_body_size', 0, MAX_FRAME_BODY_BYTES, (s) => s.maxBodySize],
      ['max_concurrency', 1, 10_000, (s) => s.limits.maxConcurrency],
      ['max_queue', 0, 1_000_000, (s) => s.limits.maxQueue],
      ['max_queue_bytes', 0, Number.MAX_SAFE_INTEGER, (s) => s.limits.maxQueueBytes],
    ];
    for (const [key, min, max, read] of ranges) {
      expect(read(parseSettings({ [key]: min })), `${key}=${min}`).toBe(min);
      expect(read(parseSettings({ [key]: max })), `${key}=${max}`).toBe(max);
      for (const bad of [min - 1, max + 1, 1.5, '5', null]) {
        if (bad === max + 1 && !Number.isSafeInteger(bad)) continue;
        const err = confError(() => parseSettings({ [key]: bad }));
        expect(err.field, `${key}=${String(bad)}`).toBe(`proxy-mirror.${key}`);
        expect(err.message).toContain(`must be an integer in [${min}, ${max}]`);
      }
    }
  });

  it('reads tls_ca, log_interval and close_grace, refusing zero durations', () => {
    const s = parseSettings({ tls_ca: '-----BEGIN CERTIFICATE-----', log_interval: '2s', close_grace: '250ms' });
    expect(s).toMatchObject({ tlsCa: '-----BEGIN CERTIFICATE-----', logIntervalMs: 2000, closeGraceMs: 250 });
    expect(confError(() => parseSettings({ tls_ca: 42 })).field).toBe('proxy-mirror.tls_ca');
    expect(confError(() => parseSettings({ log_interval: '0ms' })).field).toBe('proxy-mirror.log_interval');
    expect(confError(() => parseSettings({ close_grace: 0 })).field).toBe('proxy-mirror.close_grace');
    expect(confError(() => parseSettings({ timeout: { connect: 0 } })).field).toBe('proxy-mirror.timeout/connect');
    expect(confError(() => parseSettings({ timeout: 'fast' })).field).toBe('proxy-mirror.timeout');
  });

  it('routes inherit the settings\' limits and body cap unless they set their own', () => {
    const settings = parseSettings({ max_concurrency: 3, max_queue: 4, max_queue_bytes: 5, max_body_size: 6 });
    const inherited = parseProxyMirrorConf({ host: 'http://h' }, settings);
    expect(inherited.target.limits).toEqual({ maxConcurrency: 3, maxQueue: 4, maxQueueBytes: 5 });
    expect(inherited.maxBodySize).toBe(6);
    const own = parseProxyMirrorConf({ host: 'http://h', max_concurrency: 1, max_queue: 0, max_queue_bytes: 0, max_body_size: 0 }, settings);
    expect(own.target.limits).toEqual({ maxConcurrency: 1, maxQueue: 0, maxQueueBytes: 0 });
    expect(own.maxBodySize).toBe(0);
  });
});

describe('route conf fields', () => {
  it('refuses route limits below their minimum or not integers', () => {
    for (const [key, min] of [['max_concurrency', 1], ['max_queue', 0], ['max_queue_bytes', 0]] as const) {
      for (const bad of [min - 1, 1.5, '3']) {
        const err = confError(() => parse({ [key]: bad }));
        expect(err.field, `${key}=${String(bad)}`).toBe(`/${key}`);
        expect(err.message).toBe(`/${key}: must be an integer >= ${min}`);
      }
    }
  });

  it('max_body_size: 0 is allowed; negative, fractional or above one frame is not', () => {
    expect(parse({ max_body_size: 0 }).maxBodySize).toBe(0);
    expect(parse({ max_body_size: MAX_FRAME_BODY_BYTES }).maxBodySize).toBe(MAX_FRAME_BODY_BYTES);
    for (const bad of [-1, 1.5, MAX_FRAME_BODY_BYTES + 1, '10']) {
      expect(confError(() => parse({ max_body_size: bad })).field, String(bad)).toBe('/max_body_size');
    }
  });

  it('headers: remove without set, names lower-cased; set without remove', () => {
    const onlyRemove = parse({ headers: { remove: ['Authorization', 'COOKIE'] } });
    expect([...onlyRemove.headersRemove]).toEqual(['authorization', 'cookie']);
    expect(onlyRemove.headersSet).toEqual([]);
    const onlySet = parse({ headers: { set: { 'X-Shadow': '1' } } });
    expect(onlySet.headersSet).toEqual([['x-shadow', '1']]);
    expect(onlySet.headersRemove.size).toBe(0);
    const none = parse({ headers: {} });
    expect(none.headersSet).toEqual([]);
    expect(none.headersRemove.size).toBe(0);
  });

  it('headers: refuses bad shapes and values, naming the exact field', () => {
    expect(confError(() => parse({ headers: [] })).field).toBe('/headers');
    expect(confError(() => parse({ headers: { set: [] } })).field).toBe('/headers/set');
    for (const v of ['a\rb', 'a\nb', 'a\0b']) expect(confError(() => parse({ headers: { set: { x: v } } })).field).toBe('/headers/set/x');
    expect(confError(() => parse({ headers: { remove: 'x' } })).field).toBe('/headers/remove');
    expect(confError(() => parse({ headers: { remove: ['ok', ''] } })).field).toBe('/headers/remove/1');
    expect(confError(() => parse({ headers: { remove: ['ok', 3] } })).field).toBe('/headers/remove/1');
  });

  it('sample_key: header names are lower-cased, arg and var names keep their case', () => {
    expect(parse({ sample_key: 'header:X-User' }).sampleKey).toEqual({ source: 'header', name: 'x-user' });
    expect(parse({ sample_key: 'arg:UserId' }).sampleKey).toEqual({ source: 'arg', name: 'UserId' });
    expect(parse({ sample_key: 'var:Remote_User' }).sampleKey).toEqual({ source: 'var', name: 'Remote_User' });
    expect(parse({}).sampleKey).toBeUndefined();
    for (const bad of ['header:', 'cookie:x', 'var:a b', 'arg:a:b', 7]) {
      expect(confError(() => parse({ sample_key: bad })).field, String(bad)).toBe('/sample_key');
    }
  });

  it('sample_ratio: 0.00001 and 1 are the inclusive bounds; the default is 1', () => {
    expect(parse({ sample_ratio: 0.00001 }).sampleRatio).toBe(0.00001);
    expect(parse({ sample_ratio: 1 }).sampleRatio).toBe(1);
    expect(parse({}).sampleRatio).toBe(1);
    for (const bad of [0.000009, 0, 1.000001, '0.5', Number.NaN]) {
      expect(confError(() => parse({ sample_ratio: bad })).field, String(bad)).toBe('/sample_ratio');
    }
  });

  it('methods: upper-cased, at least one, each a string', () => {
    expect([...parse({ methods: ['get', 'Post'] }).methods!]).toEqual(['GET', 'POST']);
    expect(parse({}).methods).toBeUndefined();
    expect(confError(() => parse({ methods: [] })).field).toBe('/methods');
    expect(confError(() => parse({ methods: 'GET' })).field).toBe('/methods');
    expect(confError(() => parse({ methods: ['GET', 1] })).field).toBe('/methods/1');
  });

  it('path, path_concat_mode, body_over_limit, query, tls_verify and header-name fields: defaults and refusals', () => {
    const d = parse({});
    expect(d).toMatchObject({ path: undefined, pathConcatMode: 'replace', bodyOverLimit: 'skip', query: 'auto', markHeader: undefined, correlationHeader: undefined });
    expect(d.target.tlsVerify).toBe(true);
    const set = parse({ path: '/m', path_concat_mode: 'prefix', body_over_limit: 'send_without_body', query: 'rebuilt', tls_verify: false, mark_header: 'X-Mirrored', correlation_header: 'X-Request-Id' });
    expect(set).toMatchObject({ path: '/m', pathConcatMode: 'prefix', bodyOverLimit: 'send_without_body', query: 'rebuilt', markHeader: 'x-mirrored', correlationHeader: 'x-request-id' });
    expect(set.target.tlsVerify).toBe(false);
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ path: 'm' }, '/path'], [{ path: 5 }, '/path'], [{ path: '/a?b' }, '/path'],
      [{ path_concat_mode: 'append' }, '/path_concat_mode'],
      [{ body_over_limit: 'truncate' }, '/body_over_limit'],
      [{ query: 'parsed' }, '/query'],
      [{ tls_verify: 'yes' }, '/tls_verify'],
      [{ mark_header: '' }, '/mark_header'], [{ mark_header: 1 }, '/mark_header'],
      [{ correlation_header: '' }, '/correlation_header'],
      [{ grpc_methods: '/a.S/M' }, '/grpc_methods'], [{ grpc_methods: ['/a.S/M', '/bad'] }, '/grpc_methods/1'],
    ];
    for (const [conf, field] of bad) expect(confError(() => parse(conf)).field, JSON.stringify(conf)).toBe(field);
  });

  it('grpc_methods: exact paths and service wildcards, nothing deeper', () => {
    const { grpcMethods } = parseProxyMirrorConf({ host: 'grpc://h', grpc_methods: ['/a.S/M', '/b.T/*'] }, DEFAULT_SETTINGS);
    expect([...grpcMethods.exact]).toEqual(['/a.S/M']);
    expect(grpcMethods.servicePrefixes).toEqual(['/b.T/']);
    expect(grpcMethodAllowed(grpcMethods, '/b.T/X/Y')).toBe(false);
    expect(grpcMethodAllowed(grpcMethods, '/b.T/')).toBe(true);
    expect(grpcMethodAllowed(parse({}).grpcMethods, '/a.S/M')).toBe(false);
  });
});

describe('unknown fields', () => {
  it('lists the fields the schema does not know, in order; none for a non-object', () => {
    expect(unknownFields({ host: 'http://h', sample_ratio: 1, colour: 'red', Host: 'x' })).toEqual(['colour', 'Host']);
    expect(unknownFields({ host: 'http://h', path: '/m', timeout: {}, headers: {} })).toEqual([]);
    expect(unknownFields(null)).toEqual([]);
    expect(unknownFields(['host'])).toEqual([]);
  });
});

describe('what the operator reads', () => {
  it('each refusal says what the field must be (the text goes into the PrepareConf error line)', () => {
    const cases: Array<[() => unknown, string, string]> = [
      [() => parseProxyMirrorConf(7, DEFAULT_SETTINGS), '', 'conf must be a JSON object'],
      [() => parseProxyMirrorConf({ host: 'ftp://x' }, DEFAULT_SETTINGS), '/host', 'must be scheme://host[:port] with scheme http, https, grpc or grpcs and no path (got "ftp://x")'],
      [() => parse({ path: 'm' }), '/path', 'must start with "/" and contain no "?" or "&"'],
      [() => parse({ path_concat_mode: 'x' }), '/path_concat_mode', 'must be "replace" or "prefix"'],
      [() => parse({ sample_ratio: 2 }), '/sample_ratio', 'must be a number in [0.00001, 1]'],
      [() => parse({ sample_key: 'x' }), '/sample_key', 'must be "header:NAME", "arg:NAME" or "var:NAME"'],
      [() => parse({ methods: [] }), '/methods', 'must be a non-empty array of methods'],
      [() => parse({ methods: [1] }), '/methods/0', 'must be a method name'],
      [() => parse({ headers: 1 }), '/headers', 'must be an object {set, remove}'],
      [() => parse({ headers: { set: 1 } }), '/headers/set', 'must be an object of header name -> value'],
      [() => parse({ headers: { set: { a: 'x\n' } } }), '/headers/set/a', 'must be a string without CR, LF or NUL'],
      [() => parse({ headers: { remove: 1 } }), '/headers/remove', 'must be an array of header names'],
      [() => parse({ headers: { remove: [''] } }), '/headers/remove/0', 'must be a header name'],
      [() => parse({ max_body_size: -1 }), '/max_body_size', `must be an integer in [0, ${MAX_FRAME_BODY_BYTES}]`],
      [() => parse({ body_over_limit: 'x' }), '/body_over_limit', 'must be "skip" or "send_without_body"'],
      [() => parse({ query: 'x' }), '/query', 'must be "auto", "raw" or "rebuilt"'],
      [() => parse({ tls_verify: 1 }), '/tls_verify', 'must be a boolean'],
      [() => parse({ mark_header: '' }), '/mark_header', 'must be a header name'],
      [() => parse({ grpc_methods: 1 }), '/grpc_methods', 'must be an array of "/package.Service/Method" paths'],
      [() => parse({ grpc_methods: ['x'] }), '/grpc_methods/0', 'must look like "/package.Service/Method" or "/package.Service/*"'],
      [() => parse({ timeout: 1 }), '/timeout', 'must be an object {connect, read, send}'],
      [() => parseSettings([]), 'proxy-mirror', 'settings must be an object'],
      [() => parseSettings({ tls_ca: 1 }), 'proxy-mirror.tls_ca', 'must be PEM text'],
    ];
    for (const [fn, field, text] of cases) {
      const err = confError(fn);
      expect(err.field, text).toBe(field);
      expect(err.message, field).toContain(text);
    }
  });
});

describe('values of the wrong type that would read as valid text', () => {
  it('a one-element array is not the string it prints as', () => {
    expect(confError(() => parseDuration(['2s'], '/timeout/read')).field).toBe('/timeout/read');
    expect(confError(() => parse({ path: ['/m'] })).field).toBe('/path');
    expect(confError(() => parse({ sample_key: ['header:x'] })).field).toBe('/sample_key');
    expect(confError(() => parse({ grpc_methods: [['/a.S/M']] })).field).toBe('/grpc_methods/0');
  });

  it('patterns are anchored at both ends', () => {
    expect(confError(() => parse({ sample_key: 'xheader:a' })).field).toBe('/sample_key');
    expect(confError(() => parse({ grpc_methods: ['x/a.S/M'] })).field).toBe('/grpc_methods/0');
    expect(confError(() => parse({ grpc_methods: ['/a.S/M/extra'] })).field).toBe('/grpc_methods/0');
  });
});

describe('defaults', () => {
  it('60 s timeouts, the frame body cap, 32 in flight, 256 queued, 64 MiB queued, 10 s log interval, 500 ms grace, breaker 3 / 1 s / 30 s, resolve every 30 s, pipelining 32, one mirror thread at the runner\'s priority', () => {
    expect(DEFAULT_SETTINGS).toEqual({
      timeout: { connectMs: 60_000, sendMs: 60_000, readMs: 60_000 },
      maxBodySize: MAX_FRAME_BODY_BYTES,
      limits: { maxConcurrency: 32, maxQueue: 256, maxQueueBytes: 67_108_864 },
      tlsCa: undefined,
      logIntervalMs: 10_000,
      closeGraceMs: 500,
      breaker: { failures: 3, baseMs: 1000, maxMs: 30_000 },
      resolveEveryMs: 30_000,
      pipelining: 32,
      mirrorThreads: 1,
      mirrorThreadNice: 0,
    });
    expect(parse({}).target.timeouts).toEqual({ connectMs: 60_000, sendMs: 60_000, readMs: 60_000 });
  });
});
