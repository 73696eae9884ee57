/**
 * Body comparison. JSON (by the primary's content-type) structurally with ignore patterns;
 * other text and binary bodies by equality, reported with their lengths. Bodies over the cap
 * (or truncated by the engine) are compared by length and SHA-256 of the bytes as received
 * when both sides have them, and not compared otherwise. HEAD answers and 1xx/204/304 carry
 * no body and are not compared.
 */
import { createHash } from 'node:crypto';
import type { HeldAnswer } from './answer.js';
import { decodeBody } from './body-decode.js';
import type { CompareConf } from './conf.js';
import { shortValue, type FieldDifference } from './field-difference.js';
import { diffJson } from './json-diff.js';

/** How the bodies were compared (or why not). */
export type BodyComparison = 'json' | 'text' | 'binary' | 'hash' | 'no_body' | 'off' | 'not_fetched' | 'over_cap_unhashed';

export interface BodyDiff {
  readonly how: BodyComparison;
  readonly differences: FieldDifference[];
}

type BodyKind = 'json' | 'text' | 'binary';

function contentType(a: HeldAnswer): string {
  for (const [n, v] of a.headers) if (n.toLowerCase() === 'content-type') return v.toLowerCase();
  return '';
}

function kindOf(type: string): BodyKind {
  const mime = type.split(';', 1)[0]!.trim();
  if (mime === 'application/json' || mime.endsWith('+json')) return 'json';
  if (mime.startsWith('text/') || mime.endsWith('+xml') || mime === 'application/xml'
    || mime === 'application/javascript' || mime === 'application/x-www-form-urlencoded') return 'text';
  return 'binary';
}

function hashSummary(bytes: number | undefined, sha: string | undefined): string {
  return `${bytes ?? '?'} bytes, sha256 ${sha ? sha.slice(0, 16) : '?'}`;
}

function binarySummary(b: Buffer): string {
  return hashSummary(b.length, createHash('sha256').update(b).digest('hex'));
}

/** True when a status or method means the answer has no body to compare. */
export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

function byHash(primary: HeldAnswer, candidate: HeldAnswer, pSha: string | undefined, cSha: string | undefined): BodyDiff {
  if (pSha === undefined || cSha === undefined || primary.bodyBytes === undefined || candidate.bodyBytes === undefined) {
    return { how: 'over_cap_unhashed', differences: [] };
  }
  const same = pSha === cSha && primary.bodyBytes === candidate.bodyBytes;
  return {
    how: 'hash',
    differences: same ? [] : [{ field: 'body', primary: hashSummary(primary.bodyBytes, pSha), candidate: hashSummary(candidate.bodyBytes, cSha) }],
  };
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Compares the bodies of two held answers under the route's body settings. */
export function diffBodies(method: string, primary: HeldAnswer, candidate: HeldAnswer, body: CompareConf['body']): BodyDiff {
  if (!body) return { how: 'off', differences: [] };
  if (hasNoBody(method, primary.status)) return { how: 'no_body', differences: [] };
  if (!primary.bodyFetched) return { how: 'not_fetched', differences: [] };
  if (primary.body === undefined || candidate.body === undefined) {
    return byHash(primary, candidate, primary.bodySha256 ?? (primary.body && sha(primary.body)), candidate.bodySha256 ?? (candidate.body && sha(candidate.body)));
  }
  const dp = decodeBody(primary.body, primary.headers, body.maxBytes);
  const dc = decodeBody(candidate.body, candidate.headers, body.maxBytes);
  if (!dp.ok || !dc.ok) {
    // Not decodable or too large decoded: the bytes as received are all that can be compared.
    return byHash(primary, candidate, sha(primary.body), sha(candidate.body));
  }
  const a = dp.body;
  const b = dc.body;
  const kind = kindOf(contentType(primary));
  // Identical bytes are equal whatever the type and ignore rules: the common case costs no parse.
  if (a.equals(b)) return { how: kind, differences: [] };
  if (kind === 'json' && a.length > 0 && b.length > 0) {
    let ja: unknown;
    let jb: unknown;
    let parsed = true;
    try {
      ja = JSON.parse(a.toString('utf8'));
      jb = JSON.parse(b.toString('utf8'));
    } catch {
      parsed = false;
    }
    if (parsed) return { how: 'json', differences: diffJson(ja, jb, body.ignore) };
  }
  if (kind === 'binary') return { how: 'binary', differences: [{ field: 'body', primary: binarySummary(a), candidate: binarySummary(b) }] };
  const text = (x: Buffer): string => `${shortValue(x.toString('utf8'), 256)} (${x.length} bytes)`;
  return { how: 'text', differences: [{ field: 'body', primary: text(a), candidate: text(b) }] };
}
