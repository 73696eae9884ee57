/** Steady call load as APISIX workers make it, recording which runner (pid) answered each call. */
import { ApisixClient, type ReqCallOutcome } from '../harness/apisix-client.js';
import { GET } from '../harness/test-runner.js';

export const WHOAMI_ROUTE = { key: 'route#1#ext-plugin-pre-req#1', conf: [{ name: 'whoami', value: '' }] };

export interface Load {
  /** pid → calls that pid answered. */
  readonly answeredBy: Map<string, number>;
  /** Outcomes that were not a whoami answer (APISIX would answer 503). */
  readonly failures: ReqCallOutcome[];
  /** Stops starting calls and waits for the ones in flight; closes the client's pool. */
  stop(): Promise<void>;
}

/** `concurrency` loops, each making one call after the other through one pooled client (one APISIX worker). */
export function startLoad(socketPath: string, concurrency = 4): Load {
  const client = new ApisixClient({ socketPath, readTimeoutMs: 20_000 });
  const answeredBy = new Map<string, number>();
  const failures: ReqCallOutcome[] = [];
  let running = true;
  const loop = async (): Promise<void> => {
    while (running) {
      const outcome = await client.httpReqCall(WHOAMI_ROUTE, GET);
      if (outcome.kind === 'stop' && outcome.stop.body) {
        const pid = outcome.stop.body.toString();
        answeredBy.set(pid, (answeredBy.get(pid) ?? 0) + 1);
      } else {
        failures.push(outcome);
      }
      // A new request reaches the worker as a new event: let I/O (a closed pooled connection) be seen first.
      await new Promise((r) => setImmediate(r));
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    answeredBy,
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
      await client.close();
    },
  };
}

/** Calls answered by `pid` so far. */
export function callsBy(load: Load, pid: number): number {
  return load.answeredBy.get(String(pid)) ?? 0;
}
