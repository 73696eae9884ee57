// Types of bench/frames.mjs, so TypeScript tests can import it.
import type * as flatbuffersRuntime from 'flatbuffers';
import type * as A6 from '../src/protocol/generated/a6.js';

export declare const FRAME_TYPE: Readonly<{ error: 0; prepareConf: 1; httpReqCall: 2; extraInfo: 3; httpRespCall: 4 }>;
export declare const GET_HEADERS: ReadonlyArray<readonly [string, string]>;
export declare function frameOf(type: number, payload: Uint8Array): Buffer;
export declare function payloadLength(buf: Uint8Array, offset: number): number;

export type ExtraInfoQuestion =
  | { kind: 'var'; name: string }
  | { kind: 'reqBody' }
  | { kind: 'respBody' }
  | { kind: 'unknown' };

export interface BenchFrames {
  prepareConf(conf: ReadonlyArray<{ name: string; value: string }>, key: string): Buffer;
  httpReqCall(token: number, options?: { bodySize?: number }): { frame: Buffer; idOffset: number };
  httpRespCall(token: number, options?: { status?: number; headers?: ReadonlyArray<readonly [string, string]> }): { frame: Buffer; idOffset: number };
  extraInfoAnswer(bytes: Uint8Array | undefined): Buffer;
  readExtraInfoQuestion(payload: Uint8Array): ExtraInfoQuestion;
  readConfToken(payload: Uint8Array): number;
  readReplyAction(payload: Uint8Array): 'none' | 'stop' | 'rewrite';
  readErrorCode(payload: Uint8Array): number;
  prepareConfReply(token: number): Buffer;
  emptyReqCallReply(id: number): Buffer;
  reqBodyQuestion(): Buffer;
}

export declare function createBenchFrames(a6: typeof A6, flatbuffers: typeof flatbuffersRuntime): BenchFrames;
