/**
 * Undoes `content-encoding` (gzip, x-gzip, deflate, br; several in order) so bodies are
 * compared as their content, not as compressor output. Output is capped: decoding stops past
 * `maxBytes`, so a small compressed body cannot blow up in memory. Synchronous on purpose:
 * bodies are at most the compare cap and the comparison runs after the reply to APISIX.
 */
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import type { AnswerHeaders } from './answer.js';

export type DecodedBody =
  | { readonly ok: true; readonly body: Buffer }
  | { readonly ok: false; readonly reason: 'over_cap' | 'undecodable' | 'unknown_encoding'; readonly detail: string };

function encodings(headers: AnswerHeaders): string[] {
  const out: string[] = [];
  for (const [n, v] of headers) {
    if (n.toLowerCase() !== 'content-encoding') continue;
    for (const e of v.split(',')) {
      const t = e.trim().toLowerCase();
      if (t && t !== 'identity') out.push(t);
    }
  }
  return out;
}

/** Decodes a body by its headers' content-encoding, at most `maxBytes` of output. */
export function decodeBody(body: Buffer, headers: AnswerHeaders, maxBytes: number): DecodedBody {
  let out = body;
  // Codings are listed in the order they were applied; undo from the last.
  for (const coding of encodings(headers).reverse()) {
    if (out.length === 0) break;
    const opts = { maxOutputLength: Math.max(1, maxBytes) };
    try {
      if (coding === 'gzip' || coding === 'x-gzip') out = gunzipSync(out, opts);
      else if (coding === 'deflate') out = inflateSync(out, opts);
      else if (coding === 'br') out = brotliDecompressSync(out, opts);
      else return { ok: false, reason: 'unknown_encoding', detail: coding };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ERR_BUFFER_TOO_LARGE') return { ok: false, reason: 'over_cap', detail: `${coding} output over ${maxBytes} bytes` };
      return { ok: false, reason: 'undecodable', detail: `${coding}: ${(err as Error).message}` };
    }
  }
  return { ok: true, body: out };
}
