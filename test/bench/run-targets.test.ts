/**
 * bench/run.mjs --targets end to end, tiny and from source (tsx for every child through
 * NODE_OPTIONS, a two-file BENCH_DIST shim for the load generator's protocol code): the real
 * runner, sinks, load generator, metrics scrape, paced cells, pairs, sink calibration and the
 * target report are wired together. Asserts the report's structure and causes (a refused port
 * is skipped as target_down, the pairs ran), never its numbers.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDistShim } from './dist-shim.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

interface Cell { id?: string; rate?: number; summary?: { copies?: { sent: number; targetDown: number }; rpcThreadUsPerRpc?: number; threads: unknown[] } }
interface CorePair { rpcThreadUsPerRpc: { decision: number; decisionLoaded: number; mirrored: number }; copyCoreShare: number; ballastShare: number | undefined; copies?: { sent: number } }
interface Report {
  results: Cell[];
  pairs: { id: string; pairs: { p99: number[]; control?: { p99: number; copyCoreShare: number; ballastShare: number | undefined } }[]; control?: { medianBallastP99Ratio: number; medianP99RatioToLoaded: number } }[];
  sinkCalibration: { mode: string; requestsPerSecond: number }[];
  corePairs: { rate: number; pairs: CorePair[]; medianLoadedRatio: number }[];
  cpuRounds?: {
    connections: number;
    rounds: { order: string[]; cpu: Record<string, number>; kernel: Record<string, { reads?: number; writes?: number; wakes?: number; loadgenWakes?: number }> }[];
    cells: Record<string, { cpu: number[]; medianCpu: number; medianCopyAdds?: number; medianVsGauge?: number }>;
    gauge?: { id: string; cpu: number[]; medianCpu: number };
  };
}

let dir: string;
let shim: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rt-'));
  shim = writeDistShim(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runBench(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO, 'bench/run.mjs'), ...args], {
      cwd: REPO,
      env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import tsx`.trim(), BENCH_DIST: shim, BENCH_OUT_DIR: path.join(dir, 'out') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.once('exit', (code) => resolve({ code, out, err }));
  });
}

describe('bench/run.mjs --targets', () => {
  it('measures the selected cells closed-loop and paced, runs the pairs and the sink calibration, and reports each target', async () => {
    const r = await runBench([
      '--only', 'mirror-dead,mirror-unsampled,mirror-all-thr,mirror-decide', '--connections', '2', '--duration', '0.3', '--warmup', '0.2',
      '--max-tries', '1', '--cpu-rate', '200', '--rate', '300', '--pairs', '1', '--pair-duration', '0.3', '--core-rates', '250', '--cpu-rounds', '2', '--targets', '--no-pin',
      '--runner', 'src/cli.ts',
    ]);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n');
    const row = (label: string, c: string): string | undefined => lines.find((l) => l.startsWith(`| ${label} | ${c} |`));

    // The dead target's copies are skipped by the open breaker, counted from the runner's metrics.
    expect(row('proxy-mirror 1 → refused port', '2'), r.out).toMatch(/skipped target_down/);
    // Closed-loop and paced rows for each case, with the per-thread and copies columns filled.
    const thr = row('proxy-mirror 1 → sink, 2 threads', '2');
    const thrPaced = row('proxy-mirror 1 → sink, 2 threads', '2 paced 200/s');
    expect(thr).toBeDefined();
    expect(thrPaced).toBeDefined();
    for (const l of [thr!, thrPaced!]) {
      const cols = l.split('|').map((c) => c.trim());
      expect(cols[7]).toMatch(/^\d[\d.,]*$/); // RPC thread µs/RPC
      expect(cols[8]).toMatch(/^\d[\d.,]*$/); // other threads µs/RPC
      expect(cols[11]).toMatch(/^[\d,]+ \/ [\d,]+ \/ [\d,]+$/); // copies sent / sink got / dropped
    }
    expect(r.out).toMatch(/\| RPC p99, refused-port target ÷ the same route unsampled \|/);
    expect(r.out).toMatch(/\| fast \(raw net\) \| 32 × 1 \|/);
    expect(r.out).toMatch(/\| node:http \| 8 × 16 \|/);
    expect(r.out).toContain('### Issue 13 targets');
    // The dead-target and 2-thread p99 targets were measured (their pairs ran); the 1-thread pair was not selected.
    expect(lines.find((l) => l.startsWith('| RPC p99 with a dead (refused) target'))).toMatch(/\| (met|\*\*missed\*\*)[^|]*\|$/);
    expect(lines.find((l) => l.startsWith('| RPC p99 at 100 % mirroring'))).toMatch(/\| (met|\*\*missed\*\*)[^|]*\|$/);
    expect(r.out).not.toMatch(/\| RPC p99, 100 % mirroring \(1 thread\)/);
    // The closed-loop RPC-core row compares the two cells' RPC threads and says how busy each
    // was; with RPC-core pairs, the paced single cell gives way to the pairs' two rows.
    const core = lines.filter((l) => l.startsWith('| RPC throughput on the RPC core'));
    expect(core).toHaveLength(2);
    expect(core[0]).toMatch(/\(C = 2\) \| capacity 1e6 ÷ RPC-thread µs\/RPC: .* \(measured RPC\/s .*; RPC thread busy \d+\.\d% vs \d+\.\d%\)/);
    expect(core[1]).toMatch(/\(paced pairs at 250 RPC\/s\) \| median of 1 pair ratios \d+\.\d\d× \([01] quiet\); RPC thread [\d.]+ \/ [\d.]+ \/ [\d.]+ µs\/RPC .*with the ballast on core 1 \([\d.]+% for the copies' [\d.]+%\): \d+\.\d\d×.*\| (met|\*\*missed\*\*)[^|]*\|$/);
    expect(r.out).toMatch(/^\| 250 \| [\d.]+ \/ [\d.]+ \/ [\d.]+ \| \d+\.\d\d× \|/m);
    // The closed-loop CPU target is read from the CPU rounds (the paced CPU rows stay single
    // cells): one row per mirrored case selected, none for the 1-thread case left out.
    const cpuRows = lines.filter((l) => l.startsWith('| Runner CPU per mirrored request'));
    expect(cpuRows.filter((l) => l.includes('(RPC + copy, all threads, fast sink, C = 2, 2 threads)'))).toHaveLength(1);
    expect(cpuRows.find((l) => l.includes('C = 2, 2 threads'))).toMatch(/\| median of 2 interleaved rounds [\d.]+ µs \(RPC thread [\d.]+ \+ others [\d.]+; rounds [\d.]+, [\d.]+\); decision [\d.]+ µs, the copy adds -?[\d.]+, \d+\.\d\d× decision-only's; .*the matrix's cell: [\d.]+ µs; the gauge .* \| (met|\*\*missed\*\*)[^|]*\|$/);
    expect(cpuRows.some((l) => l.includes('C = 2, 1 thread)'))).toBe(false);
    expect(cpuRows.filter((l) => l.includes('C = 2 paced at 200 RPC/s'))).toHaveLength(2);
    expect(r.out).toMatch(/^CPU rounds: 2 rounds of the closed-loop cells at C = 2/m);

    // The raw numbers behind it.
    const json = /written to (\S+)\.md and \.json/.exec(r.err)?.[1];
    expect(json).toBeDefined();
    expect(json!.startsWith(path.join(dir, 'out'))).toBe(true);
    const report = JSON.parse(readFileSync(`${json!}.json`, 'utf8')) as Report;
    const dead = report.results.find((c) => c.id === 'mirror-dead' && !c.rate);
    expect(dead?.summary?.copies?.targetDown).toBeGreaterThan(0);
    expect(report.pairs.map((p) => [p.id, p.pairs.length])).toEqual([['p99-mirror-thr', 1], ['p99-dead', 1]]);
    // The 2-thread p99 pair also ran its control: decision-only beside a ballast sized from the
    // mirrored cell's worker and sink; the dead-target pair has none.
    const [thrPair, deadPair] = report.pairs;
    const ctl = thrPair!.pairs[0]!.control!;
    expect(ctl.copyCoreShare).toBeGreaterThan(0);
    expect(ctl.ballastShare).toBeGreaterThan(0);
    expect(thrPair!.control!.medianBallastP99Ratio).toBeCloseTo(ctl.p99 / thrPair!.pairs[0]!.p99[0]!, 6);
    expect(thrPair!.control!.medianP99RatioToLoaded).toBeCloseTo(thrPair!.pairs[0]!.p99[1]! / ctl.p99, 6);
    expect(deadPair!.pairs[0]!.control).toBeUndefined();
    expect(r.out).toMatch(/^Control for "RPC p99, 100 % mirroring \(2 threads\) ÷ decision only": .*A's p99 with the ballast ÷ without: \d+\.\d\d×/m);
    expect(lines.find((l) => l.startsWith('| RPC p99 at 100 % mirroring'))).toMatch(/control: decision-only beside a ballast on core 1 as busy as the worker and sink made it \d+\.\d\d× of decision-only, mirrored ÷ that \d+\.\d\d×/);
    // One RPC-core pair: the mirrored cell sent copies, and the decision-only cell beside the
    // ballast ran with a helper process using CPU (the ballast, sized from the mirrored cell).
    expect(report.corePairs.map((c) => [c.rate, c.pairs.length])).toEqual([[250, 1]]);
    const cp = report.corePairs[0]!.pairs[0]!;
    expect(cp.copies?.sent).toBeGreaterThan(0);
    expect(cp.copyCoreShare).toBeGreaterThan(0);
    expect(cp.ballastShare).toBeGreaterThan(0);
    for (const v of Object.values(cp.rpcThreadUsPerRpc)) expect(v).toBeGreaterThan(0);
    // Two rounds, the order rotated, each cell measured in each, and the floor beside them as
    // the machine's gauge.
    const rounds = report.cpuRounds!;
    expect(rounds.rounds.map((x) => x.order)).toEqual([['mirror-decide', 'mirror-all-thr', 'floor'], ['mirror-all-thr', 'floor', 'mirror-decide']]);
    for (const x of rounds.rounds) for (const id of ['mirror-decide', 'mirror-all-thr']) expect(x.cpu[id]).toBeGreaterThan(0);
    const gauge = rounds.gauge!;
    expect(gauge.id).toBe('floor');
    expect(gauge.cpu).toHaveLength(2);
    for (const us of gauge.cpu) expect(us).toBeGreaterThan(0);
    expect(rounds.cells['floor']).toBeUndefined();
    expect(rounds.cells['mirror-decide']!.medianVsGauge).toBeCloseTo(
      (rounds.rounds[0]!.cpu['mirror-decide']! / gauge.cpu[0]! + rounds.rounds[1]!.cpu['mirror-decide']! / gauge.cpu[1]!) / 2, 6);
    expect(r.out).toMatch(/^\| round \(order\) \| proxy-mirror 0\.00001 \(decision\) \| proxy-mirror 1 → sink, 2 threads \| floor \(framing only\): the gauge \|$/m);
    expect(r.out).toMatch(/^\| 2 \(2, 3, 1\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$/m);
    expect(cpuRows.find((l) => l.includes('C = 2, 2 threads'))).toMatch(/the gauge \(framing-only floor, same rounds\) [\d.]+ µs \([\d.]+–[\d.]+\), this cell \d+\.\d\d× the gauge/);
    // The RPC thread's system calls per RPC: every call is read and answered (at least one read
    // and one write per call, copies' writes on top).
    for (const x of rounds.rounds) {
      for (const id of ['mirror-decide', 'mirror-all-thr']) {
        expect(x.kernel[id]!.reads).toBeGreaterThan(0);
        expect(x.kernel[id]!.writes).toBeGreaterThan(0.9);
        expect(x.kernel[id]!.wakes).toBeGreaterThanOrEqual(0);
        expect(x.kernel[id]!.loadgenWakes).toBeGreaterThanOrEqual(0);
      }
    }
    expect(r.out).toMatch(/^The RPC thread in the kernel, per RPC:/m);
    expect(r.out).toMatch(/^\| 1 \| [\d.]+ \/ [\d.]+ \/ [\d.]+; load generator woken [\d.]+/m);
    const thrRounds = rounds.cells['mirror-all-thr']!;
    expect(thrRounds.medianCpu).toBeCloseTo((thrRounds.cpu[0]! + thrRounds.cpu[1]!) / 2, 6);
    expect(thrRounds.medianCopyAdds).toBeCloseTo(
      (rounds.rounds[0]!.cpu['mirror-all-thr']! - rounds.rounds[0]!.cpu['mirror-decide']! + rounds.rounds[1]!.cpu['mirror-all-thr']! - rounds.rounds[1]!.cpu['mirror-decide']!) / 2, 6);
    expect(report.sinkCalibration.map((c) => c.mode).sort()).toEqual(['fast', 'fast', 'http', 'http']);
    for (const c of report.sinkCalibration) expect(c.requestsPerSecond).toBeGreaterThan(0);
  }, 240_000);

  it('--busy-us puts the busy plugin first in every runner cell\'s route, and the floor goes without', async () => {
    const r = await runBench([
      '--only', 'floor,mirror-decide', '--connections', '1', '--duration', '0.3', '--warmup', '0.2', '--max-tries', '1', '--no-pin',
      '--runner', 'src/cli.ts', '--busy-us', '1000',
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("- --busy-us 1000: every runner cell's route starts with bench-busy (bench/plugins/busy.mjs), 1000 µs of CPU per call; the floor has none");
    const p50 = (label: string): number => {
      const l = r.out.split('\n').find((x) => x.startsWith(`| ${label} | 1 |`));
      expect(l, r.out).toBeDefined();
      return Number(l!.split('|')[4]!.trim().replace(/,/g, ''));
    };
    // One call in flight: none can be answered before its 1 ms of spinning is over.
    expect(p50('proxy-mirror 0.00001 (decision)')).toBeGreaterThanOrEqual(1000);
    // The floor answers without it: well under the spin.
    expect(p50('floor (framing only)')).toBeLessThan(1000);
  }, 120_000);

  it('--busy-us outside 0-1000 is refused before anything starts', async () => {
    const r = await runBench(['--only', 'floor', '--busy-us', '5000', '--no-pin']);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('--busy-us must be 0-1000, got 5000');
  }, 60_000);
});
