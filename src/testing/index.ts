// apisix-ts-plugin-runner/testing: run plugins in-process or against a real runner, as APISIX would.
export { runRequest, runResponse, type PluginSource, type RunOptions, type ConfReport, type ConfProblem } from './run-plugins.js';
export { ApisixTestClient, type ApisixTestClientOptions, type CallOptions } from './apisix-test-client.js';
export {
  startTestRunner,
  startRunnerProcess,
  RunnerStartError,
  type TestRunner,
  type TestRunnerOptions,
  type RunnerProcess,
  type RunnerProcessOptions,
  type LogLine,
} from './test-runner.js';
export { MissingRequestDataError, type ConfEntry, type MissingDataPolicy, type RequestDescription, type ResponseDescription, type TextMap } from './descriptions.js';
export type {
  ExtraInfoQuestion,
  StopOutcome,
  RewriteOutcome,
  NoneOutcome,
  ErrorOutcome,
  RequestOutcome,
  ResponseChangeOutcome,
  ResponseOutcome,
} from './outcomes.js';
