/**
 * Header comparison: names case-insensitive, repeated headers joined in order with ", ".
 * `set-cookie` is compared by the names of the cookies set (sorted), never by their values,
 * which are session ids on any two instances.
 */
import type { AnswerHeaders } from './answer.js';
import type { HeaderSelection } from './conf.js';
import { shortValue, type FieldDifference } from './field-difference.js';

/** Lower-case name → the value compared (joined values; cookie names for set-cookie). */
export function headerValues(headers: AnswerHeaders): Map<string, string> {
  const joined = new Map<string, string[]>();
  for (const [name, value] of headers) {
    const n = name.toLowerCase();
    const v = n === 'set-cookie' ? value.split(';', 1)[0]!.split('=', 1)[0]!.trim() : value;
    const list = joined.get(n);
    if (list) list.push(v);
    else joined.set(n, [v]);
  }
  const out = new Map<string, string>();
  for (const [n, list] of joined) out.set(n, n === 'set-cookie' ? list.sort().join('; ') : list.join(', '));
  return out;
}

function selected(selection: HeaderSelection, name: string): boolean {
  if (selection.mode === 'off') return false;
  return selection.mode === 'include' ? selection.names.has(name) : !selection.names.has(name);
}

/** The differing headers, named `header:<name>`, in name order. */
export function diffHeaders(primary: AnswerHeaders, candidate: AnswerHeaders, selection: HeaderSelection): FieldDifference[] {
  if (selection.mode === 'off') return [];
  const a = headerValues(primary);
  const b = headerValues(candidate);
  const names = [...new Set([...a.keys(), ...b.keys()])].filter((n) => selected(selection, n)).sort();
  const out: FieldDifference[] = [];
  for (const n of names) {
    const va = a.get(n);
    const vb = b.get(n);
    if (va !== vb) out.push({ field: `header:${n}`, primary: va === undefined ? null : shortValue(va), candidate: vb === undefined ? null : shortValue(vb) });
  }
  return out;
}
