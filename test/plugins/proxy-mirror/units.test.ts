import { describe, it, expect } from 'vitest';
import { Ajv } from 'ajv';
import { gzipSync } from 'node:zlib';
import { proxyMirrorSchema, MAX_FRAME_BODY_BYTES } from '../../../src/plugins/proxy-mirror/schema.js';
import {
  DEFAULT_SETTINGS, grpcMethodAllowed, parseDuration, parseProxyMirrorConf, parseSettings,
} from '../../../src/plugins/proxy-mirror/conf.js';
import { hashToUnit } from '../../../src/plugins/proxy-mirror/sampler.js';
import { buildCopyHeaders, encodeArgs, encodeMirrorPath, mirrorUri } from '../../../src/plugins/proxy-mirror/copy-builder.js';
import * as grpc from '@grpc/grpc-js';
import { GrpcBodyError, splitGrpcMessages } from '../../../src/plugins/proxy-mirror/grpc.js';
import { headersToMetadata } from '../../../src/mirror-dispatch/grpc-node.js';
import { LogLimiter } from '../../../src/plugins/proxy-mirror/log-limiter.js';
import type { Logger } from '../../../src/plugin-api/index.js';
import { ConfError } from '../../../src/plugin-api/index.js';
import { grpcFrame } from './fixtures.js';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(proxyMirrorSchema);

describe('proxy-mirror schema (APISIX-compatible)', () => {
  it('accepts APISIX host forms and applies APISIX defaults', () => {
    for (const host of ['http://127.0.0.1:8081', 'https://mirror.example.com', 'grpc://10.0.0.1:50051', 'grpcs://a-b.c:443', 'http://[::1]:80']) {
      const conf: Record<string, unknown> = { host };
      expect(validate(conf), host).toBe(true);
      expect(conf).toMatchObject({ path_concat_mode: 'replace', sample_ratio: 1, tls_verify: true });
    }
  });

  it('rejects what APISIX rejects', () => {
    const bad: Record<string, unknown>[] = [
      {},
      { host: 'ftp://x' },
      { host: 'http://x/path' },
      { host: 'http://x', path: 'no-slash' },
      { host: 'http://x', path: '/a?b' },
      { host: 'http://x', path: '/a&b' },
      { host: 'http://x', path_concat_mode: 'append' },
      { host: 'http://x', sample_ratio: 0 },
      { host: 'http://x', sample_ratio: 1.5 },
      { host: 'http://x', timeout: { connect: '5 seconds' } },
      { host: 'http://x', max_body_size: MAX_FRAME_BODY_BYTES + 1 },
      { host: 'http://x', sample_key: 'cookie:x' },
    ];
    for (const conf of bad) expect(validate(conf), JSON.stringify(conf)).toBe(false);
  });

  it('keeps the largest body inside one 16 MiB - 1 frame with room for FlatBuffers', () => {
    expect(MAX_FRAME_BODY_BYTES).toBeLessThan(16 * 1024 * 1024 - 1);
    expect(DEFAULT_SETTINGS.maxBodySize).toBe(MAX_FRAME_BODY_BYTES);
  });
});

