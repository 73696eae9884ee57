/**
 * A circuit breaker for one node. `failures` connect failures in a row take the node out
 * (open); after a jittered, exponentially growing delay one request is let through as a probe
 * (half open). A probe that connects closes the breaker; one that fails to connect opens it
 * again with twice the delay (up to maxMs). Only failures to reach the node count: a node that
 * answers, even with an error or late, is reachable, and the breaker stays closed.
 */
import type { BreakerSettings } from './types.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

/** Error codes that mean "could not reach the node" (nothing was sent). */
export const CONNECT_FAILURE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL',
  'ENOTFOUND', 'EAI_AGAIN', 'CONNECT_TIMEOUT', 'GRPC_UNAVAILABLE',
]);

export class CircuitBreaker {
  private consecutive = 0;
  private openings = 0;
  private retryAt = 0;
  private probing = false;
  state: BreakerState = 'closed';

  constructor(
    private readonly settings: BreakerSettings,
    /** Monotonic milliseconds. */
    private readonly now: () => number,
    /** Uniform in [0, 1). */
    private readonly random: () => number,
  ) {}

  /**
   * Whether a request may go to this node now: closed, or open with the retry time reached
   * and no probe out yet. Does not change state (see take()).
   */
  available(): boolean {
    if (this.state === 'closed') return true;
    return !this.probing && this.now() >= this.retryAt;
  }

  /**
   * Takes the node for one request: false when it is out. When the retry time is reached this
   * request becomes the probe and every other one is refused until the probe's outcome is known.
   */
  take(): boolean {
    if (this.state === 'closed') return true;
    if (this.probing || this.now() < this.retryAt) return false;
    this.state = 'half_open';
    this.probing = true;
    return true;
  }

  /** The node was reached. Returns true when this closed an open breaker. */
  succeeded(): boolean {
    this.consecutive = 0;
    if (this.state === 'closed') return false;
    this.state = 'closed';
    this.probing = false;
    this.openings = 0;
    return true;
  }

  /**
   * The node could not be reached. Returns the retry delay when this opened the breaker (from
   * closed or from a failed probe), undefined otherwise.
   */
  failed(): number | undefined {
    if (this.state === 'closed') {
      this.consecutive++;
      if (this.consecutive < this.settings.failures) return undefined;
      return this.open();
    }
    if (this.state === 'half_open' && this.probing) {
      this.probing = false;
      return this.open();
    }
    // Requests sent before the breaker opened and failing afterwards change nothing.
    return undefined;
  }

  /** A probe ended without telling whether the node is reachable (e.g. cancelled at shutdown). */
  released(): void {
    if (this.state === 'half_open' && this.probing) {
      this.probing = false;
      this.state = 'open';
    }
  }

  /** The delay until the next probe: base·2^(n-1), capped, times a jitter in [0.5, 1). */
  private open(): number {
    this.openings++;
    const { baseMs, maxMs } = this.settings;
    const raw = Math.min(maxMs, baseMs * 2 ** Math.min(this.openings - 1, 30));
    const delay = raw * (0.5 + this.random() / 2);
    this.state = 'open';
    this.consecutive = 0;
    this.retryAt = this.now() + delay;
    return delay;
  }
}
