/**
 * Every APISIX → runner message decoder, fed random bytes and mutated valid payloads, either
 * returns a well-formed value or throws MalformedPayloadError: never another error type, never
 * a read past the payload, never a loop over a forged length.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  METHOD_NAMES,
  decodeExtraInfoResp,
  decodeHttpReqCall,
  decodeHttpRespCall,
  decodePrepareConfReq,
} from '../../src/protocol/messages.js';
import * as flatbuffers from 'flatbuffers';
import { Req as ReqCallReq } from '../../src/protocol/generated/a6/httpreq-call/req.js';
import { MalformedPayloadError, nameBucket, verifyTablesVector } from '../../src/protocol/verify.js';
import type { TextPair } from '../../src/plugin-api/request.js';
import {
  encodeExtraInfoResp,
  encodeHttpReqCallReq,
  encodeHttpRespCallReq,
  encodePrepareConfReq,
} from '../harness/apisix-codec.js';
import {
  extraInfoResultArb,
  mutate,
  mutatedPayloadArb,
  mutationArb,
  prepareConfInputArb,
  reqCallInputArb,
  respCallInputArb,
  validPayloadArb,
} from './arbitraries.js';
import { FC_RUNS, fcParams, timeoutFor } from './fc-config.js';

/** Decodes with one decoder and reads every field the runner may read (HttpReqCall is lazy). */
const DECODERS: Record<string, (payload: Uint8Array) => unknown> = {
  PrepareConf: (p) => decodePrepareConfReq(p),
  HttpReqCall: (p) => {
    const m = decodeHttpReqCall(p);
    return {
      id: m.id, confToken: m.confToken, methodCode: m.methodCode, method: m.method, path: m.path,
      srcIpBytes: m.srcIpBytes, srcIp: m.srcIp, args: m.args, headers: m.headers,
    };
  },
  ExtraInfo: (p) => decodeExtraInfoResp(p),
  HttpRespCall: (p) => decodeHttpRespCall(p),
};

function isEntries(v: unknown): boolean {
  return Array.isArray(v) && v.every((e: TextPair) => typeof e.name === 'string' && (e.value === undefined || typeof e.value === 'string'));
}

const isU32 = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** What a successful decode must look like: no NaN, no undefined where a string is due. */
function checkShape(name: string, value: unknown): void {
  if (name === 'ExtraInfo') {
    expect(value === undefined || Buffer.isBuffer(value)).toBe(true);
    return;
  }
  const v = value as Record<string, unknown>;
  if (name === 'PrepareConf') {
    expect(typeof v['key']).toBe('string');
    expect(isEntries(v['conf'])).toBe(true);
  } else if (name === 'HttpReqCall') {
    expect(isU32(v['id']) && isU32(v['confToken'])).toBe(true);
    expect(METHOD_NAMES).toContain(v['method']);
    expect(typeof v['path']).toBe('string');
    expect(typeof v['srcIp']).toBe('string');
    expect(isEntries(v['args']) && isEntries(v['headers'])).toBe(true);
  } else {
    expect(isU32(v['id']) && isU32(v['confToken'])).toBe(true);
    expect(Number.isInteger(v['status'])).toBe(true);
    expect(isEntries(v['headers'])).toBe(true);
  }
}

/** Runs one decoder: the outcome is a checked value or a MalformedPayloadError, nothing else. */
function decodeOrReject(name: string, payload: Uint8Array): 'ok' | 'rejected' {
  let value: unknown;
  try {
    value = DECODERS[name]!(payload);
  } catch (err) {
    if (err instanceof MalformedPayloadError) return 'rejected';
    throw new Error(`${name} threw ${(err as Error).constructor.name} (not MalformedPayloadError): ${(err as Error).message}`, { cause: err });
  }
  checkShape(name, value);
  return 'ok';
}

