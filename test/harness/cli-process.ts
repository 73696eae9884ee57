/** The runner as APISIX runs it: the CLI in a child process, with its output captured. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { waitUntil } from './wait.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'src/cli.ts');

export interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

const started: ChildProcess[] = [];

/** Starts `node --import tsx src/cli.ts args` without waiting (for runs that exit at once). */
export function spawnCli(args: readonly string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, pid: child.pid!, output: () => out, exited };
}

/** Adds the process's output to a failed wait's message: that output is what explains it. */
async function withOutputOnFailure(proc: CliProcess, waiting: Promise<void>): Promise<void> {
  try {
    await waiting;
  } catch (err) {
    throw new Error(`${(err as Error).message}; output:\n${proc.output()}`, { cause: err });
  }
}

/** Waits (bounded) until a CLI process logs that it listens. */
export async function untilListening(proc: CliProcess): Promise<CliProcess> {
  await withOutputOnFailure(proc, waitUntil(() => {
    if (proc.output().includes('"msg":"runner listening"')) return true;
    if (proc.child.exitCode !== null) throw new Error('runner exited early');
    return false;
  }, 'the runner to log that it listens'));
  return proc;
}

/** Starts the CLI and waits until it listens. */
export function startCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliProcess> {
  return untilListening(spawnCli(args, env));
}

/** Kills every CLI child still running (afterEach). */
export function killAllCli(): void {
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** Open file descriptors of a process (Linux /proc). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The soft limit on open files of a process (Linux /proc), or undefined when unlimited or unknown. */
export function openFileLimit(pid: number | 'self' = 'self'): number | undefined {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
}

/** Waits (bounded, 20 s) until a CLI process has written `text`; fails with its output otherwise. */
export async function untilOutput(proc: CliProcess, text: string): Promise<void> {
  await withOutputOnFailure(proc, waitUntil(() => {
    if (proc.output().includes(text)) return true;
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`process exited before writing ${JSON.stringify(text)}`);
    return false;
  }, `the process to write ${JSON.stringify(text)}`, { limitMs: 20_000 }));
}

/**
 * The Unix sockets a process is listening on, by the name each was bound to (Linux /proc:
 * the process's socket fds, matched with the listening entries of /proc/net/unix). Shows
 * whether a runner still accepts, even after its socket file was renamed or replaced.
 */
export function listeningUnixSockets(pid: number): string[] {
  const owned = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) owned.add(m[1]!);
    } catch {
      // fd closed meanwhile
    }
  }
  const SO_ACCEPTCON = 0x10000;
  return readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 7 && (Number.parseInt(f[3]!, 16) & SO_ACCEPTCON) !== 0 && owned.has(f[6]!))
    .map((f) => f[7] ?? '');
}
