/**
 * Structural bounds check of a FlatBuffers payload against the shape of one of our tables,
 * before the generated accessors read it. The generated TypeScript code trusts its input:
 * on garbage it would read past the end (yielding NaN/undefined) or walk a vector with a
 * forged length of billions. This check makes every offset, length and nested table that
 * the runner will read land inside the payload.
 *
 * It deliberately does NOT check the NUL after strings: APISIX's Lua encoder omits it for
 * empty strings (see test/fixtures/conformance/README.md).
 */

export type FieldShape =
  | 'u8'
  | 'u16'
  | 'u32'
  | 'string'
  | 'bytes'
  | { readonly table: TableShape }
  | { readonly tables: TableShape }
  | { readonly union: readonly (TableShape | null)[] };

/** Fields in id order; a union takes two ids (its `_type` byte then the table) — list it once, as `union`, at the id of its type byte. */
export interface TableShape {
  readonly name: string;
  readonly fields: readonly FieldShape[];
}

export class MalformedPayloadError extends Error {
  readonly code = 'A6_ERR_MALFORMED_PAYLOAD';
}

const MAX_DEPTH = 8;

/** Throws MalformedPayloadError unless `payload` holds a root table of `shape` whose reachable parts are in bounds. */
export function verifyRoot(payload: Uint8Array, shape: TableShape): void {
  if (payload.byteLength < 8) throw new MalformedPayloadError(`${shape.name}: payload of ${payload.byteLength} bytes is too short for a table`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const root = view.getUint32(0, true);
  verifyTable(view, root, shape, 0);
}

function fail(shape: TableShape, what: string): never {
  throw new MalformedPayloadError(`${shape.name}: ${what}`);
}

function verifyTable(view: DataView, pos: number, shape: TableShape, depth: number): void {
  const len = view.byteLength;
  if (depth > MAX_DEPTH) fail(shape, 'tables nested too deep');
  if (pos + 4 > len) fail(shape, `table offset ${pos} out of bounds`);
  const vtable = pos - view.getInt32(pos, true);
  if (vtable < 0 || vtable + 4 > len) fail(shape, `vtable offset ${vtable} out of bounds`);
  const vtableSize = view.getUint16(vtable, true);
  const tableSize = view.getUint16(vtable + 2, true);
  if (vtableSize < 4 || vtableSize % 2 !== 0 || vtable + vtableSize > len) fail(shape, `bad vtable size ${vtableSize}`);
  if (tableSize < 4 || pos + tableSize > len) fail(shape, `bad table size ${tableSize}`);

  let id = 0;
  for (const field of shape.fields) {
    const isUnion = typeof field === 'object' && 'union' in field;
    const slotOf = (fieldId: number): number => {
      const slot = 4 + 2 * fieldId;
      if (slot + 2 > vtableSize) return 0;
      const off = view.getUint16(vtable + slot, true);
      return off;
    };
    const off = slotOf(id);
    if (isUnion) {
      const valueOff = slotOf(id + 1);
      const type = off ? readScalar(view, pos, off, 1, tableSize, shape) : 0;
      if (valueOff) {
        const target = follow(view, pos + checkInTable(pos, valueOff, 4, tableSize, shape), shape);
        const member = type === 0 ? null : field.union[type - 1];
        if (member === undefined) fail(shape, `unknown union type ${type}`);
        if (member) verifyTable(view, target, member, depth + 1);
      } else if (type !== 0 && field.union[type - 1] === undefined) {
        fail(shape, `unknown union type ${type}`);
      }
      id += 2;
      continue;
    }
    id += 1;
    if (!off) continue;
    if (field === 'u8') readScalar(view, pos, off, 1, tableSize, shape);
    else if (field === 'u16') readScalar(view, pos, off, 2, tableSize, shape);
    else if (field === 'u32') readScalar(view, pos, off, 4, tableSize, shape);
    else {
      const target = follow(view, pos + checkInTable(pos, off, 4, tableSize, shape), shape);
      if (field === 'string' || field === 'bytes') {
        vectorEnd(view, target, 1, shape);
      } else if ('table' in field) {
        verifyTable(view, target, field.table, depth + 1);
      } else if ('tables' in field) {
        const count = view.getUint32(target, true);
        vectorEnd(view, target, 4, shape);
        for (let i = 0; i < count; i++) {
          const elem = target + 4 + 4 * i;
          verifyTable(view, follow(view, elem, shape), field.tables, depth + 1);
        }
      }
    }
  }
}

function checkInTable(pos: number, off: number, size: number, tableSize: number, shape: TableShape): number {
  if (off + size > tableSize) fail(shape, `field at ${off} overruns its table of ${tableSize} bytes`);
  return off;
}

function readScalar(view: DataView, pos: number, off: number, size: number, tableSize: number, shape: TableShape): number {
  checkInTable(pos, off, size, tableSize, shape);
  return size === 1 ? view.getUint8(pos + off) : size === 2 ? view.getUint16(pos + off, true) : view.getUint32(pos + off, true);
}

/** Follows a uoffset at `at`; the target must leave room for at least a 4-byte length or soffset. */
function follow(view: DataView, at: number, shape: TableShape): number {
  if (at + 4 > view.byteLength) fail(shape, `offset at ${at} out of bounds`);
  const target = at + view.getUint32(at, true);
  if (target + 4 > view.byteLength) fail(shape, `offset target ${target} out of bounds`);
  return target;
}

function vectorEnd(view: DataView, at: number, elemSize: number, shape: TableShape): number {
  const count = view.getUint32(at, true);
  const end = at + 4 + count * elemSize;
  if (end > view.byteLength) fail(shape, `vector of ${count} elements at ${at} overruns the payload`);
  return end;
}
