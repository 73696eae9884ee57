/**
 * JSON pointers (RFC 6901) with a `*` wildcard segment, for `compare.body.ignore`:
 * `/ts` ignores the top-level `ts`, `/items/*\/id` the `id` of every element (or member) of
 * `items`. Matching a node ignores its whole subtree. A literal `*` key cannot be named apart
 * from the wildcard, which matches it anyway.
 */

/** A parsed pattern: its segments, `*` for any one segment. */
export interface IgnorePattern {
  readonly source: string;
  readonly segments: readonly string[];
}

/** Parses `/a/*\/b~1c`; throws on a string that is not a pointer. */
export function parseIgnorePattern(source: string): IgnorePattern {
  if (source === '') return { source, segments: [] };
  if (!source.startsWith('/')) throw new Error(`"${source}" is not a JSON pointer: it must start with "/"`);
  const segments = source.slice(1).split('/').map((s) => {
    if (/~[^01]|~$/.test(s)) throw new Error(`"${source}": "~" must be followed by 0 or 1`);
    return s.replace(/~1/g, '/').replace(/~0/g, '~');
  });
  return { source, segments };
}

/** True when some pattern names exactly this path. */
export function isIgnored(patterns: readonly IgnorePattern[], path: readonly string[]): boolean {
  outer: for (const p of patterns) {
    if (p.segments.length !== path.length) continue;
    for (let i = 0; i < path.length; i++) {
      const s = p.segments[i];
      if (s !== '*' && s !== path[i]) continue outer;
    }
    return true;
  }
  return false;
}

/** The JSON pointer of a path (escaping `~` and `/`). */
export function toPointer(path: readonly string[]): string {
  let out = '';
  for (const s of path) out += '/' + s.replace(/~/g, '~0').replace(/\//g, '~1');
  return out;
}
