/** The runner as APISIX runs it: the CLI in a child process, with its output captured. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
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

/** Starts `node --import tsx src/cli.ts args` and waits (bounded) until it logs that it listens. */
export async function startCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliProcess> {
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
  const proc: CliProcess = { child, pid: child.pid!, output: () => out, exited };
  for (let i = 0; i < 400; i++) {
    if (out.includes('"msg":"runner listening"')) return proc;
    if (child.exitCode !== null) throw new Error(`runner exited early:\n${out}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`runner did not start within 10 s:\n${out}`);
}

/** Kills every CLI child still running (afterEach). */
export function killAllCli(): void {
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** Open file descriptors of a process (Linux /proc). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Polls `check` every 10 ms until it holds or `tries` run out; returns its last value. */
export async function eventually(check: () => boolean, tries = 300): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return check();
}
