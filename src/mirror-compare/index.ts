/** The compare room: what the proxy-mirror wiring and the metrics listener import. */
export type { AnswerHeaders, MirrorAnswer, MirrorFailure, MirrorOutcome, PrimaryAnswer } from './answer.js';
export { compareSchema, parseCompareConf, DEFAULT_IGNORED_HEADERS, type CompareConf } from './conf.js';
export { COMPARE_RESULTS, type CompareResult, type SkipReason } from './compare-result.js';
export { ShadowComparison, type ComparedRequest, type CompareReport, type ShadowComparisonOptions, type DiffSink } from './shadow-comparison.js';
export { DiffLogWriter, type DiffLogOptions } from './diff-log.js';
export { createCompareHttpHandler, serveDiffs, serveReport, type ReportSource } from './http-handlers.js';