describe('message decoders on hostile input', () => {
  for (const name of Object.keys(DECODERS)) {
    it(`${name}: random bytes decode or throw MalformedPayloadError`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
          decodeOrReject(name, bytes);
        }),
        fcParams(FC_RUNS),
      );
    }, timeoutFor(FC_RUNS, 2));

    it(`${name}: mutated valid payloads (of every message type) decode or throw MalformedPayloadError`, () => {
      fc.assert(
        fc.property(mutatedPayloadArb(), ({ payload }) => {
          decodeOrReject(name, payload);
        }),
        fcParams(FC_RUNS),
      );
    }, timeoutFor(FC_RUNS, 2));
  }

  it('payloads that are not 4-byte aligned (a view at an odd offset) are handled the same', () => {
    fc.assert(
      fc.property(validPayloadArb(), fc.integer({ min: 1, max: 7 }), ({ payload }, shift) => {
        // Frames arrive at any offset of a socket chunk: the payload is a subarray view.
        const backing = new Uint8Array(payload.length + shift);
        backing.set(payload, shift);
        const view = backing.subarray(shift);
        for (const name of Object.keys(DECODERS)) {
          let a: unknown;
          let b: unknown;
          try { a = DECODERS[name]!(payload); } catch (err) { a = (err as Error).constructor.name; }
          try { b = DECODERS[name]!(view); } catch (err) { b = (err as Error).constructor.name; }
          expect(b).toEqual(a);
        }
      }),
      fcParams(Math.ceil(FC_RUNS / 4)),
    );
  }, timeoutFor(Math.ceil(FC_RUNS / 4), 2));
});

