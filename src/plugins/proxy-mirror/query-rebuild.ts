/**
 * When the copy's query can be rebuilt exactly from the args of the HTTPReqCall: the rules
 * and their proof are in src/mirror-dispatch/query-rebuild.ts, with the dispatch engine,
 * because a dispatch worker rebuilds the query of the copies it builds.
 */
export { MAX_REBUILT_ARGS, literalArgs, rebuildExactQuery } from '../../mirror-dispatch/query-rebuild.js';
