/**
 * What the report reads: per route, counts by result, how often each field differed (with its
 * latest values), which fields were set aside as noise, and the latest examples side by side.
 * Everything is bounded (routes, fields per route, examples per route, sizes of values) and
 * redacted before it is stored, so nothing secret or large is ever held here.
 */
import type { AnswerHeaders } from './answer.js';
import { COMPARE_RESULTS, isCompared, type CompareResult } from './compare-result.js';
import { shortValue, type FieldDifference } from './field-difference.js';
import { redactDifference, redactHeaders } from './redact.js';

/** One side of an example as shown. */
export interface SideView {
  readonly status: number | null;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
  readonly durationMs: number | null;
}

/** One recent difference. */
export interface DiffExample {
  readonly at: string;
  readonly route: string;
  readonly target: string;
  readonly method: string;
  /** The request path without its query (queries often carry tokens). */
  readonly path: string;
  readonly result: CompareResult;
  readonly differences: readonly FieldDifference[];
  readonly noise: readonly string[];
  readonly primary: SideView;
  readonly candidate: SideView;
}

export interface FieldCount {
  readonly field: string;
  readonly count: number;
  readonly primary: string | null;
  readonly candidate: string | null;
}

export interface RouteSummary {
  readonly route: string;
  readonly targets: readonly string[];
  readonly counts: Readonly<Record<CompareResult, number>>;
  /** Pairs whose answers were both in and compared (equal + differ_*). */
  readonly compared: number;
  readonly equal: number;
  readonly differ: number;
  /** differ / compared (0 when nothing was compared). */
  readonly differRate: number;
  readonly topFields: readonly FieldCount[];
  /** Fields set aside as noise in candidate comparisons, with how often. */
  readonly noiseSuppressed: readonly { readonly field: string; readonly count: number }[];
  readonly examples: readonly DiffExample[];
}

const MAX_EXAMPLE_FIELDS = 20;
const MAX_EXAMPLE_HEADERS = 40;
const MAX_SHOWN_VALUE = 256;

interface RouteState {
  readonly targets: Set<string>;
  readonly counts: Record<CompareResult, number>;
  readonly fields: Map<string, { count: number; primary: string | null; candidate: string | null }>;
  readonly noise: Map<string, number>;
  examples: DiffExample[];
}

function zeroCounts(): Record<CompareResult, number> {
  return Object.fromEntries(COMPARE_RESULTS.map((r) => [r, 0])) as Record<CompareResult, number>;
}

/** Cuts the values of an example's headers and differences so one example stays a few KiB. */
export function exampleHeaders(headers: AnswerHeaders): [string, string][] {
  return redactHeaders(headers.slice(0, MAX_EXAMPLE_HEADERS)).map(([n, v]) => [n, shortValue(v, MAX_SHOWN_VALUE)]);
}

export class RecentDifferences {
  private readonly routes = new Map<string, RouteState>();

  constructor(
    private readonly maxRoutes = 256,
    private readonly maxFieldsPerRoute = 200,
  ) {}

  private state(route: string): RouteState | undefined {
    let s = this.routes.get(route);
    if (!s && this.routes.size < this.maxRoutes) {
      this.routes.set(route, (s = { targets: new Set(), counts: zeroCounts(), fields: new Map(), noise: new Map(), examples: [] }));
    }
    return s;
  }

  /** Counts one outcome; `differences` are the counted ones (already without noise). */
  record(route: string, target: string, result: CompareResult, differences: readonly FieldDifference[], noise: readonly string[]): void {
    const s = this.state(route);
    if (!s) return;
    s.targets.add(target);
    s.counts[result]++;
    for (const raw of differences) {
      const d = redactDifference(raw);
      const f = s.fields.get(d.field);
      if (f) {
        f.count++;
        f.primary = d.primary;
        f.candidate = d.candidate;
      } else if (s.fields.size < this.maxFieldsPerRoute) {
        s.fields.set(d.field, { count: 1, primary: d.primary, candidate: d.candidate });
      }
    }
    for (const field of noise) {
      const n = s.noise.get(field);
      if (n !== undefined) s.noise.set(field, n + 1);
      else if (s.noise.size < this.maxFieldsPerRoute) s.noise.set(field, 1);
    }
  }

  /** Keeps an example (newest first), at most `keep` per route. */
  addExample(example: DiffExample, keep: number): void {
    const s = this.state(example.route);
    if (!s || keep <= 0) return;
    const stored: DiffExample = {
      ...example,
      differences: example.differences.slice(0, MAX_EXAMPLE_FIELDS).map((d) => {
        const r = redactDifference(d);
        return { field: r.field, primary: r.primary && shortValue(r.primary, MAX_SHOWN_VALUE), candidate: r.candidate && shortValue(r.candidate, MAX_SHOWN_VALUE) };
      }),
      noise: example.noise.slice(0, MAX_EXAMPLE_FIELDS),
    };
    s.examples = [stored, ...s.examples.slice(0, keep - 1)];
  }

  /** Per route, for the JSON view and the report. */
  summaries(topN = 10): RouteSummary[] {
    const out: RouteSummary[] = [];
    for (const [route, s] of this.routes) {
      const compared = COMPARE_RESULTS.filter(isCompared).reduce((n, r) => n + s.counts[r], 0);
      const equal = s.counts.equal;
      out.push({
        route,
        targets: [...s.targets].sort(),
        counts: { ...s.counts },
        compared,
        equal,
        differ: compared - equal,
        differRate: compared === 0 ? 0 : (compared - equal) / compared,
        topFields: [...s.fields].map(([field, f]) => ({ field, ...f }))
          .sort((a, b) => b.count - a.count || a.field.localeCompare(b.field)).slice(0, topN),
        noiseSuppressed: [...s.noise].map(([field, count]) => ({ field, count }))
          .sort((a, b) => b.count - a.count || a.field.localeCompare(b.field)).slice(0, topN),
        examples: s.examples,
      });
    }
    return out.sort((a, b) => a.route.localeCompare(b.route));
  }
}
