/**
 * Diffy's idea: two instances of the version that serves users (primary and secondary) should
 * answer alike; a field on which they differ is noise (timestamps, random ids), and the same
 * field differing in the candidate says nothing about the candidate. Stats are kept per
 * route, method and path pattern; a field is trusted as noise once its pattern has at least
 * `minSamples` primary/secondary pairs and the field differed in at least `minRate` of them.
 * Bounded: at most `maxKeys` patterns and `maxFields` fields per pattern (later ones ignored).
 */
import { fieldPattern } from './path-pattern.js';

interface PatternStats {
  readonly route: string;
  readonly pattern: string;
  samples: number;
  readonly fields: Map<string, number>;
}

/** A learned noise field, as the report shows it. */
export interface NoiseField {
  readonly route: string;
  readonly pattern: string;
  readonly field: string;
  readonly differed: number;
  readonly samples: number;
  readonly trusted: boolean;
}

export class NoiseLearner {
  private readonly stats = new Map<string, PatternStats>();

  constructor(private readonly maxKeys = 1000, private readonly maxFields = 256) {}

  private key(route: string, pattern: string): string {
    return `${route}\u0000${pattern}`;
  }

  /** Records one primary/secondary pair and the fields on which they differed. */
  observe(route: string, pattern: string, differingFields: readonly string[]): void {
    const k = this.key(route, pattern);
    let s = this.stats.get(k);
    if (!s) {
      if (this.stats.size >= this.maxKeys) return;
      this.stats.set(k, (s = { route, pattern, samples: 0, fields: new Map() }));
    }
    s.samples++;
    for (const f of new Set(differingFields.map(fieldPattern))) {
      const n = s.fields.get(f);
      if (n !== undefined) s.fields.set(f, n + 1);
      else if (s.fields.size < this.maxFields) s.fields.set(f, 1);
    }
  }

  /** True when `field` is trusted noise for this route and pattern. */
  isNoise(route: string, pattern: string, field: string, minSamples: number, minRate: number): boolean {
    const s = this.stats.get(this.key(route, pattern));
    if (!s || s.samples < minSamples) return false;
    const n = s.fields.get(fieldPattern(field)) ?? 0;
    return n > 0 && n / s.samples >= minRate;
  }

  /** Every field seen differing between primary and secondary on a route, most frequent first. */
  fieldsOf(route: string, minSamples: number, minRate: number): NoiseField[] {
    const out: NoiseField[] = [];
    for (const s of this.stats.values()) {
      if (s.route !== route) continue;
      for (const [field, differed] of s.fields) {
        out.push({ route, pattern: s.pattern, field, differed, samples: s.samples, trusted: s.samples >= minSamples && differed / s.samples >= minRate });
      }
    }
    return out.sort((a, b) => b.differed - a.differed || a.field.localeCompare(b.field));
  }
}
