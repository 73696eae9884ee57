/**
 * The bytes of an HTTP/1.1 request head, built as one string and checked so that nothing a
 * client sent (or a plugin set) can end a line early: a CR, LF or NUL in a value, a name that
 * is not a token, or a target with spaces would let one copy smuggle a second request to the
 * mirror target. Such a request is refused with INVALID_REQUEST and never written.
 */

export class InvalidRequestError extends Error {
  readonly code = 'INVALID_REQUEST';
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;
// Request target: visible characters; anything above ASCII is written as UTF-8.
const BAD_TARGET = /[\x00-\x20\x7f]/;

/** Header names seen valid (they repeat from copy to copy); bounded. */
const validNames = new Set<string>();
const MAX_CACHED_NAMES = 512;

function checkName(name: string): void {
  if (validNames.has(name)) return;
  if (!TOKEN.test(name)) throw new InvalidRequestError(`header name ${JSON.stringify(name)} is not a valid HTTP token`);
  if (validNames.size < MAX_CACHED_NAMES) validNames.add(name);
}

/**
 * `METHOD target HTTP/1.1`, the headers as given (repeated names kept in order), a
 * `content-length` when there is a body and none was given (one that was given must match the
 * body), a `host` when none was given, and the empty line. Written as
 * UTF-8, so a value that came from APISIX as UTF-8 goes out as the same bytes.
 */
export function requestHead(
  method: string, target: string, headers: readonly (readonly [string, string])[], bodyLength: number | undefined, host: string,
): string {
  if (!TOKEN.test(method)) throw new InvalidRequestError(`method ${JSON.stringify(method)} is not a valid HTTP token`);
  if (target === '' || BAD_TARGET.test(target)) throw new InvalidRequestError(`request target ${JSON.stringify(target.slice(0, 80))} has spaces or control characters`);
  let head = `${method} ${target} HTTP/1.1\r\n`;
  let hasHost = false;
  let length: string | undefined;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    const name = h[0];
    const value = h[1];
    checkName(name);
    if (BAD_VALUE.test(value)) throw new InvalidRequestError(`header ${name} has a CR, LF or NUL in its value`);
    if (name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
    else if (name.length === 14 && name.toLowerCase() === 'content-length') {
      if (length !== undefined || value !== String(bodyLength ?? 0)) {
        throw new InvalidRequestError(`content-length ${JSON.stringify(value)} does not match the ${bodyLength ?? 0}-byte body`);
      }
      length = value;
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      // The body is written as it is, with a length: a transfer coding would reframe it.
      throw new InvalidRequestError('transfer-encoding is not sent on a copy (the body goes with a content-length)');
    }
    head += `${name}: ${value}\r\n`;
  }
  if (!hasHost) head += `host: ${host}\r\n`;
  if (bodyLength !== undefined && length === undefined) head += `content-length: ${bodyLength}\r\n`;
  return `${head}\r\n`;
}
