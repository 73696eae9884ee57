/**
 * One differing field of a comparison. Field names say where the difference is:
 * `status`, `header:<lower-case name>`, `body` (whole body: text, binary, hash) or
 * `body:<JSON pointer>` (a JSON field). Values are short display strings (JSON text for JSON
 * values, the header value, a body summary); `null` means the field is absent on that side.
 */
export interface FieldDifference {
  readonly field: string;
  readonly primary: string | null;
  readonly candidate: string | null;
}

/** Longest value kept in a difference; longer ones are cut and marked, so the store stays small. */
export const MAX_VALUE_CHARS = 512;

/** Cuts a display value to MAX_VALUE_CHARS, saying how long it was. */
export function shortValue(value: string, max = MAX_VALUE_CHARS): string {
  return value.length <= max ? value : `${value.slice(0, max)}… (${value.length} chars)`;
}
