/**
 * Compares the real answer with the candidate's: status, selected headers, body. Every
 * differing field is listed; the result names the most significant kind, status before body
 * before headers (a different status usually explains the rest, and a body difference matters
 * more to a user than a header one).
 */
import type { HeldAnswer } from './answer.js';
import { diffBodies, type BodyComparison } from './body-diff.js';
import type { CompareConf } from './conf.js';
import type { FieldDifference } from './field-difference.js';
import { diffHeaders } from './header-diff.js';

export type DiffResult = 'equal' | 'differ_status' | 'differ_headers' | 'differ_body';

export interface AnswerDiff {
  readonly differences: FieldDifference[];
  readonly body: BodyComparison;
}

/** All differing fields between two answers under a route's compare settings. */
export function diffAnswers(method: string, primary: HeldAnswer, candidate: HeldAnswer, conf: CompareConf): AnswerDiff {
  const differences: FieldDifference[] = [];
  if (conf.status && primary.status !== candidate.status) {
    differences.push({ field: 'status', primary: String(primary.status), candidate: String(candidate.status) });
  }
  differences.push(...diffHeaders(primary.headers, candidate.headers, conf.headers));
  const body = diffBodies(method, primary, candidate, conf.body);
  differences.push(...body.differences);
  return { differences, body: body.how };
}

/** The result a list of (counted) differences stands for. */
export function classify(differences: readonly FieldDifference[]): DiffResult {
  if (differences.length === 0) return 'equal';
  if (differences.some((d) => d.field === 'status')) return 'differ_status';
  if (differences.some((d) => d.field === 'body' || d.field.startsWith('body:'))) return 'differ_body';
  return 'differ_headers';
}
