import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfError } from '../../src/plugin-api/index.js';
import {
  DEFAULT_BODY_MAX_BYTES, DEFAULT_IGNORED_HEADERS, DEFAULT_MAX_AGE_MS, DEFAULT_MAX_PENDING,
  DEFAULT_MAX_PENDING_BYTES, DEFAULT_NOISE_MIN_RATE, DEFAULT_NOISE_MIN_SAMPLES, parseCompareConf,
} from '../../src/mirror-compare/conf.js';

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfError);
    return (err as ConfError).field;
  }
  throw new Error('expected a ConfError');
}

describe('compare conf', () => {
  it('an empty block compares status, headers (minus the default ignore list) and bodies, with documented defaults', () => {
    const c = parseCompareConf({});
    expect(c.status).toBe(true);
    expect(c.headers.mode).toBe('ignore');
    expect(c.headers.mode === 'ignore' && [...c.headers.names].sort()).toEqual([...DEFAULT_IGNORED_HEADERS].sort());
    expect(c.body).toEqual({ ignore: [], maxBytes: DEFAULT_BODY_MAX_BYTES });
    expect(c.secondary).toBeUndefined();
    expect([c.noiseMinSamples, c.noiseMinRate, c.maxPending, c.maxPendingBytes, c.maxAgeMs])
      .toEqual([DEFAULT_NOISE_MIN_SAMPLES, DEFAULT_NOISE_MIN_RATE, DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_BYTES, DEFAULT_MAX_AGE_MS]);
    expect(parseCompareConf(undefined)).toEqual(c);
  });

  it('the default ignore list holds the per-instance headers and not set-cookie (compared by cookie names)', () => {
    for (const h of ['date', 'server', 'x-request-id', 'content-length', 'connection', 'keep-alive', 'transfer-encoding', 'age', 'etag']) {
      expect(DEFAULT_IGNORED_HEADERS).toContain(h);
    }
    expect(DEFAULT_IGNORED_HEADERS).not.toContain('set-cookie');
    expect(DEFAULT_IGNORED_HEADERS).not.toContain('content-type');
  });

  it('headers.ignore adds to the defaults (lower-cased); headers.include replaces them; false turns headers off', () => {
    const ignore = parseCompareConf({ headers: { ignore: ['X-Build'] } }).headers;
    expect(ignore.mode === 'ignore' && ignore.names.has('x-build') && ignore.names.has('date')).toBe(true);
    const include = parseCompareConf({ headers: { include: ['Content-Type', 'cache-control'] } }).headers;
    expect(include).toEqual({ mode: 'include', names: new Set(['content-type', 'cache-control']) });
    expect(parseCompareConf({ headers: false }).headers).toEqual({ mode: 'off' });
  });

  it('body ignore pointers and wildcard paths are parsed; body false turns bodies off', () => {
    const c = parseCompareConf({ body: { ignore: ['/ts', '/items/*/id', '/a~1b/c~0d'], max_bytes: 4096 } });
    expect(c.body?.maxBytes).toBe(4096);
    expect(c.body?.ignore.map((p) => p.segments)).toEqual([['ts'], ['items', '*', 'id'], ['a/b', 'c~d']]);
    expect(parseCompareConf({ body: false }).body).toBeUndefined();
  });

  it('max_age takes milliseconds or a duration string', () => {
    expect(parseCompareConf({ max_age: 1500 }).maxAgeMs).toBe(1500);
    expect(parseCompareConf({ max_age: '2s' }).maxAgeMs).toBe(2000);
    expect(parseCompareConf({ max_age: '250ms' }).maxAgeMs).toBe(250);
  });

  it('secondary and the noise settings are kept', () => {
    const c = parseCompareConf({ secondary: 'http://127.0.0.1:9001', noise_min_samples: 5, noise_min_rate: 0.5 });
    expect([c.secondary, c.noiseMinSamples, c.noiseMinRate]).toEqual(['http://127.0.0.1:9001', 5, 0.5]);
  });

  it('errors name the field to fix', () => {
    expect(fieldOf(() => parseCompareConf({ statuss: true }))).toBe('/compare');
    expect(fieldOf(() => parseCompareConf({ body: { ignore: ['ts'] } }))).toBe('/compare/body/ignore/0');
    expect(fieldOf(() => parseCompareConf({ body: { ignore: ['/a~2'] } }))).toBe('/compare/body/ignore/0');
    expect(fieldOf(() => parseCompareConf({ max_pending: 0 }))).toBe('/compare/max_pending');
    expect(fieldOf(() => parseCompareConf({ max_age: '10 s' }))).toMatch(/^\/compare\/max_age/);
    expect(fieldOf(() => parseCompareConf({ secondary: 'ftp://x' }))).toBe('/compare/secondary');
    expect(fieldOf(() => parseCompareConf({ headers: { include: ['bad name'] } }))).toMatch(/^\/compare\/headers/);
    expect(fieldOf(() => parseCompareConf({ noise_min_rate: 0 }))).toBe('/compare/noise_min_rate');
    expect(fieldOf(() => parseCompareConf('yes'))).toBe('/compare');
  });

  it('does not change the object it was given (defaults go into a copy)', () => {
    const raw = { body: { ignore: ['/ts'] } };
    parseCompareConf(raw);
    expect(raw).toEqual({ body: { ignore: ['/ts'] } });
  });
});

describe('docs/compare.md', () => {
  const doc = readFileSync(new URL('../../docs/compare.md', import.meta.url), 'utf8');
  const blocks = (lang: string) => [...doc.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);

  it('its JSON example and the compare blocks of its apisix.yaml routes are valid', () => {
    const json = blocks('json');
    expect(json).toHaveLength(1);
    const example = JSON.parse(json[0]!) as { compare: unknown };
    expect(parseCompareConf(example.compare).secondary).toBe('http://v1-b.internal:8080');
    const [yamlText] = blocks('yaml');
    const routes = (parseYaml(yamlText!) as { routes: { plugins: Record<string, { conf: { name: string; value: string }[] }> }[] }).routes;
    const phases = Object.keys(routes[0]!.plugins).sort();
    expect(phases).toEqual(['ext-plugin-post-resp', 'ext-plugin-pre-req']);
    for (const phase of phases) {
      for (const entry of routes[0]!.plugins[phase]!.conf) {
        const conf = parseCompareConf((JSON.parse(entry.value) as { compare: unknown }).compare);
        expect(conf.body?.ignore.map((p) => p.source)).toEqual(['/generated_at']);
      }
    }
  });

  it('lists the default ignored headers the code uses', () => {
    for (const h of DEFAULT_IGNORED_HEADERS) expect(doc).toContain(`\`${h}\``);
  });
});
