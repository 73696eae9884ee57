import type { HeaderInit, TextPair } from '../plugin-api/request.js';

/**
 * Edits of a name → values list (headers, args, response headers): `null` deletes the name.
 * Reads merge the original entries with the edits.
 */
export class EntryEdits {
  private edits: Map<string, { name: string; values: string[] | null }> | undefined;

  constructor(private readonly caseInsensitive: boolean) {}

  get size(): number {
    return this.edits?.size ?? 0;
  }

  private norm(name: string): string {
    return this.caseInsensitive ? name.toLowerCase() : name;
  }

  set(name: string, values: string[] | null): void {
    (this.edits ??= new Map()).set(this.norm(name), { name, values });
  }

  /** The edit of a name: undefined = not edited, null = deleted. */
  get(name: string): string[] | null | undefined {
    return this.edits?.get(this.norm(name))?.values;
  }

  /** First value of `name`: the edit if there is one, else from the original entries ('' for a valueless one). */
  first(original: readonly TextPair[], name: string): string | undefined {
    const edit = this.get(name);
    if (edit !== undefined) return edit === null ? undefined : edit[0];
    return firstValue(original, name, this.caseInsensitive);
  }

  /** Every value of `name`, edits applied. */
  all(original: readonly TextPair[], name: string): string[] {
    const edit = this.get(name);
    if (edit !== undefined) return edit === null ? [] : [...edit];
    return allValues(original, name, this.caseInsensitive);
  }

  /** Original entries with edits applied (edited names replaced in place of their last position). */
  apply(original: readonly TextPair[]): readonly TextPair[] {
    if (!this.edits) return original;
    const out: TextPair[] = [];
    for (const e of original) if (!this.edits.has(this.norm(e.name))) out.push(e);
    for (const { name, values } of this.edits.values()) {
      if (values) for (const v of values) out.push({ name, value: v });
    }
    return out;
  }

  /** The edits as wire entries: one entry per value, a valueless entry for a deletion. */
  toEntries(): TextPair[] {
    const out: TextPair[] = [];
    if (!this.edits) return out;
    for (const { name, values } of this.edits.values()) {
      if (values === null) out.push({ name, value: undefined });
      else for (const v of values) out.push({ name, value: v });
    }
    return out;
  }
}

export function firstValue(entries: readonly TextPair[], name: string, caseInsensitive: boolean): string | undefined {
  const n = caseInsensitive ? name.toLowerCase() : name;
  for (const e of entries) {
    if ((caseInsensitive ? e.name.toLowerCase() : e.name) === n) return e.value ?? '';
  }
  return undefined;
}

export function allValues(entries: readonly TextPair[], name: string, caseInsensitive: boolean): string[] {
  const n = caseInsensitive ? name.toLowerCase() : name;
  const out: string[] = [];
  for (const e of entries) {
    if ((caseInsensitive ? e.name.toLowerCase() : e.name) === n) out.push(e.value ?? '');
  }
  return out;
}

/** Flattens a HeaderInit into wire entries. */
export function headerInitEntries(init: HeaderInit | undefined): TextPair[] {
  const out: TextPair[] = [];
  if (!init) return out;
  for (const [name, v] of Object.entries(init)) {
    if (typeof v === 'string') out.push({ name, value: v });
    else for (const item of v) out.push({ name, value: item });
  }
  return out;
}

export function toBytes(body: string | Uint8Array): Uint8Array {
  return typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
}
