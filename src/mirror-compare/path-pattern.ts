/**
 * The path pattern noise is learned for: the request path without its query, with segments
 * that look like ids (numbers, UUIDs, long hex or long mixed tokens) collapsed to `:id`, so
 * `/users/42/orders/9f1c…` and `/users/7/orders/03ab…` share what is learned.
 */
const NUMERIC = /^-?\d+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = /^[0-9a-f]{16,}$/i;
const TOKEN = /^(?=.*\d)[A-Za-z0-9_-]{20,}$/;

/** Longest path kept in a pattern; past it the pattern ends in `…` (bounds the learner's keys). */
const MAX_PATTERN_CHARS = 256;

/** `/users/42?x=1` → `/users/:id`. */
export function pathPattern(path: string): string {
  const q = path.indexOf('?');
  const bare = q < 0 ? path : path.slice(0, q);
  const out = bare.split('/').map((s) => (NUMERIC.test(s) || UUID.test(s) || HEX.test(s) || TOKEN.test(s) ? ':id' : s)).join('/');
  return out.length <= MAX_PATTERN_CHARS ? out : `${out.slice(0, MAX_PATTERN_CHARS)}…`;
}

/** `body:/items/3/ts` → `body:/items/*\/ts`: array positions are not part of what a field is. */
export function fieldPattern(field: string): string {
  return field.startsWith('body:/') ? field.replace(/\/\d+(?=\/|$)/g, '/*') : field;
}
