/**
 * Structural comparison of two parsed JSON documents: object key order is ignored, numbers are
 * compared as numbers (`1.0` equals `1`; integers beyond 2^53 compare as the doubles JSON.parse
 * gives), arrays element by element in order. Ignored paths are skipped with their subtrees.
 */
import { shortValue, type FieldDifference } from './field-difference.js';
import { isIgnored, toPointer, type IgnorePattern } from './json-pointer-pattern.js';

/** At most this many differing fields are reported per comparison; the walk stops there. */
export const MAX_JSON_DIFFERENCES = 64;

/**
 * Deeper than this the walk does not recurse (a hostile body nested 10^5 levels would overflow
 * the stack): the two subtrees are compared with an explicit stack and reported as one field.
 */
export const MAX_JSON_DEPTH = 100;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function display(v: Json | undefined): string | null {
  if (v === undefined) return null;
  try {
    return shortValue(JSON.stringify(v));
  } catch {
    return '(too deeply nested to show)';
  }
}

/** Structural equality without recursion (object key order ignored). */
function deepEqual(x: Json, y: Json): boolean {
  const stack: [Json, Json][] = [[x, y]];
  while (stack.length) {
    const [a, b] = stack.pop()!;
    if (a === b) continue;
    if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
    if (Array.isArray(a)) {
      const bb = b as Json[];
      if (a.length !== bb.length) return false;
      for (let i = 0; i < a.length; i++) stack.push([a[i]!, bb[i]!]);
    } else {
      const oa = a as Record<string, Json>;
      const ob = b as Record<string, Json>;
      const ka = Object.keys(oa);
      if (ka.length !== Object.keys(ob).length) return false;
      for (const k of ka) {
        if (!Object.hasOwn(ob, k)) return false;
        stack.push([oa[k]!, ob[k]!]);
      }
    }
  }
  return true;
}

function kind(v: Json): 'null' | 'array' | 'object' | 'boolean' | 'number' | 'string' {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v as 'object' | 'boolean' | 'number' | 'string';
}

/** The differing fields of two JSON values, named `body:<pointer>`. */
export function diffJson(
  primary: unknown,
  candidate: unknown,
  ignore: readonly IgnorePattern[],
  limit = MAX_JSON_DIFFERENCES,
): FieldDifference[] {
  const out: FieldDifference[] = [];
  const path: string[] = [];

  const walk = (a: Json | undefined, b: Json | undefined): void => {
    if (out.length >= limit || isIgnored(ignore, path)) return;
    if (a === undefined || b === undefined) {
      if (a !== b) out.push({ field: `body:${toPointer(path)}`, primary: display(a), candidate: display(b) });
      return;
    }
    if (path.length >= MAX_JSON_DEPTH) {
      if (!deepEqual(a, b)) out.push({ field: `body:${toPointer(path)}`, primary: '(nested deeper than the compare depth)', candidate: '(differs)' });
      return;
    }
    const ka = kind(a);
    if (ka !== kind(b)) {
      out.push({ field: `body:${toPointer(path)}`, primary: display(a), candidate: display(b) });
      return;
    }
    if (ka === 'array') {
      const xa = a as Json[];
      const xb = b as Json[];
      const n = Math.max(xa.length, xb.length);
      for (let i = 0; i < n && out.length < limit; i++) {
        path.push(String(i));
        walk(xa[i], xb[i]);
        path.pop();
      }
      return;
    }
    if (ka === 'object') {
      const oa = a as Record<string, Json>;
      const ob = b as Record<string, Json>;
      // The primary's members in its order, then the candidate's extra ones: no set, no sort.
      for (const k of Object.keys(oa)) {
        if (out.length >= limit) return;
        path.push(k);
        walk(oa[k], Object.hasOwn(ob, k) ? ob[k] : undefined);
        path.pop();
      }
      for (const k of Object.keys(ob)) {
        if (out.length >= limit) return;
        if (Object.hasOwn(oa, k)) continue;
        path.push(k);
        walk(undefined, ob[k]);
        path.pop();
      }
      return;
    }
    if (a !== b) out.push({ field: `body:${toPointer(path)}`, primary: display(a), candidate: display(b) });
  };

  walk(primary as Json, candidate as Json);
  return out;
}
