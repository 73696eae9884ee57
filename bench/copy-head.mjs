#!/usr/bin/env node
/**
 * What building one copy's request head costs on the thread that builds it, two ways, on the
 * bench's ordinary call (`GET /get?x=1` with 12 headers, bench/frames.mjs): from the call's
 * header bytes (src/mirror-dispatch/copy-head.ts) and through strings (decode every header,
 * buildCopyHeaders, requestHead, UTF-8 encode). Both include decoding the call; the call
 * alone is reported too, and the head alone from a call decoded once (what a dispatch worker
 * pays per copy). Rounds alternate so that drift hits them all.
 *
 *   npm run build && node bench/copy-head.mjs [--rounds 5] [--copies 200000]
 */
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { GET_HEADERS } from './frames.mjs';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, copies: { type: 'string', default: '200000' } } });
const dist = new URL('../dist/', import.meta.url);
if (!existsSync(new URL('mirror-dispatch/copy-head.js', dist))) throw new Error('dist/ is missing: run `npm run build` first');
const { copyHeadFromBytes } = await import(new URL('mirror-dispatch/copy-head.js', dist).href);
const { buildCopyHeaders } = await import(new URL('mirror-dispatch/copy-headers.js', dist).href);
const { requestHead } = await import(new URL('mirror-dispatch/h1/request-head.js', dist).href);
const { HttpReqCallMessage } = await import(new URL('protocol/messages.js', dist).href);
const { encodeHttpReqCall } = await import(new URL('testing/apisix-frames.js', dist).href);

const headers = GET_HEADERS.map(([name, value]) => ({ name, value }));
const frame = encodeHttpReqCall({ id: 1, confToken: 1, method: 'GET', path: '/get', srcIp: '127.0.0.1', args: [{ name: 'x', value: '1' }], headers });
const edits = { headersSet: [], headersRemove: new Set(), markHeader: undefined, correlationHeader: undefined };
const ctx = { bodyLength: undefined, correlationId: undefined };
const N = Number(values.copies);

function bytesPath() {
  let n = 0;
  for (let i = 0; i < N; i++) {
    const msg = new HttpReqCallMessage(frame);
    n += copyHeadFromBytes({ bytes: msg.bytes, spans: msg.headerSpans }, 'GET', '/get?x=1', edits, ctx).length;
  }
  return n;
}

/** The head alone: the call decoded and its header spans found once (what a dispatch worker builds per copy). */
const decoded = new HttpReqCallMessage(frame);
const raw = { bytes: decoded.bytes, spans: decoded.headerSpans };
function headOnly() {
  let n = 0;
  for (let i = 0; i < N; i++) n += copyHeadFromBytes(raw, 'GET', '/get?x=1', edits, ctx).length;
  return n;
}

function stringPath() {
  let n = 0;
  for (let i = 0; i < N; i++) {
    const msg = new HttpReqCallMessage(frame);
    n += Buffer.from(requestHead('GET', '/get?x=1', buildCopyHeaders(msg.headers, edits, ctx), undefined, 'mirror:80')).length;
  }
  return n;
}

function callOnly() {
  let n = 0;
  for (let i = 0; i < N; i++) n += new HttpReqCallMessage(frame).id;
  return n;
}

const us = (fn) => {
  const t = performance.now();
  if (fn() <= 0) throw new Error('nothing built');
  return ((performance.now() - t) * 1000) / N;
};
console.log('| round | bytes µs/copy | strings µs/copy | call alone µs | head alone µs |\n|--:|--:|--:|--:|--:|');
for (let r = 1; r <= Number(values.rounds); r++) {
  console.log(`| ${r} | ${us(bytesPath).toFixed(2)} | ${us(stringPath).toFixed(2)} | ${us(callOnly).toFixed(2)} | ${us(headOnly).toFixed(2)} |`);
}