describe('message decoders on valid input (round trip with the APISIX-side encoder)', () => {
  const norm = (entries: readonly { name: string; value?: string | undefined }[]) => entries.map((e) => ({ name: e.name, value: e.value }));

  it('PrepareConf', () => {
    fc.assert(
      fc.property(prepareConfInputArb, (input) => {
        expect(decodePrepareConfReq(encodePrepareConfReq(input))).toEqual({ key: input.key, conf: norm(input.conf ?? []) });
      }),
      fcParams(FC_RUNS),
    );
  }, timeoutFor(FC_RUNS, 2));

  it('HttpReqCall', () => {
    fc.assert(
      fc.property(reqCallInputArb(), (input) => {
        const m = decodeHttpReqCall(encodeHttpReqCallReq(input));
        expect({ id: m.id, confToken: m.confToken, method: m.method, path: m.path, args: m.args, headers: m.headers, ip: Buffer.from(m.srcIpBytes ?? []) }).toEqual({
          id: input.id, confToken: input.confToken, method: METHOD_NAMES[input.method as number], path: input.path,
          args: norm(input.args), headers: norm(input.headers), ip: Buffer.from(input.srcIp),
        });
      }),
      fcParams(FC_RUNS),
    );
  }, timeoutFor(FC_RUNS, 2));

  it('HttpReqCall path: decoded exactly, a leading U+FEFF included (TextDecoder would drop it), once', () => {
    const input = { id: 1, confToken: 1, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET' as const, path: '\ufeff/a b/é/😀', args: [], headers: [] };
    const m = decodeHttpReqCall(encodeHttpReqCallReq(input));
    expect(m.path).toBe('\ufeff/a b/é/😀');
    expect(m.path).toBe(m.path);
    expect(decodeHttpReqCall(encodeHttpReqCallReq({ ...input, path: '' })).path).toBe('');
  });

  it('ExtraInfo answer', () => {
    fc.assert(
      fc.property(extraInfoResultArb, (result) => {
        const decoded = decodeExtraInfoResp(encodeExtraInfoResp(result));
        expect(decoded === undefined ? undefined : Uint8Array.from(decoded)).toEqual(result === undefined ? undefined : Uint8Array.from(result));
      }),
      fcParams(FC_RUNS),
    );
  }, timeoutFor(FC_RUNS, 2));

  it('HttpRespCall', () => {
    fc.assert(
      fc.property(respCallInputArb(), (input) => {
        expect(decodeHttpRespCall(encodeHttpRespCallReq(input))).toEqual({ ...input, headers: norm(input.headers) });
      }),
      fcParams(FC_RUNS),
    );
  }, timeoutFor(FC_RUNS, 2));
});

/** Position of the length word of the vector (or string) that field `fieldId` of the root table points to. */
function vectorLengthAt(payload: Uint8Array, fieldId: number): number | undefined {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const root = dv.getUint32(0, true);
  const vtable = root - dv.getInt32(root, true);
  const slot = 4 + 2 * fieldId;
  if (slot + 2 > dv.getUint16(vtable, true)) return undefined;
  const off = dv.getUint16(vtable + slot, true);
  if (!off) return undefined;
  return root + off + dv.getUint32(root + off, true);
}

/** [message, field id, field name] of every vector or string a decoder reads. */
const VECTOR_FIELDS: ReadonlyArray<[string, number, string]> = [
  ['PrepareConf', 0, 'conf'],
  ['PrepareConf', 1, 'key'],
  ['HttpReqCall', 1, 'src_ip'],
  ['HttpReqCall', 3, 'path'],
  ['HttpReqCall', 4, 'args'],
  ['HttpReqCall', 5, 'headers'],
  ['ExtraInfo', 0, 'result'],
  ['HttpRespCall', 2, 'headers'],
];

const SAMPLE: Record<string, Uint8Array> = {
  PrepareConf: encodePrepareConfReq({ key: 'route#1#ext-plugin-pre-req#1', conf: [{ name: 'say', value: '{"body":"x"}' }] }),
  HttpReqCall: encodeHttpReqCallReq({ id: 1, confToken: 1, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/p', args: [{ name: 'a', value: '1' }], headers: [{ name: 'h', value: 'v' }] }),
  ExtraInfo: encodeExtraInfoResp('value'),
  HttpRespCall: encodeHttpRespCallReq({ id: 1, status: 200, headers: [{ name: 'h', value: 'v' }], confToken: 1 }),
};

describe('forged lengths are rejected before anything loops over them', () => {
  for (const [name, fieldId, field] of VECTOR_FIELDS) {
    for (const forged of [0x80000000, 0xffffffff, 0x40000000, 0x00ffffff]) {
      it(`${name}.${field} announcing ${forged} elements`, () => {
        const payload = Uint8Array.from(SAMPLE[name]!);
        const at = vectorLengthAt(payload, fieldId);
        expect(at).toBeDefined();
        new DataView(payload.buffer).setUint32(at!, forged, true);
        expect(() => DECODERS[name]!(payload)).toThrow(MalformedPayloadError);
      });
    }
  }

  it('on random valid messages: any vector field forged to 2^31 is rejected', () => {
    const arb = fc.tuple(
      fc.oneof(
        reqCallInputArb().map((i) => ({ name: 'HttpReqCall', payload: encodeHttpReqCallReq(i) })),
        prepareConfInputArb.map((i) => ({ name: 'PrepareConf', payload: encodePrepareConfReq(i) })),
        respCallInputArb().map((i) => ({ name: 'HttpRespCall', payload: encodeHttpRespCallReq(i) })),
        extraInfoResultArb.map((r) => ({ name: 'ExtraInfo', payload: encodeExtraInfoResp(r) })),
      ),
      fc.nat(),
    );
    fc.assert(
      fc.property(arb, ([{ name, payload }, pick]) => {
        const fields = VECTOR_FIELDS.filter(([n]) => n === name);
        const [, fieldId] = fields[pick % fields.length]!;
        const at = vectorLengthAt(payload, fieldId);
        if (at === undefined) return; // field absent (e.g. a PrepareConf without conf)
        const forged = Uint8Array.from(payload);
        new DataView(forged.buffer).setUint32(at, 0x80000000, true);
        expect(() => DECODERS[name]!(forged)).toThrow(MalformedPayloadError);
      }),
      fcParams(FC_RUNS),
    );
  }, timeoutFor(FC_RUNS, 2));
});

/**
 * `headerSpans`, `headers` and `args` check their [TextEntry] vector with a fused walk
 * (verify.ts, verifyTextEntrySpans) and decode from where it found the strings. The reference
 * here is the generic verifier (verifyTablesVector) and the generated FlatBuffers reader: on
 * valid and mutated HTTPReqCall payloads both must accept and refuse the same payloads, with
 * the same error, and decode the same names and values.
 */
describe('header(name) of an HTTPReqCall', () => {
  // Names whose lower case is or holds ASCII from non-ASCII: U+212A KELVIN SIGN lowers to `k`,
  // U+0130 to `i` + U+0307; the byte-wise lookup must still agree with toLowerCase().
  const nameArb = fc.oneof(
    fc.constantFrom('key', 'Key', '\u212Aey', 'x-\u212A', 'cookie', 'COO\u212AIE', 'İd', 'id', 'content-length', 'Content-Type', 'ü', 'x-ü', '',
      // The names' buckets (nameBucket): first and last letters in either case, names sharing a length and letters.
      'CONTENT-LENGTH', 'x-A', 'X-a', 'x-a', 'x-b-a'),
    fc.string({ maxLength: 6 }),
    fc.string({ unit: 'binary', maxLength: 6 }),
  );
  it('gives what a case-insensitive search of the decoded headers gives, Unicode names included', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ name: nameArb, value: fc.option(fc.string({ maxLength: 4 }), { nil: undefined }) }), { maxLength: 8 }),
      fc.array(nameArb, { minLength: 1, maxLength: 6 }),
      (headers, lookups) => {
        const payload = encodeHttpReqCallReq({ id: 1, confToken: 1, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/', args: [], headers });
        // Each lookup on a fresh call (the decoded list would answer once decoded) and on one call in turn.
        const shared = decodeHttpReqCall(payload);
        for (const name of lookups) {
          const lower = name.toLowerCase();
          const hit = headers.find((h) => h.name.toLowerCase() === lower);
          const expected = hit ? (hit.value ?? '') : undefined;
          expect(decodeHttpReqCall(payload).header(name)).toBe(expected);
          expect(shared.header(name)).toBe(expected);
        }
      },
    ), fcParams(FC_RUNS));
  }, timeoutFor(FC_RUNS, 2));

  it('the names\' buckets: find a name whose first or last letter is in the other case; a name in an empty bucket is absent', () => {
    const payload = encodeHttpReqCallReq({
      id: 1, confToken: 1, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/', args: [],
      headers: [{ name: 'Content-LENGTH', value: '3' }, { name: 'x-a', value: 'a' }, { name: 'x-B', value: 'b' }],
    });
    const call = decodeHttpReqCall(payload);
    expect(call.header('content-length')).toBe('3');
    expect(call.header('X-b')).toBe('b');
    // xza is in x-a's bucket (same length, first and last byte): compared, not found.
    expect(call.header('xza')).toBeUndefined();
    expect(call.header('x-A')).toBe('a');
    expect(call.header('x-c')).toBeUndefined();
    expect(call.header('transfer-encoding')).toBeUndefined();
    expect(nameBucket(3, 0x58, 0x41)).toBe(nameBucket(3, 0x78, 0x61));
  });

  it('finds a name written with the Kelvin sign by its ASCII spelling, and the reverse', () => {
    const payload = encodeHttpReqCallReq({
      id: 1, confToken: 1, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/', args: [],
      headers: [{ name: 'X-\u212Aey', value: 'kelvin' }, { name: 'content-length', value: '3' }],
    });
    expect(decodeHttpReqCall(payload).header('x-key')).toBe('kelvin');
    expect(decodeHttpReqCall(payload).header('X-KEY')).toBe('kelvin');
    expect(decodeHttpReqCall(payload).header('content-length')).toBe('3');
    expect(decodeHttpReqCall(payload).header('x-\u212Aey')).toBe('kelvin');
  });
});

