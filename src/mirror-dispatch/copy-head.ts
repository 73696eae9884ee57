/**
 * The copy's HTTP/1.1 request head built straight from the call's header bytes: the bytes
 * `requestHead(method, uri, buildCopyHeaders(entries, conf, ctx), bodyLength, authority)` gives
 * (copy-builder.ts, h1/request-head.ts), without decoding a header into a string or encoding it
 * back. For the common copy that is most of what the RPC thread spent on it (header strings,
 * the header list, the head string and its UTF-8 encoding).
 *
 * Whenever the bytes could differ from that path's, or that path would refuse the copy, this
 * gives undefined and the caller takes the string path, which decides (and names the error):
 * a non-ASCII header name, a byte ≥ 0x80 in a kept value (invalid UTF-8 would be replaced
 * there), a CR, LF or NUL in a value, a name that is not a token, a `connection` header (its
 * tokens name more headers to drop), a target with spaces or controls, a head with no Host
 * (the node's authority is known only later), or a conf whose edits set content-length or
 * transfer-encoding. test/plugins/proxy-mirror/copy-head.test.ts checks the equality on
 * generated requests and confs.
 *
 * A copy sent from a dispatch worker travels as these bytes (a RawCopy) and its head is built
 * there (headOfRawCopy), so the RPC thread only copies bytes.
 */
import { HOP_BY_HOP, buildCopyHeaders, type HeadEdits, type HeaderEntry } from './copy-headers.js';
import { InvalidRequestError, requestHead } from './h1/request-head.js';
import { uriOfCall, type UriRule } from './copy-uri.js';
import { writeLatin1, writeUtf8 } from './ascii-bytes.js';

type HeadConf = HeadEdits;

/** The header entries of a request as bytes (the call's FlatBuffers payload and where each entry is). */
export interface HeaderBytes {
  readonly bytes: Buffer;
  /** Four int32 per entry: name start, end, value start, end (-1, -1: no value). */
  readonly spans: ArrayLike<number>;
}

/**
 * A copy whose head is still to be built: the request's header bytes and the conf's edits.
 * With `uriRule`, `bytes` is the whole HTTPReqCall payload and the copy's target is built from
 * its path and args too (copy-uri.ts uriOfCall); the copy's `uri` is then ''.
 */
export interface RawCopy extends HeaderBytes {
  readonly edits: HeadEdits;
  readonly correlationId: string | undefined;
  readonly uriRule: UriRule | undefined;
}

/** What a conf adds to and removes from every copy, precomputed once per conf. */
interface Recipe {
  /** Lower-case names of the call's headers that are not copied. */
  readonly dropped: ReadonlySet<string>;
  /** What to do with each header name seen so far (by a hash of its lower-case bytes; bounded). */
  readonly seen: Map<number, SeenName>;
  /**
   * The name last seen at each entry index (up to MAX_ORDER): a client sends its headers in the
   * same order call after call, so the name is compared with it as it is copied, and the hash
   * and the map are needed only when it differs.
   */
  readonly order: (SeenName | undefined)[];
  /** `name: value\r\n` of the conf's set headers and marker, in the order the string path ends with. */
  readonly sets: Buffer;
  readonly setsHost: boolean;
  readonly correlationHeader: string | undefined;
}

// Per byte of a name: its lower case when it is a tchar (RFC 9110 §5.6.2, as h1/request-head.ts
// checks names), else 0. Per byte of a value: 1 when it may not be copied (NUL, CR, LF, and
// ≥ 0x80, which the string path would decode and could replace). One table load per byte.
const NAME_BYTE = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  NAME_BYTE[c.charCodeAt(0)] = c.toLowerCase().charCodeAt(0);
}
const VALUE_BAD = new Uint8Array(256);
VALUE_BAD[0] = VALUE_BAD[0x0a] = VALUE_BAD[0x0d] = 1;
VALUE_BAD.fill(1, 0x80);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;
const BAD_TARGET = /[\x00-\x20\x7f]/;

const recipes = new WeakMap<HeadConf, Recipe | null>();

/** The conf's recipe, or null when its edits cannot take the byte path. */
function recipeOf(conf: HeadConf): Recipe | null {
  let r = recipes.get(conf);
  if (r !== undefined) return r;
  // The string path's `set`: a later set of a name replaces the earlier one, at the end.
  let sets: [string, string][] = [];
  const set = (name: string, value: string): void => {
    sets = sets.filter(([n]) => n !== name);
    sets.push([name, value]);
  };
  for (const [name, value] of conf.headersSet) set(name, value);
  if (conf.markHeader) set(conf.markHeader, '1');
  if (conf.correlationHeader) sets = sets.filter(([n]) => n !== conf.correlationHeader);
  const names = [...sets.map(([n]) => n), ...(conf.correlationHeader ? [conf.correlationHeader] : [])];
  const safe = sets.every(([n, v]) => TOKEN.test(n) && !BAD_VALUE.test(v))
    && names.every((n) => TOKEN.test(n) && n.toLowerCase() !== 'content-length' && n.toLowerCase() !== 'transfer-encoding');
  if (!safe) {
    recipes.set(conf, null);
    return null;
  }
  r = {
    dropped: new Set([...HOP_BY_HOP, ...conf.headersRemove, ...names]),
    seen: new Map(),
    order: [],
    sets: Buffer.from(sets.map(([n, v]) => `${n}: ${v}\r\n`).join(''), 'utf8'),
    setsHost: sets.some(([n]) => n.toLowerCase() === 'host'),
    correlationHeader: conf.correlationHeader,
  };
  recipes.set(conf, r);
  return r;
}

