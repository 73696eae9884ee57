/**
 * Loads the recorded APISIX conformance vectors (test/fixtures/conformance/) and turns their
 * JSON sidecars into typed objects. Shared by the conformance suite and the gateway tests.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const VECTORS_DIR = fileURLToPath(new URL('../fixtures/conformance/', import.meta.url));

/** A `[ubyte]` field as the sidecar writes it. */
export interface JsonBytes {
  readonly len: number;
  readonly hex: string;
  readonly utf8?: string;
}

/** A TextEntry as the sidecar writes it (`value` key missing = no value field). */
export interface JsonEntry {
  readonly name: string;
  readonly value?: string;
}

export interface VectorJson {
  readonly name: string;
  readonly direction: 'apisix_to_runner' | 'runner_to_apisix';
  readonly frame_type: number;
  readonly message: string;
  readonly description: string;
  readonly context?: Record<string, unknown>;
  readonly frame_header_hex: string;
  readonly payload_length: number;
  readonly frame_length: number;
  readonly content: Record<string, unknown>;
  readonly root_table: { readonly fields_present: readonly string[] };
  readonly action_table?: Record<string, { readonly fields_present: readonly string[] }>;
  readonly reused_builder?: { readonly reused_builder_payload_hex: string; readonly differing_payload_offsets: readonly number[] };
}

export interface Vector {
  readonly json: VectorJson;
  readonly frame: Buffer;
  readonly payload: Buffer;
}

interface IndexJson {
  readonly count: number;
  readonly vectors: readonly { readonly name: string; readonly direction: string }[];
}

/** Every vector listed in index.json, with its bytes. */
export function loadVectors(): Vector[] {
  const index = JSON.parse(readFileSync(join(VECTORS_DIR, 'index.json'), 'utf8')) as IndexJson;
  if (index.vectors.length !== index.count) throw new Error('index.json count does not match its list');
  return index.vectors.map(({ name }) => ({
    json: JSON.parse(readFileSync(join(VECTORS_DIR, `${name}.json`), 'utf8')) as VectorJson,
    frame: readFileSync(join(VECTORS_DIR, `${name}.frame.bin`)),
    payload: readFileSync(join(VECTORS_DIR, `${name}.payload.bin`)),
  }));
}

/** Bytes of a sidecar `[ubyte]` field, or undefined when the field is absent. */
export function jsonBytes(value: unknown): Buffer | undefined {
  if (value === undefined) return undefined;
  return Buffer.from((value as JsonBytes).hex, 'hex');
}

/** A sidecar entry array, or undefined when the field is absent. */
export function jsonEntries(value: unknown): JsonEntry[] | undefined {
  return value === undefined ? undefined : (value as JsonEntry[]);
}
