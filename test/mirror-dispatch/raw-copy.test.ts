/**
 * A raw copy (the call's header bytes plus the conf's edits, DispatchRequest.raw) through the
 * engine, sent from the RPC thread and from a worker: the bytes on the wire are the string
 * path's head, a call without a Host gets the node's authority, and one whose header would end
 * a line early is INVALID_REQUEST and never written. The target is a raw TCP server that
 * records the exact bytes it read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchEngine, type DispatchObserver, type DispatchOutcome } from '../../src/mirror-dispatch/index.js';
import type { RawCopy } from '../../src/mirror-dispatch/copy-head.js';
import type { HeadEdits } from '../../src/mirror-dispatch/copy-headers.js';
import { buildCopyHeaders } from '../../src/mirror-dispatch/copy-headers.js';
import { requestHead } from '../../src/mirror-dispatch/h1/request-head.js';
import { HttpReqCallMessage } from '../../src/protocol/messages.js';
import { encodeHttpReqCall, type FrameEntry } from '../../src/testing/apisix-frames.js';
import { waitUntil } from '../harness/wait.js';
import { RawHttpServer, answer } from './raw-http-server.js';
import { localTargetSpec } from './target-spec.js';

let server: RawHttpServer;
beforeAll(async () => {
  server = await RawHttpServer.start(() => answer(200));
});
afterAll(() => server.close());

const edits: HeadEdits = { headersSet: [['x-set', 'v']], headersRemove: new Set(['x-drop']), markHeader: 'x-mirror', correlationHeader: 'x-corr' };

function rawCopy(headers: readonly FrameEntry[]): RawCopy {
  const msg = new HttpReqCallMessage(encodeHttpReqCall({ id: 1, confToken: 1, method: 'POST', path: '/p', srcIp: '127.0.0.1', args: [], headers }));
  return { bytes: msg.bytes, spans: msg.headerSpans, edits, correlationId: 'c-1', uriRule: undefined };
}

/** Outcomes the observer will report, in order of the copies sent. */
let outcomes: ((o: DispatchOutcome) => void)[] = [];

/** Sends one raw copy with a 3-byte body (its target `uri`; '' to build it by `raw.uriRule`); resolves with its outcome. */
function send(engine: DispatchEngine, raw: RawCopy, uri = '/p?q=1'): Promise<DispatchOutcome> {
  const target = engine.acquire(localTargetSpec(server.port));
  return new Promise((resolve) => {
    outcomes.push(resolve);
    expect(target.submit({ method: 'POST', uri, headers: [], body: Buffer.from('abc'), raw, sizeBytes: 100 })).toBe('started');
  });
}

function observer(failures: string[]): DispatchObserver {
  const noop = (): void => undefined;
  return {
    sent: noop, refused: noop, inflight: noop, queued: noop, nodeState: noop, dropped: noop, threadRestarted: noop,
    finished: (_t, _n, outcome) => outcomes.shift()?.(outcome),
    failed: (_t, _n, _o, code) => failures.push(code),
  };
}

/** What the string path writes for the same copy (authority of the node when there is no Host). */
function expected(headers: readonly FrameEntry[]): string {
  const entries = headers.map((h) => ({ name: h.name, value: h.value }));
  return requestHead('POST', '/p?q=1', buildCopyHeaders(entries, edits, { bodyLength: 3, correlationId: 'c-1' }), 3, `127.0.0.1:${server.port}`) + 'abc';
}

describe.each([1, 2])('raw copies, mirror threads %i', (threads) => {
  it('writes the string path\'s head and the body, with the edits; without a Host, the node\'s authority', async () => {
    outcomes = [];
    const failures: string[] = [];
    const engine = new DispatchEngine({ observer: observer(failures), closeGraceMs: 100, threads });
    try {
      const withHost: FrameEntry[] = [{ name: 'Host', value: 'api.example' }, { name: 'X-Drop', value: '1' }, { name: 'Accept', value: '*/*' }, { name: 'connection', value: 'close' }];
      const noHost: FrameEntry[] = [{ name: 'accept', value: 'text/plain' }];
      for (const headers of [withHost, noHost]) {
        const before = server.requests.length;
        const reads = server.reads.flat().length;
        expect(await send(engine, rawCopy(headers))).toBe('2xx');
        await waitUntil(() => server.requests.length > before, 'the copy at the target');
        expect(Buffer.concat(server.reads.flat().slice(reads)).toString('latin1')).toBe(expected(headers));
      }
      expect(failures).toEqual([]);
    } finally {
      await engine.close();
    }
  });

  it('refuses a copy whose header value holds CR LF: INVALID_REQUEST, nothing written', async () => {
    outcomes = [];
    const failures: string[] = [];
    const engine = new DispatchEngine({ observer: observer(failures), closeGraceMs: 100, threads });
    try {
      const before = server.reads.flat().length;
      const outcome = await send(engine, rawCopy([{ name: 'host', value: 'h' }, { name: 'x-a', value: 'a\r\nGET /smuggled HTTP/1.1' }]));
      expect(outcome).toBe('error');
      expect(failures).toEqual(['INVALID_REQUEST']);
      expect(server.reads.flat().length).toBe(before);
    } finally {
      await engine.close();
    }
  });

  it('a copy whose target is to be built from the call\'s bytes: built from its path and args; bytes that are no call, or args that cannot give the query, are refused (INVALID_REQUEST, nothing written)', async () => {
    outcomes = [];
    const failures: string[] = [];
    const engine = new DispatchEngine({ observer: observer(failures), closeGraceMs: 100, threads });
    const rule = { path: '/m', pathConcatMode: 'prefix' as const, query: 'auto' as const };
    const call = (args: FrameEntry[]): HttpReqCallMessage =>
      new HttpReqCallMessage(encodeHttpReqCall({ id: 1, confToken: 1, method: 'POST', path: '/a b', srcIp: '127.0.0.1', args, headers: [{ name: 'host', value: 'h' }] }));
    const withRule = (msg: HttpReqCallMessage, bytes = msg.bytes): RawCopy => ({ bytes, spans: msg.headerSpans, edits, correlationId: undefined, uriRule: rule });
    try {
      const reads = server.reads.flat().length;
      expect(await send(engine, withRule(call([{ name: 'x', value: '1' }, { name: 'x' }])), '')).toBe('2xx');
      await waitUntil(() => server.reads.flat().length > reads, 'the copy at the target');
      expect(Buffer.concat(server.reads.flat().slice(reads)).toString('latin1')).toMatch(/^POST \/m\/a%20b\?x=1&x HTTP\/1\.1\r\n/);

      const before = server.reads.flat().length;
      // Two names: their order is lost, so `auto` cannot rebuild the query (the RPC thread would have asked APISIX).
      expect(await send(engine, withRule(call([{ name: 'a', value: '1' }, { name: 'b', value: '2' }])), '')).toBe('error');
      // The header spans of a call, with bytes that are not one.
      const msg = call([]);
      expect(await send(engine, withRule(msg, Buffer.alloc(msg.bytes.length, 0xff)), '')).toBe('error');
      expect(failures).toEqual(['INVALID_REQUEST', 'INVALID_REQUEST']);
      expect(server.reads.flat().length).toBe(before);
    } finally {
      await engine.close();
    }
  });
});
