import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Connection, type ConnectionDeps } from './connection.js';
import { TurnWrites } from './turn-writes.js';
import { bindSocketPath, inspectSocketPath, ownsSocketPath, releaseSocketPath, type SocketIdentity } from './socket-path.js';

/** How a runner stops. */
export interface DrainOptions {
  /** How long in-flight RPCs may run before their connections are closed. Default 700 ms. */
  readonly graceMs?: number;
  /**
   * Keep accepting while the socket path is still this runner's, until a newer runner takes it
   * over or the grace ends. During `apisix reload` the old runner may get SIGTERM before the new
   * one listens; APISIX does not retry a refused connect (ext-plugin/init.lua `rpc_call`), so
   * refusing in that gap would turn requests into 503s. Default false (stop accepting at once).
   */
  readonly untilHandedOver?: boolean;
}

/** How often a draining runner looks whether a newer runner has taken the socket path over. */
const HANDOVER_POLL_MS = 20;

/** The Unix-socket listener: accepts APISIX's connections and drains them at shutdown. */
export class RunnerServer {
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private closing: Promise<void> | undefined;
  private accepting = true;
  private stopped: Promise<void> = Promise.resolve();
  private identity: SocketIdentity | undefined;
  private connectionArrived: (() => void) | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private readPathLogged = false;
  /** Every connection's frames, written at the end of the turn that made them. */
  private readonly turn = new TurnWrites();

  constructor(readonly socketPath: string, private readonly deps: ConnectionDeps) {
    // Accepted paused: a connection's reads start once its reader is in place (socket-reads.ts).
    this.server = createServer({ noDelay: true, pauseOnConnect: true }, this.onConnection);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Listens on the socket path and opens it to APISIX's workers. A stale socket is replaced;
   * a live one (another runner, during `apisix reload`) is taken over atomically, so the path
   * never lacks a listener.
   */
  async listen(): Promise<void> {
    const before = await inspectSocketPath(this.socketPath);
    // A large backlog: every APISIX worker may open connections at once (up to 32 idle each
    // plus bursts), and a full Unix-socket backlog fails connect() with EAGAIN, i.e. a 503.
    this.identity = await bindSocketPath(this.server, this.socketPath, 4096);
    if (before === 'live') this.deps.logger.info({ socket: this.socketPath }, 'took the socket path over from a runner still listening on it (apisix reload); new connections now reach this runner');
    else if (before === 'stale') this.deps.logger.info({ socket: this.socketPath }, 'replaced a stale socket file left by an earlier run');
    this.server.on('error', (err) => this.deps.logger.error({ err }, 'listener error'));
    // Unanswered ExtraInfo questions are found by one sweep, at a quarter of the timeout
    // (so a connection is closed between 1× and 1.25× the timeout).
    const every = Math.max(10, Math.min(1000, Math.floor(this.deps.extraInfoTimeoutMs / 4)));
    this.watchdog = setInterval(() => {
      const now = performance.now();
      for (const c of this.connections) c.checkExtraInfoTimeout(now);
    }, every);
    this.watchdog.unref();
  }

  /**
   * Stops accepting (at once, or once a newer runner owns the path), lets in-flight RPCs finish
   * (up to the grace), closes every connection and removes the socket file if it is still the
   * one this runner bound: a newer runner's socket at the same path is never touched.
   */
  close(options: DrainOptions = {}): Promise<void> {
    this.closing ??= this.drain(options.graceMs ?? 700, options.untilHandedOver ?? false);
    return this.closing;
  }

  private async drain(graceMs: number, untilHandedOver: boolean): Promise<void> {
    clearInterval(this.watchdog);
    let expired = false;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        expired = true;
        resolve();
      }, graceMs);
    });
    const identity = this.identity;
    let handedOver: Promise<void> = Promise.resolve();
    if (untilHandedOver && identity) {
      handedOver = (async () => {
        while (!expired && (await ownsSocketPath(this.socketPath, identity))) await sleep(HANDOVER_POLL_MS);
        if (!expired) this.deps.logger.info({ socket: this.socketPath }, 'the socket path now belongs to another runner: no longer accepting');
      })();
    }
    if (!untilHandedOver) this.stopAccepting();
    void handedOver.then(() => this.stopAccepting());

    // True when the drain time ended while some RPC was still running (its connection is then cut).
    let cut = false;
    const allIdle = async (): Promise<void> => {
      const idle = Promise.all([...this.connections].map((c) => c.whenIdle())).then(() => true);
      cut = !(await Promise.race([idle, deadline.then(() => false)]));
    };
    for (;;) {
      await allIdle();
      if (expired || !this.accepting) {
        // Connections accepted after the last look are drained as well.
        if (!expired) await allIdle();
        break;
      }
      // Every connection is idle and the path is still ours: wait for a new connection, a successor
      // or the end (a call arriving on an idle keep-alive connection is drained with the others then).
      await Promise.race([new Promise<void>((resolve) => (this.connectionArrived = resolve)), handedOver, deadline]);
      this.connectionArrived = undefined;
    }
    clearTimeout(timer);
    this.stopAccepting();
    if (cut) this.deps.logger.warn({ connections: this.connections.size, graceMs }, 'drain time is over: closing connections with RPCs still running');
    for (const c of this.connections) c.destroy();
    await this.stopped;
    if (!identity) return;
    if (await releaseSocketPath(this.socketPath, identity)) {
      this.deps.logger.info({ socket: this.socketPath }, 'removed the socket file');
    } else {
      this.deps.logger.info({ socket: this.socketPath }, 'left the socket path alone: it now belongs to another runner');
    }
  }

  private stopAccepting(): void {
    if (!this.accepting) return;
    this.accepting = false;
    this.stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.connectionArrived?.();
  }

  private readonly onConnection = (socket: Socket): void => {
    if (!this.accepting) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, this.deps, this.turn);
    if (!this.readPathLogged) {
      this.readPathLogged = true;
      if (conn.readPath === 'user-buffer') this.deps.logger.debug('connections are read into one reused buffer');
      else this.deps.logger.info(`connections are read through the stream API: this Node (${process.version}) does not offer the internals of the reused read buffer; calls cost a little more CPU`);
    }
    this.connections.add(conn);
    this.deps.metrics.connections.inc();
    socket.once('close', () => {
      this.connections.delete(conn);
      this.deps.metrics.connections.dec();
    });
    this.connectionArrived?.();
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