/** What a copy does with a header: copy it, drop it, keep only its first (Host), or give up (Connection). */
const enum NameClass { Keep, Drop, Host, Connection }

interface SeenName {
  /** The lower-case name's bytes (compared as bytes: cheaper than charCodeAt of a string). */
  readonly bytes: Uint8Array;
  readonly cls: NameClass;
}

/** Bound on the names a recipe remembers (they repeat from call to call). */
const MAX_NAMES = 1024;

/** Entry indexes whose last name a recipe remembers (`Recipe.order`). */
const MAX_ORDER = 64;

/**
 * The header name whose lower-case bytes are out[start, end): looked up among the names seen by
 * their hash (their bytes compared, so a hash collision only costs a miss), else decided from
 * the name's string once.
 */
function nameOf(recipe: Recipe, out: Buffer, start: number, end: number): SeenName {
  let h = 0x811c9dc5;
  for (let k = start; k < end; k++) h = Math.imul(h ^ out[k]!, 0x01000193);
  h &= 0x3fffffff;
  const known = recipe.seen.get(h);
  if (known !== undefined) {
    const bytes = known.bytes;
    const n = bytes.length;
    if (n === end - start) {
      let k = 0;
      while (k < n && out[start + k] === bytes[k]) k++;
      if (k === n) return known;
    }
  }
  const name = out.toString('latin1', start, end);
  const cls = name === 'connection' ? NameClass.Connection
    : recipe.dropped.has(name) ? NameClass.Drop
      : name === 'host' ? NameClass.Host : NameClass.Keep;
  const seen: SeenName = { bytes: Uint8Array.from(out.subarray(start, end)), cls };
  if (recipe.seen.size < MAX_NAMES) recipe.seen.set(h, seen);
  return seen;
}

/**
 * Heads are cut from slabs of this many bytes, one after the other (a head is a view of its
 * slab). `Buffer.allocUnsafe` reserved an upper bound of the head's size in Node's pool and cut
 * a second view once the size was known; here there is one view per head. A slab lives as long
 * as any head cut from it, so its size is that of Node's pool: a head held long (a copy queued
 * for a slow target) keeps no more memory than it did. 32 KiB slabs measured the same
 * (docs/performance.md, "Mirror dispatch, tenth pass").
 */
const SLAB_BYTES = 8 * 1024;
/** The slab heads are cut from; the first head allocates it. */
let slab = Buffer.alloc(0);
let slabUsed = SLAB_BYTES;

/** What a copy adds per request. */
export interface CopyHeadContext {
  readonly bodyLength: number | undefined;
  readonly correlationId: string | undefined;
}

/**
 * The copy's request head (method line, headers, empty line), or undefined when the string
 * path must build it (see the file comment).
 */