describe('conf parsing', () => {
  it('parses durations as APISIX writes them or as milliseconds', () => {
    expect(parseDuration('2000ms', 'f')).toBe(2000);
    expect(parseDuration('60s', 'f')).toBe(60_000);
    expect(parseDuration('1m', 'f')).toBe(60_000);
    expect(parseDuration(150, 'f')).toBe(150);
    expect(() => parseDuration('soon', '/timeout/read')).toThrow(/\/timeout\/read/);
  });

  it('takes global timeouts and limits from settings and lets a route override them', () => {
    const settings = parseSettings({ timeout: { connect: '2000ms', read: '3s', send: 4000 }, max_concurrency: 3, max_body_size: 1000 });
    const conf = parseProxyMirrorConf({ host: 'http://127.0.0.1:9', timeout: { read: '500ms' }, max_queue: 7 }, settings);
    expect(conf.target.timeouts).toEqual({ connectMs: 2000, readMs: 500, sendMs: 4000 });
    expect(conf.target.limits).toEqual({ maxConcurrency: 3, maxQueue: 7, maxQueueBytes: DEFAULT_SETTINGS.limits.maxQueueBytes });
    expect(conf.maxBodySize).toBe(1000);
    expect(conf.target.nodes.map((n) => n.authority)).toEqual(['127.0.0.1:9']);
    expect(() => parseSettings({ max_queue: -1 })).toThrow(/max_queue/);
  });

  it('resolves schemes, default ports and IPv6 hosts', () => {
    const p = (host: string) => parseProxyMirrorConf({ host }, DEFAULT_SETTINGS).target;
    expect(p('https://m.example')).toMatchObject({ nodes: [{ authority: 'm.example:443' }], tls: true, grpc: false });
    expect(p('grpc://10.0.0.1')).toMatchObject({ nodes: [{ authority: '10.0.0.1:80' }], tls: false, grpc: true });
    expect(p('grpcs://[::1]:5')).toMatchObject({ nodes: [{ authority: '[::1]:5', hostname: '::1' }], tls: true, grpc: true });
  });

  it('throws ConfError naming the field', () => {
    const err = (v: unknown): ConfError => {
      try { parseProxyMirrorConf(v, DEFAULT_SETTINGS); } catch (e) { return e as ConfError; }
      throw new Error('no error');
    };
    expect(err({ host: 'tcp://x' }).field).toBe('/host');
    expect(err({ host: 'http://x', headers: { set: { a: 1 } } }).field).toBe('/headers/set/a');
    expect(err({ host: 'http://x', grpc_methods: ['nope'] }).field).toBe('/grpc_methods/0');
    expect(err({ host: 'http://x', timeout: { send: -1 } }).field).toBe('/timeout/send');
  });

  it('matches gRPC method lists exactly or by service wildcard', () => {
    const { grpcMethods } = parseProxyMirrorConf({ host: 'grpc://x', grpc_methods: ['/a.S/Unary', '/b.T/*'] }, DEFAULT_SETTINGS);
    expect(grpcMethodAllowed(grpcMethods, '/a.S/Unary')).toBe(true);
    expect(grpcMethodAllowed(grpcMethods, '/a.S/Chat')).toBe(false);
    expect(grpcMethodAllowed(grpcMethods, '/b.T/Anything')).toBe(true);
    expect(grpcMethodAllowed(grpcMethods, '/b.TX/Anything')).toBe(false);
  });
});

describe('sampling hash', () => {
  it('is deterministic and spreads keys evenly', () => {
    expect(hashToUnit('user-42')).toBe(hashToUnit('user-42'));
    let below = 0;
    for (let i = 0; i < 10_000; i++) {
      const h = hashToUnit(`user-${i}`);
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThan(1);
      if (h < 0.25) below++;
    }
    // Binomial(10000, 0.25): mean 2500, sd ~43; 6 sd bounds.
    expect(below).toBeGreaterThan(2500 - 260);
    expect(below).toBeLessThan(2500 + 260);
  });
});

