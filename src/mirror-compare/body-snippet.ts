/**
 * A short, safe rendering of a held body for the report's side-by-side examples: JSON with
 * secret-named members redacted, other text cut, binary as length and hash. Text bodies are
 * shown as they are (cut): do not compare routes whose plain-text answers carry secrets, or
 * set `examples: 0`.
 */
import { createHash } from 'node:crypto';
import type { HeldAnswer } from './answer.js';
import { decodeBody } from './body-decode.js';
import { shortValue } from './field-difference.js';
import { redactJson } from './redact.js';

export const SNIPPET_CHARS = 2048;

function isText(b: Buffer): boolean {
  // Control bytes other than tab/newline/CR, or invalid UTF-8, mean binary.
  if (/[\u0000-\u0008\u000e-\u001f]/.test(b.toString('latin1'))) return false;
  return !b.toString('utf8').includes('\ufffd');
}

/** What the report shows of a body. */
export function bodySnippet(a: HeldAnswer, maxDecodedBytes: number): string {
  if (!a.bodyFetched) return '(body not fetched)';
  if (a.body === undefined) {
    return `(${a.bodyBytes ?? '?'} bytes over the compare cap${a.bodySha256 ? `, sha256 ${a.bodySha256.slice(0, 16)}` : ''})`;
  }
  if (a.body.length === 0) return '(empty)';
  const decoded = decodeBody(a.body, a.headers, maxDecodedBytes);
  const b = decoded.ok ? decoded.body : a.body;
  if (!isText(b)) return `(${b.length} bytes binary, sha256 ${createHash('sha256').update(b).digest('hex').slice(0, 16)})`;
  const text = b.toString('utf8');
  try {
    return shortValue(JSON.stringify(redactJson(JSON.parse(text)), null, 1), SNIPPET_CHARS);
  } catch {
    return shortValue(text, SNIPPET_CHARS);
  }
}
