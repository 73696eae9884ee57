/** The mirror dispatch engine (see engine.ts). */
export { DispatchEngine, targetKey, type EngineOptions } from './engine.js';
export { DispatchTarget } from './target.js';
export { CircuitBreaker, CONNECT_FAILURE_CODES, type BreakerState } from './circuit-breaker.js';
export { loadGrpc } from './grpc-node.js';
export type * from './types.js';
export { DispatchThreads } from './thread-pool.js';
