/**
 * Writing short strings into a Buffer by loops: for the few bytes of a method, a URI or a
 * status line, a loop costs less than Buffer#write's call into C++ (about 0.1 µs a call,
 * measured in the copy path; docs/performance.md, "Mirror dispatch, fifth pass").
 */

/** `s` (latin1: each char one byte, as methods are) at `p`; returns the bytes written. */
export function writeLatin1(bytes: Uint8Array, s: string, p: number): number {
  const n = s.length;
  for (let k = 0; k < n; k++) bytes[p + k] = s.charCodeAt(k);
  return n;
}

/** `s` as UTF-8 at `p`: a loop while it is ASCII (a URI nearly always is), else Buffer#write. */
export function writeUtf8(bytes: Buffer, s: string, p: number): number {
  const n = s.length;
  if (n > 256) return bytes.write(s, p, 'utf8');
  for (let k = 0; k < n; k++) {
    const c = s.charCodeAt(k);
    if (c >= 0x80) return bytes.write(s, p, 'utf8');
    bytes[p + k] = c;
  }
  return n;
}
