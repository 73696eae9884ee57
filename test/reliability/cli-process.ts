/** The runner as APISIX runs it: the CLI in a child process, with its output captured. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

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

/** Waits (bounded) until a CLI process logs that it listens. */
export async function untilListening(proc: CliProcess): Promise<CliProcess> {
  for (let i = 0; i < 400; i++) {
    if (proc.output().includes('"msg":"runner listening"')) return proc;
    if (proc.child.exitCode !== null) throw new Error(`runner exited early:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`runner did not start within 10 s:\n${proc.output()}`);
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
