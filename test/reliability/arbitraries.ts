/**
 * fast-check arbitraries of what APISIX sends: valid payloads of every APISIX → runner
 * message (built with the test harness's APISIX-side encoder), and mutations of them.
 */
import fc from 'fast-check';
import {
  encodeExtraInfoResp,
  encodeHttpReqCallReq,
  encodeHttpRespCallReq,
  encodePrepareConfReq,
  type Entry,
  type HttpReqCallInput,
  type HttpRespCallInput,
  type PrepareConfInput,
} from '../harness/apisix-codec.js';

const text = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'grapheme', maxLength });
const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** A header, arg or conf entry; a missing value is a TextEntry without `value`. */
export const entryArb: fc.Arbitrary<Entry> = fc.record({
  name: text(16),
  value: fc.option(text(24), { nil: undefined }),
});

export const prepareConfInputArb: fc.Arbitrary<PrepareConfInput> = fc.record({
  key: text(40),
  conf: fc.option(fc.array(entryArb, { maxLength: 4 }), { nil: undefined }),
});

/** An HTTPReqCall; `token` fixes the conf token (e.g. one the runner knows). */
export function reqCallInputArb(token?: number): fc.Arbitrary<HttpReqCallInput> {
  return fc.record({
    id: u32,
    confToken: token === undefined ? u32 : fc.constant(token),
    srcIp: fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })),
    method: fc.integer({ min: 0, max: 14 }),
    path: text(40),
    args: fc.array(entryArb, { maxLength: 5 }),
    headers: fc.array(entryArb, { maxLength: 8 }),
  });
}

export function respCallInputArb(token?: number): fc.Arbitrary<HttpRespCallInput> {
  return fc.record({
    id: u32,
    status: fc.integer({ min: 0, max: 0xffff }),
    headers: fc.array(entryArb, { maxLength: 8 }),
    confToken: token === undefined ? u32 : fc.constant(token),
  });
}

export const extraInfoResultArb: fc.Arbitrary<Uint8Array | undefined> = fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined });

/** A valid payload of one APISIX → runner message, tagged with its frame type. */
export function validPayloadArb(token?: number): fc.Arbitrary<{ type: number; payload: Uint8Array }> {
  return fc.oneof(
    prepareConfInputArb.map((i) => ({ type: 1, payload: encodePrepareConfReq(i) })),
    reqCallInputArb(token).map((i) => ({ type: 2, payload: encodeHttpReqCallReq(i) })),
    extraInfoResultArb.map((r) => ({ type: 3, payload: encodeExtraInfoResp(r) })),
    respCallInputArb(token).map((i) => ({ type: 4, payload: encodeHttpRespCallReq(i) })),
  );
}

/** One edit of a payload: overwrite a byte, a little-endian u32 (offsets, lengths), truncate, or append. */
export type Mutation =
  | { readonly kind: 'byte'; readonly at: number; readonly value: number }
  | { readonly kind: 'u32'; readonly at: number; readonly value: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'append'; readonly bytes: Uint8Array };

/** Values a forged u32 likes to take: huge lengths, negative soffsets, off-by-ones. */
const nastyU32 = fc.oneof(
  u32,
  fc.constantFrom(0, 1, 2, 3, 4, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffc, 0x10000, 0xffff),
);

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: nastyU32 }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
);

/** Applies mutations in order to a copy of `payload` (positions are taken modulo its length). */
export function mutate(payload: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = Uint8Array.from(payload);
  for (const m of mutations) {
    if (m.kind === 'append') {
      const grown = new Uint8Array(out.length + m.bytes.length);
      grown.set(out);
      grown.set(m.bytes, out.length);
      out = grown;
      continue;
    }
    if (out.length === 0) continue;
    if (m.kind === 'byte') out[m.at % out.length] = m.value;
    else if (m.kind === 'truncate') out = out.slice(0, m.at % out.length);
    else if (out.length >= 4) {
      // Aligned like FlatBuffers offsets and lengths, so the forgery lands on a real field.
      const at = (m.at % Math.floor(out.length / 4)) * 4;
      new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(at, m.value, true);
    }
  }
  return out;
}

/** A valid payload with 1..4 mutations applied. */
export function mutatedPayloadArb(token?: number): fc.Arbitrary<{ type: number; payload: Uint8Array }> {
  return fc
    .tuple(validPayloadArb(token), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
    .map(([v, ms]) => ({ type: v.type, payload: mutate(v.payload, ms) }));
}
