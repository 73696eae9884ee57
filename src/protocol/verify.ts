/**
 * Structural bounds check of a FlatBuffers payload against the shape of one of our tables,
 * before the generated accessors read it. The generated TypeScript code trusts its input:
 * on garbage it would read past the end (yielding NaN/undefined) or walk a vector with a
 * forged length of billions. This check makes every offset, length and nested table that
 * the runner will read land inside the payload.
 *
 * It deliberately does NOT check the NUL after strings: APISIX's Lua encoder omits it for
 * empty strings (see test/fixtures/conformance/README.md).
 *
 * It runs on every RPC, so it reads bytes directly (no DataView, no closures) and walks
 * shapes compiled to numeric kinds once.
 */

export type FieldShape =
  | 'u8'
  | 'u16'
  | 'u32'
  | 'string'
  | 'bytes'
  | { readonly table: TableShape }
  | { readonly tables: TableShape }
  /** A vector of tables whose elements are checked later, on first use (verifyTablesVector). */
  | { readonly lazyTables: TableShape }
  | { readonly union: readonly (TableShape | null)[] };

/** Fields in id order; a union takes two ids (its `_type` byte then the table) — list it once, as `union`, at the id of its type byte. */
export interface TableShape {
  readonly name: string;
  readonly fields: readonly FieldShape[];
}

export class MalformedPayloadError extends Error {
  readonly code = 'A6_ERR_MALFORMED_PAYLOAD';
}

const enum Kind {
  U8 = 1,
  U16 = 2,
  U32 = 3,
  Vector1 = 4,
  Table = 5,
  Tables = 6,
  Union = 7,
  LazyTables = 8,
}

interface CompiledField {
  readonly kind: Kind;
  readonly id: number;
  readonly table: CompiledShape | undefined;
  readonly members: readonly (CompiledShape | null)[] | undefined;
}

interface CompiledShape {
  readonly name: string;
  readonly fields: readonly CompiledField[];
}

const compiled = new WeakMap<TableShape, CompiledShape>();

function compile(shape: TableShape): CompiledShape {
  let c = compiled.get(shape);
  if (c) return c;
  const fields: CompiledField[] = [];
  const out: CompiledShape = { name: shape.name, fields };
  compiled.set(shape, out);
  let id = 0;
  for (const f of shape.fields) {
    if (f === 'u8') fields.push({ kind: Kind.U8, id, table: undefined, members: undefined });
    else if (f === 'u16') fields.push({ kind: Kind.U16, id, table: undefined, members: undefined });
    else if (f === 'u32') fields.push({ kind: Kind.U32, id, table: undefined, members: undefined });
    else if (f === 'string' || f === 'bytes') fields.push({ kind: Kind.Vector1, id, table: undefined, members: undefined });
    else if ('table' in f) fields.push({ kind: Kind.Table, id, table: compile(f.table), members: undefined });
    else if ('tables' in f) fields.push({ kind: Kind.Tables, id, table: compile(f.tables), members: undefined });
    else if ('lazyTables' in f) fields.push({ kind: Kind.LazyTables, id, table: compile(f.lazyTables), members: undefined });
    else {
      fields.push({ kind: Kind.Union, id, table: undefined, members: f.union.map((m) => (m ? compile(m) : null)) });
      id += 1;
    }
    id += 1;
  }
  return out;
}

const MAX_DEPTH = 8;

function u16(b: Uint8Array, p: number): number {
  return b[p]! | (b[p + 1]! << 8);
}

function u32(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

function i32(b: Uint8Array, p: number): number {
  return b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24);
}

function fail(shape: CompiledShape, what: string): never {
  throw new MalformedPayloadError(`${shape.name}: ${what}`);
}

/** Throws MalformedPayloadError unless `payload` holds a root table of `shape` whose reachable parts are in bounds. */
export function verifyRoot(payload: Uint8Array, shape: TableShape): void {
  const c = compile(shape);
  if (payload.length < 8) fail(c, `payload of ${payload.length} bytes is too short for a table`);
  verifyTable(payload, u32(payload, 0), c, 0);
}