describe('the fused [TextEntry] walk agrees with the generic verifier and reader', () => {
  const outcome = (read: () => unknown): { ok: true; value: unknown } | { ok: false; error: string } => {
    try {
      return { ok: true, value: read() };
    } catch (err) {
      if (!(err instanceof MalformedPayloadError)) throw err;
      return { ok: false, error: err.message };
    }
  };
  const TEXT_ENTRY = { name: 'A6.TextEntry', fields: ['string', 'string'] } as const;
  /** Field `vtableOffset` (12 args, 14 headers) through verifyTablesVector and the generated reader. */
  const reference = (payload: Uint8Array, vtableOffset: 12 | 14): TextPair[] => {
    const bb = new flatbuffers.ByteBuffer(payload);
    const req = ReqCallReq.getRootAsReq(bb);
    const o = bb.__offset(req.bb_pos, vtableOffset);
    if (!o) return [];
    verifyTablesVector(payload, bb.__vector(req.bb_pos + o) - 4, TEXT_ENTRY);
    const text = (bytes: string | Uint8Array | null): string | undefined =>
      bytes === null ? undefined : Buffer.from(bytes as Uint8Array).toString('utf8');
    const n = vtableOffset === 14 ? req.headersLength() : req.argsLength();
    const out: TextPair[] = [];
    for (let i = 0; i < n; i++) {
      const e = vtableOffset === 14 ? req.headers(i)! : req.args(i)!;
      out.push({ name: text(e.name(flatbuffers.Encoding.UTF8_BYTES)) ?? '', value: text(e.value(flatbuffers.Encoding.UTF8_BYTES)) });
    }
    return out;
  };
  const viaSpans = (payload: Uint8Array): TextPair[] => {
    const m = decodeHttpReqCall(payload);
    const spans = m.headerSpans;
    const out: TextPair[] = [];
    for (let i = 0; i < spans.length; i += 4) {
      out.push({ name: m.bytes.toString('utf8', spans[i]!, spans[i + 1]!), value: spans[i + 2]! < 0 ? undefined : m.bytes.toString('utf8', spans[i + 2]!, spans[i + 3]!) });
    }
    return out;
  };
  const check = (payload: Uint8Array): void => {
    let decodable = true;
    try { decodeHttpReqCall(payload); } catch { decodable = false; }
    if (!decodable) return;
    const headers = outcome(() => reference(payload, 14));
    // The same verdict, with the same error, and the same entries.
    expect(outcome(() => viaSpans(payload))).toEqual(headers);
    expect(outcome(() => decodeHttpReqCall(payload).headers)).toEqual(headers);
    expect(outcome(() => decodeHttpReqCall(payload).args)).toEqual(outcome(() => reference(payload, 12)));
  };

  it('on valid calls', () => {
    fc.assert(fc.property(reqCallInputArb(), (input) => check(encodeHttpReqCallReq(input))), fcParams(FC_RUNS));
  }, timeoutFor(FC_RUNS, 2));

  it('a header name or value whose length is forged to end 1 to 4 bytes past the payload is refused by both', () => {
    const payload = encodeHttpReqCallReq({
      id: 1, confToken: 1, srcIp: new Uint8Array([1, 2, 3, 4]), method: 'GET', path: '/p', args: [],
      headers: [{ name: 'host', value: 'example' }, { name: 'x-last', value: 'v' }],
    });
    const spans = decodeHttpReqCall(payload).headerSpans;
    let forged = 0;
    for (let i = 0; i < spans.length; i += 2) {
      const start = spans[i]!;
      if (start <= 0) continue;
      for (let k = 1; k <= 4; k++) {
        const p = Uint8Array.from(payload);
        new DataView(p.buffer).setUint32(start - 4, p.length - start + k, true);
        expect(outcome(() => decodeHttpReqCall(p).headerSpans).ok).toBe(false);
        check(p);
        forged++;
      }
    }
    expect(forged).toBe(16);
  });

  it('on mutated calls (some refused, some not)', () => {
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(reqCallInputArb(), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (input, ms) => {
        const payload = mutate(encodeHttpReqCallReq(input), ms);
        check(payload);
        try { decodeHttpReqCall(payload).headers; decodeHttpReqCall(payload).args; accepted++; } catch { refused++; }
      }),
      fcParams(FC_RUNS * 4),
    );
    // Both verdicts were exercised, or the agreement above would say little.
    expect(refused).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(0);
  }, timeoutFor(FC_RUNS * 4, 2));
});
