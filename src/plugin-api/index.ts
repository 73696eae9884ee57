// The public API for plugin authors. Nothing here knows about FlatBuffers or sockets.
export type { HttpMethod, TextPair, HeaderInit, StopResponse, HttpRequest } from './request.js';
export type { HttpResponse } from './response.js';
export { EmptyResponseBodyError } from './response.js';
export type { JsonSchema, FailurePolicy, Logger, ConfContext, CallContext, Plugin } from './plugin.js';
export { ConfError, definePlugin } from './plugin.js';
export type { PluginFactory, PluginHost } from './host.js';