describe('copy builder', () => {
  it('encodes decoded paths and keeps valid escapes', () => {
    expect(encodeMirrorPath('/a b/café/~u')).toBe('/a%20b/caf%C3%A9/~u');
    expect(encodeMirrorPath('/v2/caf%C3%A9/a%20b')).toBe('/v2/caf%C3%A9/a%20b');
    expect(encodeMirrorPath('/100%/x?y#z')).toBe('/100%25/x%3Fy%23z');
    expect(encodeMirrorPath('/emoji/😀')).toBe('/emoji/%F0%9F%98%80');
  });

  it('builds URIs for every path mode', () => {
    const none = { path: undefined, pathConcatMode: 'replace' as const };
    const rep = { path: '/m', pathConcatMode: 'replace' as const };
    const pre = { path: '/m', pathConcatMode: 'prefix' as const };
    expect(mirrorUri(none, '/r', 'a=1')).toBe('/r?a=1');
    expect(mirrorUri(rep, '/r', 'a=1')).toBe('/m?a=1');
    expect(mirrorUri(pre, '/r', 'a=1')).toBe('/m/r?a=1');
    expect(mirrorUri(pre, '/r', undefined)).toBe('/m/r');
    expect(mirrorUri(rep, '/r', '')).toBe('/m');
    expect(encodeArgs([{ name: 'flag', value: undefined }, { name: 'q', value: 'a b' }])).toBe('flag&q=a%20b');
  });

  it('drops hop-by-hop headers, keeps repeats and applies edits in order', () => {
    const headers = buildCopyHeaders(
      [
        { name: 'host', value: 'up.example' },
        { name: 'connection', value: 'keep-alive, x-conn-only' },
        { name: 'x-conn-only', value: '1' },
        { name: 'keep-alive', value: 'timeout=5' },
        { name: 'transfer-encoding', value: 'chunked' },
        { name: 'te', value: 'trailers' },
        { name: 'upgrade', value: 'h2c' },
        { name: 'proxy-connection', value: 'x' },
        { name: 'trailer', value: 'x' },
        { name: 'content-length', value: '999' },
        { name: 'expect', value: '100-continue' },
        { name: 'x-multi', value: 'a' },
        { name: 'x-multi', value: 'b' },
        { name: 'authorization', value: 'secret' },
        { name: 'x-set', value: 'old' },
      ],
      {
        headersSet: [['x-set', 'new'], ['x-added', 'yes']],
        headersRemove: new Set(['authorization']),
        markHeader: 'x-mirrored',
        correlationHeader: 'x-request-id',
      },
      { bodyLength: 3, correlationId: 'cid-1' },
    );
    expect(headers).toEqual([
      ['host', 'up.example'], ['x-multi', 'a'], ['x-multi', 'b'],
      ['x-set', 'new'], ['x-added', 'yes'], ['x-mirrored', '1'], ['x-request-id', 'cid-1'], ['content-length', '3'],
    ]);
  });
});

describe('gRPC body', () => {
  it('splits length-prefixed messages, decompresses gzip and rejects truncation', () => {
    const a = Buffer.from('first');
    const b = Buffer.alloc(0);
    expect(splitGrpcMessages(grpcFrame(a, b), undefined)).toEqual([a, b]);
    const z = gzipSync(Buffer.from('zipped'));
    const framed = Buffer.concat([Buffer.from([1, 0, 0, 0, z.length]), z]);
    expect(splitGrpcMessages(framed, 'gzip')).toEqual([Buffer.from('zipped')]);
    expect(() => splitGrpcMessages(framed, 'snappy')).toThrow(GrpcBodyError);
    expect(() => splitGrpcMessages(grpcFrame(a).subarray(0, 7), undefined)).toThrow(GrpcBodyError);
  });

  it('turns headers into metadata, leaving transport headers out', () => {
    const md = headersToMetadata(grpc, [
      ['host', 'h'], ['content-type', 'application/grpc'], ['te', 'trailers'], ['x-user', 'alice'],
      ['x-bin', Buffer.from([0, 1, 2]).toString('base64')],
    ]);
    expect(md.get('x-user')).toEqual(['alice']);
    expect(md.get('x-bin')).toEqual([Buffer.from([0, 1, 2])]);
    expect(md.get('content-type')).toEqual([]);
    expect(md.get('host')).toEqual([]);
  });
});

describe('log limiter', () => {
  it('logs once per key and interval and reports what it suppressed', () => {
    const lines: Record<string, unknown>[] = [];
    const logger: Logger = {
      debug: () => undefined, info: () => undefined, error: () => undefined,
      warn: (obj) => { lines.push(obj as Record<string, unknown>); },
      child: () => logger,
    };
    let t = 0;
    const lim = new LogLimiter(logger, 1000, () => t);
    for (let i = 0; i < 500; i++) lim.warn('a', { i }, 'dead target');
    lim.warn('b', {}, 'other target');
    expect(lines).toHaveLength(2);
    t = 1000;
    lim.warn('a', {}, 'dead target');
    expect(lines[2]).toMatchObject({ suppressed: 499 });
  });
});
