/**
 * How a copy's headers derive from the request's: hop-by-hop headers removed, one Host (as
 * APISIX gave it), the conf's edits (set, remove, loop marker, correlation id) and a
 * Content-Length for the body. Pure functions of their arguments, used on the RPC thread and,
 * for copies built in a dispatch worker, there (copy-head.ts).
 */

/** A text entry (a header of the call): value undefined = the entry had no value. */
export interface HeaderEntry {
  readonly name: string;
  readonly value: string | undefined;
}

/** What a conf changes in every copy's headers (names of sets and removals in lower case). */
export interface HeadEdits {
  readonly headersSet: readonly (readonly [string, string])[];
  readonly headersRemove: ReadonlySet<string>;
  readonly markHeader: string | undefined;
  readonly correlationHeader: string | undefined;
}

/** Headers that describe one connection, not the request; never copied. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  // Not hop-by-hop by RFC, but a copy must not carry them: we compute Content-Length ourselves,
  // and `Expect: 100-continue` would make the copy wait for the target (the mirror's client never sends it).
  'content-length', 'expect', 'http2-settings',
]);

/** Extra header facts known only per request. */
export interface CopyHeaderContext {
  readonly bodyLength: number | undefined;
  /** Correlation id to put on the copy (already decided and set on the real request). */
  readonly correlationId: string | undefined;
}

/** Builds the copy's header list from the request's entries and the conf's edits. */
export function buildCopyHeaders(
  entries: readonly HeaderEntry[],
  conf: HeadEdits,
  ctx: CopyHeaderContext,
): [string, string][] {
  // Headers named in Connection are hop-by-hop for this request too (RFC 9110 §7.6.1).
  const connectionNamed = new Set<string>();
  for (const e of entries) {
    if (e.name.toLowerCase() === 'connection' && e.value) {
      for (const t of e.value.split(',')) connectionNamed.add(t.trim().toLowerCase());
    }
  }
  let out: [string, string][] = [];
  let sawHost = false;
  for (const e of entries) {
    const name = e.name.toLowerCase();
    if (e.value === undefined || name.startsWith(':')) continue;
    if (HOP_BY_HOP.has(name) || connectionNamed.has(name) || conf.headersRemove.has(name)) continue;
    if (name === 'host') {
      // One Host only: APISIX puts its upstream host there; a duplicate would be refused.
      if (sawHost) continue;
      sawHost = true;
    }
    out.push([name, e.value]);
  }
  const set = (name: string, value: string): void => {
    out = out.filter(([n]) => n !== name);
    out.push([name, value]);
  };
  for (const [name, value] of conf.headersSet) set(name, value);
  if (conf.markHeader) set(conf.markHeader, '1');
  if (conf.correlationHeader && ctx.correlationId !== undefined) set(conf.correlationHeader, ctx.correlationId);
  if (ctx.bodyLength !== undefined) out.push(['content-length', String(ctx.bodyLength)]);
  return out;
}

