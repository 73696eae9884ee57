/**
 * The requests a dispatch worker has not answered yet, by request id. An id is a slot in
 * parallel arrays, reused once its outcome is read: no Map entry and no object per request.
 * At 100 % mirroring with a worker, the Map and the per-request record cost the RPC thread
 * about 0.3 µs per copy (docs/performance.md, "Mirror dispatch, sixth pass").
 *
 * Ids are small integers (below the most requests ever in flight at once), so they fit the
 * rings' uint32 fields. An outcome for a free slot is ignored, like one for an unknown id.
 */
import type { DoneCallback } from './http-node.js';
import type { ResponseSink } from './types.js';

export class PendingTable {
  private readonly dones: (DoneCallback | undefined)[] = [];
  private readonly sinks: (ResponseSink | undefined)[] = [];
  private readonly nodes: string[] = [];
  /** 1: sent through the copies ring. */
  private readonly rings: number[] = [];
  /** Free slots, the most recently freed on top (its arrays' cells are warm). */
  private readonly free: number[] = [];
  private count = 0;

  /** Requests waiting for their outcome. */
  get size(): number {
    return this.count;
  }

  /** Records a request; returns its id. */
  add(done: DoneCallback, sink: ResponseSink | undefined, node: string, ring: boolean): number {
    const id = this.free.length > 0 ? this.free.pop()! : this.dones.length;
    this.dones[id] = done;
    this.sinks[id] = sink;
    this.nodes[id] = node;
    this.rings[id] = ring ? 1 : 0;
    this.count++;
    return id;
  }

  /** Whether `id` is waiting (false for a free slot or an id never given). */
  has(id: number): boolean {
    return id < this.dones.length && this.dones[id] !== undefined;
  }

  /** Marks a request recorded as a message as sent through the ring after all. */
  markRing(id: number): void {
    this.rings[id] = 1;
  }

  isRing(id: number): boolean {
    return this.rings[id] === 1;
  }

  done(id: number): DoneCallback {
    return this.dones[id]!;
  }

  sink(id: number): ResponseSink | undefined {
    return this.sinks[id];
  }

  node(id: number): string {
    return this.nodes[id]!;
  }

  /** Frees `id` (after its outcome was read); the caller checked has(id). */
  release(id: number): void {
    this.dones[id] = undefined;
    this.sinks[id] = undefined;
    this.count--;
    this.free.push(id);
  }

  /** Empties the table and returns every waiting request's done callback and sink, in id order. */
  clear(): { done: DoneCallback; sink: ResponseSink | undefined }[] {
    const out: { done: DoneCallback; sink: ResponseSink | undefined }[] = [];
    for (let id = 0; id < this.dones.length; id++) {
      const done = this.dones[id];
      if (done) out.push({ done, sink: this.sinks[id] });
    }
    this.dones.length = 0;
    this.sinks.length = 0;
    this.nodes.length = 0;
    this.rings.length = 0;
    this.free.length = 0;
    this.count = 0;
    return out;
  }
}