export function copyHeadFromBytes(raw: HeaderBytes, method: string, uri: string, conf: HeadConf, ctx: CopyHeadContext): Buffer | undefined {
  if (uri === '' || BAD_TARGET.test(uri)) return undefined;
  const recipe = recipeOf(conf);
  if (!recipe) return undefined;
  const corr = recipe.correlationHeader !== undefined && ctx.correlationId !== undefined ? ctx.correlationId : undefined;
  if (corr !== undefined && BAD_VALUE.test(corr)) return undefined;
  const { bytes: b, spans } = raw;
  // Upper bound of the head's size: everything copied, plus what is added.
  let bound = method.length + Buffer.byteLength(uri) + 13 + recipe.sets.length + 40;
  for (let i = 0; i < spans.length; i += 4) bound += spans[i + 1]! - spans[i]! + Math.max(0, spans[i + 3]! - spans[i + 2]!) + 4;
  if (corr !== undefined) bound += recipe.correlationHeader!.length + Buffer.byteLength(corr) + 4;
  // Cut from the slab (a head larger than a quarter of it gets a buffer of its own).
  let out: Buffer;
  let start = 0;
  if (bound > SLAB_BYTES >> 2) {
    out = Buffer.allocUnsafe(bound);
  } else {
    if (slabUsed + bound > SLAB_BYTES) {
      slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      slabUsed = 0;
    }
    out = slab;
    start = slabUsed;
  }
  let p = start + writeLatin1(out, method, start);
  out[p++] = 0x20;
  p += writeUtf8(out, uri, p);
  p += writeLatin1(out, ' HTTP/1.1\r\n', p);
  let hasHost = recipe.setsHost || (corr !== undefined && recipe.correlationHeader!.toLowerCase() === 'host');
  let sawHost = false;
  const order = recipe.order;
  // Byte loops, not Buffer calls: a header is a few dozen bytes, a call into C++ costs more.
  for (let i = 0; i < spans.length; i += 4) {
    const vs = spans[i + 2]!;
    if (vs < 0) continue;
    const ns = spans[i]!;
    const ne = spans[i + 1]!;
    if (ne === ns) return undefined;
    if (b[ns] === 0x3a) continue; // ':authority' and other pseudo-headers
    // The name, lower-cased and checked as it is copied, and compared with the name last seen
    // at this index (the hash and the map only when it differs); taken back if it is dropped.
    const at = p;
    const e = i >> 2;
    const last = e < MAX_ORDER ? order[e] : undefined;
    let name: SeenName;
    if (last !== undefined && last.bytes.length === ne - ns) {
      const lb = last.bytes;
      let diff = 0;
      for (let k = ns, j = 0; k < ne; k++, j++) {
        const c = NAME_BYTE[b[k]!]!;
        if (c === 0) return undefined;
        out[p++] = c;
        diff |= c ^ lb[j]!;
      }
      name = diff === 0 ? last : nameOf(recipe, out, at, p);
    } else {
      for (let k = ns; k < ne; k++) {
        const c = NAME_BYTE[b[k]!]!;
        if (c === 0) return undefined;
        out[p++] = c;
      }
      name = nameOf(recipe, out, at, p);
    }
    if (e < MAX_ORDER) order[e] = name;
    const cls = name.cls;
    if (cls === NameClass.Connection) return undefined;
    if (cls === NameClass.Drop) {
      p = at;
      continue;
    }
    if (cls === NameClass.Host) {
      if (sawHost) {
        p = at;
        continue;
      }
      sawHost = true;
      hasHost = true;
    }
    out[p++] = 0x3a;
    out[p++] = 0x20;
    // The value four bytes at a time (a third cheaper than one at a time), its bytes' checks
    // OR-ed together and tested once.
    const ve = spans[i + 3]!;
    let bad = 0;
    let k = vs;
    for (; k + 4 <= ve; k += 4) {
      const c0 = b[k]!;
      const c1 = b[k + 1]!;
      const c2 = b[k + 2]!;
      const c3 = b[k + 3]!;
      bad |= VALUE_BAD[c0]! | VALUE_BAD[c1]! | VALUE_BAD[c2]! | VALUE_BAD[c3]!;
      out[p] = c0;
      out[p + 1] = c1;
      out[p + 2] = c2;
      out[p + 3] = c3;
      p += 4;
    }
    for (; k < ve; k++) {
      const c = b[k]!;
      bad |= VALUE_BAD[c]!;
      out[p++] = c;
    }
    if (bad !== 0) return undefined;
    out[p++] = 0x0d;
    out[p++] = 0x0a;
  }
  if (!hasHost) return undefined;
  p += recipe.sets.copy(out, p);
  if (corr !== undefined) p += out.write(`${recipe.correlationHeader!}: ${corr}\r\n`, p, 'utf8');
  if (ctx.bodyLength !== undefined) p += out.write(`content-length: ${ctx.bodyLength}\r\n`, p, 'latin1');
  out[p++] = 0x0d;
  out[p++] = 0x0a;
  if (out === slab) slabUsed = (p + 7) & ~7;
  return out.subarray(start, p);
}

/** The entries as the call's decoder gives them (names and values as UTF-8). */
function decodeEntries(raw: HeaderBytes): HeaderEntry[] {
  const { bytes, spans } = raw;
  const out: HeaderEntry[] = [];
  for (let i = 0; i < spans.length; i += 4) {
    const vs = spans[i + 2]!;
    out.push({ name: bytes.toString('utf8', spans[i]!, spans[i + 1]!), value: vs < 0 ? undefined : bytes.toString('utf8', vs, spans[i + 3]!) });
  }
  return out;
}

/**
 * The head of a raw copy: from the bytes when that gives the same head, else through the
 * string path, which adds the node's authority as Host when there is none and throws
 * InvalidRequestError for a copy that must not be written.
 */
export function headOfRawCopy(raw: RawCopy, method: string, uri: string, bodyLength: number | undefined, authority: string): Buffer | string {
  const ctx = { bodyLength, correlationId: raw.correlationId };
  if (uri === '' && raw.uriRule) {
    // The RPC thread hands a copy over without its target only when its bytes are a checked
    // call whose args give the query: anything else is refused like any unwritable copy.
    let built: string | undefined;
    try {
      built = uriOfCall(raw.bytes, raw.uriRule);
    } catch (err) {
      throw new InvalidRequestError(`the copy's call bytes are not an HTTPReqCall: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (built === undefined) throw new InvalidRequestError('the copy\'s query cannot be rebuilt from the call\'s args');
    uri = built;
  }
  return copyHeadFromBytes(raw, method, uri, raw.edits, ctx)
    ?? requestHead(method, uri, buildCopyHeaders(decodeEntries(raw), raw.edits, ctx), bodyLength, authority);
}
