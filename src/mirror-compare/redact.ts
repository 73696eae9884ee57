/**
 * What the report and the diff log must never show: credentials in headers, and JSON fields
 * whose name says they hold a secret. Values are replaced, names kept, so an operator still
 * sees that the field differed.
 */
import type { AnswerHeaders } from './answer.js';
import type { FieldDifference } from './field-difference.js';

export const REDACTED = '[redacted]';

/** Header names whose values are credentials (lower case). */
export const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key', 'apikey',
  'x-auth-token', 'x-access-token', 'x-csrf-token', 'x-xsrf-token', 'x-amz-security-token',
  'x-goog-api-key', 'www-authenticate', 'proxy-authenticate',
]);

/** JSON member names (the last pointer segment) whose values are treated as secrets. */
const SECRET_NAME = /pass(word|wd)?|secret|token|api[-_]?key|authori[sz]ation|cookie|session|credential|private[-_]?key/i;

/** True when a header's value must not be shown. */
export function isCredentialHeader(name: string): boolean {
  return CREDENTIAL_HEADERS.has(name.toLowerCase());
}

function lastSegment(pointer: string): string {
  const i = pointer.lastIndexOf('/');
  return pointer.slice(i + 1).replace(/~1/g, '/').replace(/~0/g, '~');
}

/** A difference with secret values replaced (set-cookie keeps its cookie names, which is all it compares). */
export function redactDifference(d: FieldDifference): FieldDifference {
  const secret = d.field.startsWith('header:')
    ? d.field !== 'header:set-cookie' && isCredentialHeader(d.field.slice(7))
    : d.field.startsWith('body:') && SECRET_NAME.test(lastSegment(d.field.slice(5)));
  if (!secret) return d;
  return { field: d.field, primary: d.primary === null ? null : REDACTED, candidate: d.candidate === null ? null : REDACTED };
}

/** Headers with credential values replaced. */
export function redactHeaders(headers: AnswerHeaders): [string, string][] {
  return headers.map(([n, v]) => [n, isCredentialHeader(n) ? REDACTED : v]);
}

/** A parsed JSON value with the values of secret-named members replaced, recursively. */
export function redactJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactJson);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_NAME.test(k) ? REDACTED : redactJson(v);
    return out;
  }
  return value;
}
