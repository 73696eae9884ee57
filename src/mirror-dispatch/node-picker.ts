/**
 * Smooth weighted round robin (nginx's upstream algorithm) over the nodes whose breaker lets
 * a request through: every pick adds each candidate's weight to its running score, takes the
 * highest and subtracts the candidates' total from it. Weights are honoured exactly over a
 * cycle and picks of a heavy node are spread out, not bunched.
 */
import type { NodeTransport } from './http-node.js';

export class NodePicker {
  private scores: number[];

  constructor(private nodes: readonly NodeTransport[]) {
    this.scores = nodes.map(() => 0);
  }

  /** Replaces the node set (after a DNS change); scores restart. */
  reset(nodes: readonly NodeTransport[]): void {
    this.nodes = nodes;
    this.scores = nodes.map(() => 0);
  }

  get all(): readonly NodeTransport[] {
    return this.nodes;
  }

  /** True when at least one node would take a request now. */
  anyAvailable(): boolean {
    for (const n of this.nodes) if (n.breaker.available()) return true;
    return false;
  }

  /** Picks a node and takes it (a probe when its breaker is half open); undefined when all are out. */
  pick(): NodeTransport | undefined {
    const nodes = this.nodes;
    if (nodes.length === 1) return nodes[0]!.breaker.take() ? nodes[0] : undefined;
    let best = -1;
    let total = 0;
    for (let i = 0; i < nodes.length; i++) {
      if (!nodes[i]!.breaker.available()) continue;
      const w = nodes[i]!.spec.weight;
      this.scores[i]! += w;
      total += w;
      if (best < 0 || this.scores[i]! > this.scores[best]!) best = i;
    }
    if (best < 0) return undefined;
    this.scores[best]! -= total;
    const node = nodes[best]!;
    return node.breaker.take() ? node : undefined;
  }
}
