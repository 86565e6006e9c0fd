/**
 * Hot-swap cost under load: a kernel booted like `cam-os up` serves a steady mixed gRPC load (context
 * writes/reads over four namespaces, arbitrations) first with no swap (the baseline), then while the memory
 * service is swapped 20 times between two signed builds. Per-call latencies are split by whether the call
 * overlapped a swap; the pause is the kernel's own `pausedMs` (time new calls were held at the gate).
 */
import { performance } from 'node:perf_hooks';
import type { SwapRecord } from '../host/src/kernel/kernel.js';
import { type CallSample, startLoad } from '../test/system/load.js';
import { bootSystemKernel, memoryBuilds, systemMissing } from '../test/system/system-kernel.js';
import { type BenchResult, round, stats } from './types.js';

const SWAPS = 20;
const STEADY_CALLS = 3000;

export async function run(): Promise<BenchResult[]> {
  const missing = systemMissing();
  if (missing) throw new Error(missing);
  const sys = await bootSystemKernel();
  try {
    const m = await memoryBuilds();
    const builds = await Promise.all(
      Array.from({ length: SWAPS }, (_, i) => m.sign(i % 2 === 0 ? m.b : m.a, `0.3.${i + 1}`)),
    );
    const load = await startLoad(sys.client, { tag: 'bench' });
    await load.progress(500); // warm-up, not measured
    const steadyFrom = performance.now();
    await load.progress(STEADY_CALLS);
    const steadyTo = performance.now();
    const windows: Array<[number, number]> = [];
    const records: SwapRecord[] = [];
    for (const b of builds) {
      const s = performance.now();
      records.push(await sys.booted.loader.swap('memory', b.bytes, b.manifestJson));
      windows.push([s, performance.now()]);
      await load.progress(100);
    }
    const swapTo = performance.now();
    const result = await load.stop();

    const ms = (s: CallSample) => s.end - s.start;
    const steady = result.samples.filter((s) => s.start >= steadyFrom && s.end <= steadyTo);
    const swapPhase = result.samples.filter((s) => s.start >= windows[0]![0] && s.end <= swapTo);
    const overlapping = swapPhase.filter((s) => windows.some(([a, b]) => s.start < b && s.end > a));
    const memoryCalls = (xs: CallSample[]) => xs.filter((s) => s.method !== 'Arbitrate');
    const st = stats(steady.map(ms));
    const sw = stats(swapPhase.map(ms));
    const ov = stats(overlapping.map(ms));
    const worst = Math.max(...memoryCalls(overlapping).map(ms));
    const paused = stats(records.map((r) => r.pausedMs ?? 0));
    const swapDur = stats(windows.map(([a, b]) => b - a));
    const failures = result.failures.length
      ? `; ${result.failures.length} FAILED calls: ${result.failures.slice(0, 3).join(' | ')}`
      : '; 0 failed calls';
    const suite = 'swap';
    return [
      {
        suite,
        name: 'call latency, steady state (no swap)',
        unit: 'ms',
        median: round(st.median),
        p99: round(st.p99),
        notes: `${steady.length} calls (writes, reads, arbitrations; 6 concurrent loops)`,
      },
      {
        suite,
        name: 'call latency, swap phase (20 swaps)',
        unit: 'ms',
        median: round(sw.median),
        p99: round(sw.p99),
        baseline: { name: 'steady state', median: round(st.median) },
        notes: `${swapPhase.length} calls; p99 without swaps ${round(st.p99)} ms${failures}`,
      },
      {
        suite,
        name: 'call latency, calls overlapping a swap',
        unit: 'ms',
        median: round(ov.median),
        p99: round(ov.p99),
        baseline: { name: 'steady state', median: round(st.median) },
        notes: `${overlapping.length} calls`,
      },
      {
        suite,
        name: 'worst added latency of a memory call during a swap',
        unit: 'ms',
        median: round(worst - st.median),
        baseline: { name: 'steady-state median', median: round(st.median) },
        notes: `worst memory call overlapping a swap took ${round(worst)} ms`,
      },
      {
        suite,
        name: 'swap pause (pausedMs, calls held at the gate)',
        unit: 'ms',
        median: round(paused.median),
        p99: round(Math.max(...records.map((r) => r.pausedMs ?? 0))),
        notes: `p99 column = max of ${records.length} swaps; whole swap (verify+load+init+switch) median ${round(swapDur.median)} ms, max ${round(swapDur.p99)} ms`,
      },
    ];
  } finally {
    await sys.stop();
  }
}