function verifyTable(b: Uint8Array, pos: number, shape: CompiledShape, depth: number): void {
  const len = b.length;
  if (depth > MAX_DEPTH) fail(shape, 'tables nested too deep');
  if (pos + 4 > len) fail(shape, `table offset ${pos} out of bounds`);
  const vtable = pos - i32(b, pos);
  if (vtable < 0 || vtable + 4 > len) fail(shape, `vtable offset ${vtable} out of bounds`);
  const vtableSize = u16(b, vtable);
  const tableSize = u16(b, vtable + 2);
  if (vtableSize < 4 || (vtableSize & 1) !== 0 || vtable + vtableSize > len) fail(shape, `bad vtable size ${vtableSize}`);
  if (tableSize < 4 || pos + tableSize > len) fail(shape, `bad table size ${tableSize}`);

  const fields = shape.fields;
  for (let f = 0; f < fields.length; f++) {
    const field = fields[f]!;
    const slot = 4 + 2 * field.id;
    const off = slot + 2 > vtableSize ? 0 : u16(b, vtable + slot);
    switch (field.kind) {
      case Kind.U8:
        if (off && off + 1 > tableSize) fail(shape, `field ${field.id} overruns its table`);
        break;
      case Kind.U16:
        if (off && off + 2 > tableSize) fail(shape, `field ${field.id} overruns its table`);
        break;
      case Kind.U32:
        if (off && off + 4 > tableSize) fail(shape, `field ${field.id} overruns its table`);
        break;
      case Kind.Vector1:
        if (off) vectorEnd(b, follow(b, pos, off, tableSize, shape), 1, shape);
        break;
      case Kind.Table:
        if (off) verifyTable(b, follow(b, pos, off, tableSize, shape), field.table!, depth + 1);
        break;
      case Kind.Tables:
        if (off) {
          const target = follow(b, pos, off, tableSize, shape);
          const count = u32(b, target);
          vectorEnd(b, target, 4, shape);
          for (let i = 0; i < count; i++) {
            const elem = target + 4 + 4 * i;
            const table = elem + u32(b, elem);
            verifyTable(b, table, field.table!, depth + 1);
          }
        }
        break;
      case Kind.LazyTables:
        if (off) vectorEnd(b, follow(b, pos, off, tableSize, shape), 4, shape);
        break;
      case Kind.Union: {
        const members = field.members!;
        if (off && off + 1 > tableSize) fail(shape, `field ${field.id} overruns its table`);
        const type = off ? b[pos + off]! : 0;
        if (type !== 0 && members[type - 1] === undefined) fail(shape, `unknown union type ${type}`);
        const valueSlot = slot + 2;
        const valueOff = valueSlot + 2 > vtableSize ? 0 : u16(b, vtable + valueSlot);
        if (valueOff && type !== 0) {
          const member = members[type - 1];
          if (member) verifyTable(b, follow(b, pos, valueOff, tableSize, shape), member, depth + 1);
        }
        break;
      }
    }
  }
}

/**
 * Checks the element tables of a vector left unchecked by a `lazyTables` field; `vector` is
 * the position of the vector's length word (already bounds-checked by verifyRoot).
 */
export function verifyTablesVector(payload: Uint8Array, vector: number, shape: TableShape): void {
  const c = compile(shape);
  const count = u32(payload, vector);
  for (let i = 0; i < count; i++) {
    const elem = vector + 4 + 4 * i;
    verifyTable(payload, elem + u32(payload, elem), c, 1);
  }
}

const TEXT_ENTRY_NAME = 'A6.TextEntry';

/**
 * verifyTablesVector for a vector of A6.TextEntry (`name: string; value: string`), fused with
 * finding where each entry's strings are: the same checks, in one pass over the bytes, with
 * the same errors, and no string decoded. `spans` gets four int32 per entry: name start and
 * end, value start and end (-1, -1 without a value; a missing name is an empty range at 0).
 * This runs for every mirrored request's headers, where the generic walk cost more than a
 * microsecond for a dozen headers. `spans` is a plain array: a 48-element Int32Array cost
 * 0.57 µs to allocate (an off-heap backing store), an array 0.1. Whether the names are ASCII
 * is a separate pass (namesAscii), made only by the readers that need it.
 */
export function verifyTextEntrySpans(b: Uint8Array, vector: number, spans: number[]): void {
  const len = b.length;
  const count = u32(b, vector);
  // Entries nearly always share one vtable (a FlatBuffers builder writes each distinct one
  // once): it is read and checked again only when an entry points at another.
  let vtable = -1;
  let tableSize = 0;
  let nameOff = 0;
  let valueOff = 0;
  for (let i = 0; i < count; i++) {
    const elem = vector + 4 + 4 * i;
    const pos = elem + u32(b, elem);
    if (pos + 4 > len) failText(`table offset ${pos} out of bounds`);
    const vt = pos - i32(b, pos);
    if (vt !== vtable) {
      if (vt < 0 || vt + 4 > len) failText(`vtable offset ${vt} out of bounds`);
      const vtableSize = u16(b, vt);
      if (vtableSize < 4 || (vtableSize & 1) !== 0 || vt + vtableSize > len) failText(`bad vtable size ${vtableSize}`);
      vtable = vt;
      tableSize = u16(b, vt + 2);
      nameOff = vtableSize >= 6 ? u16(b, vt + 4) : 0;
      valueOff = vtableSize >= 8 ? u16(b, vt + 6) : 0;
    }
    if (tableSize < 4 || pos + tableSize > len) failText(`bad table size ${tableSize}`);
    let ns = 0;
    let ne = 0;
    if (nameOff) {
      const at = textString(b, pos, nameOff, tableSize);
      ns = at + 4;
      ne = ns + u32(b, at);
    }
    let vs = -1;
    let ve = -1;
    if (valueOff) {
      const at = textString(b, pos, valueOff, tableSize);
      vs = at + 4;
      ve = vs + u32(b, at);
    }
    const o = i * 4;
    spans[o] = ns;
    spans[o + 1] = ne;
    spans[o + 2] = vs;
    spans[o + 3] = ve;
  }
}

/**
 * A name's bucket (0-63) in a filter of the names verifyTextEntrySpans located, from its length
 * in bytes and its first and last bytes (`| 0x20`: an ASCII letter in either case gives the same
 * bucket). Names equal byte for byte but for the case of ASCII letters share a bucket, so an
 * empty bucket means no such name; a full one may hold another name (then entries are compared).
 */
export function nameBucket(length: number, firstByte: number, lastByte: number): number {
  return (length * 7 + (firstByte | 0x20) * 3 + (lastByte | 0x20)) & 63;
}

/** Whether every name verifyTextEntrySpans located is ASCII (every byte OR-ed together, one test). */
export function namesAscii(b: Uint8Array, spans: ArrayLike<number>): boolean {
  let seen = 0;
  for (let i = 0; i < spans.length; i += 4) {
    const ne = spans[i + 1]!;
    for (let k = spans[i]!; k < ne; k++) seen |= b[k]!;
  }
  return (seen & 0x80) === 0;
}

/** follow + vectorEnd(…, 1) of a TextEntry's string field: the position of its length word. */
function textString(b: Uint8Array, pos: number, off: number, tableSize: number): number {
  if (off + 4 > tableSize) failText(`field at ${off} overruns its table of ${tableSize} bytes`);
  const at = pos + off;
  const target = at + u32(b, at);
  if (target + 4 > b.length) failText(`offset target ${target} out of bounds`);
  const count = u32(b, target);
  if (target + 4 + count > b.length) failText(`vector of ${count} elements at ${target} overruns the payload`);
  return target;
}

function failText(what: string): never {
  throw new MalformedPayloadError(`${TEXT_ENTRY_NAME}: ${what}`);
}

/** Follows the uoffset stored at table field `off`; the target must leave room for a 4-byte length or soffset. */
function follow(b: Uint8Array, pos: number, off: number, tableSize: number, shape: CompiledShape): number {
  if (off + 4 > tableSize) fail(shape, `field at ${off} overruns its table of ${tableSize} bytes`);
  const at = pos + off;
  const target = at + u32(b, at);
  if (target + 4 > b.length) fail(shape, `offset target ${target} out of bounds`);
  return target;
}

function vectorEnd(b: Uint8Array, at: number, elemSize: number, shape: CompiledShape): number {
  const count = u32(b, at);
  const end = at + 4 + count * elemSize;
  if (end > b.length) fail(shape, `vector of ${count} elements at ${at} overruns the payload`);
  return end;
}
