/**
 * What observability costs per syscall (issue 9): the same syscall dispatched through a Dispatcher with
 * nothing attached (the baseline) vs with the Prometheus exporter only (one histogram observe per call) vs
 * with the whole pipeline (metrics, live rates, failed-call logs, OpenTelemetry spans for dispatch and the
 * component call), and that pipeline with traces sampled out (traceSampleRatio 0). Two syscalls: an in-kernel no-op (the overhead in isolation) and one that calls a real
 * worker-isolated WAT component (what a syscall that reaches a component pays). Configurations are
 * interleaved round by round so machine noise hits them alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CallContext, Dispatcher } from '../host/src/dispatcher/dispatcher.js';
import { Kernel } from '../host/src/kernel/kernel.js';
import { Observability } from '../host/src/observability/index.js';
import { Metrics } from '../host/src/observability/metrics.js';
import { buildFixture } from '../host/src/testing/fixtures.js';
import { type BenchResult, round, stats } from './types.js';

const SUITE = 'observability';
const CALC = 'test:fixtures/calc@0.1.0';
const LOG = 'test:fixtures/log@0.1.0';

type Setup = { name: string; dispatcher: Dispatcher };
type Call = Kernel['call'];

/**
 * One kernel (one worker: several would spin against each other on a small machine). The bare and
 * metrics dispatchers call it through its original `call`; the full pipeline instruments `kernel.call`
 * itself, as boot() does.
 */
function setups(kernel: Kernel): Setup[] {
  const raw: Call = kernel.call.bind(kernel);
  const make = (label: string, call: () => Call, attach: (d: Dispatcher) => void): Setup => {
    const dispatcher = new Dispatcher();
    for (const name of ['Noop', 'Component'] as const) {
      dispatcher.register<unknown, unknown>({
        name,
        group: 'observability',
        summary: 'bench',
        validate: (r) => r,
        handle: name === 'Noop' ? async () => ({}) : () => call()('calc', CALC, 'add', [1, 2]),
      });
    }
    attach(dispatcher);
    return { name: label, dispatcher };
  };
  return [
    make(
      'bare',
      () => raw,
      () => {},
    ),
    make(
      'metrics',
      () => raw,
      (d) => {
        new Metrics({ dispatcher: d, kernel });
      },
    ),
    make(
      'full',
      () => kernel.call,
      (d) => {
        new Observability({ dispatcher: d, kernel }, { log: () => {} });
      },
    ),
    make(
      'unsampled',
      () => kernel.call,
      (d) => {
        new Observability({ dispatcher: d, kernel }, { log: () => {}, traceSampleRatio: 0 });
      },
    ),
  ];
}

const WHAT: Record<string, [string, number | { Noop: number; Component: number }]> = {
  metrics: ['the Prometheus exporter', 2],
  unsampled: ['the full pipeline, traces sampled out (traceSampleRatio 0)', 3],
  full: [
    'metrics + live rates + logs + OpenTelemetry spans (every call traced)',
    { Noop: 15, Component: 25 },
  ],
};

/** us per call: `n` sequential awaited calls, per round; median and p99 over rounds. */
async function perCall(s: Setup, syscall: string, n: number): Promise<number> {
  const ctx = (): CallContext => ({ callerId: 'bench', deadlineAt: Date.now() + 10_000 });
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await s.dispatcher.dispatch(syscall, {}, ctx());
  return Number(process.hrtime.bigint() - t) / 1000 / n;
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cam-bench-obs-'));
  const kernel = new Kernel({ dataDir: join(dir, 'kernel') });
  try {
    kernel.provide({ name: LOG, functions: { log: () => {} } });
    await kernel.load({ name: 'calc', bytes: await buildFixture('calc'), imports: [LOG] });
    const all = setups(kernel);

    const byName = new Map(all.map((s) => [s.name, s]));
    const out: BenchResult[] = [];
    const rounds = 15;
    // Phase 1 never enters an AsyncLocalStorage context; phase 2 (recorded traces) does, which turns on
    // promise hooks for the whole process, so it gets its own baseline measured after that.
    const phases = [
      { setups: ['bare', 'metrics', 'unsampled'], baseline: 'no observability' },
      { setups: ['bare', 'full'], baseline: 'no observability, measured after tracing began' },
    ];
    for (const [syscall, n] of [
      ['Noop', 20_000],
      ['Component', 3_000],
    ] as const) {
      const label = syscall === 'Noop' ? 'in-kernel no-op syscall' : 'syscall calling a WAT component';
      for (const phase of phases) {
        const list = phase.setups.map((name) => byName.get(name)!);
        const samples = new Map<string, number[]>(list.map((s) => [s.name, []]));
        for (const s of list) await perCall(s, syscall, n / 4); // warm-up (JIT, workers)
        for (let r = 0; r < rounds; r++) {
          for (const s of list) samples.get(s.name)!.push(await perCall(s, syscall, n));
        }
        const bare = stats(samples.get('bare')!);
        out.push({
          suite: SUITE,
          name: `${label}: ${phase.baseline}`,
          unit: 'us/call',
          median: round(bare.median),
          p99: round(bare.p99),
          notes: `${rounds} rounds of ${n} sequential calls`,
        });
        for (const name of phase.setups.slice(1)) {
          const [what, target] = WHAT[name]!;
          const st = stats(samples.get(name)!);
          const added = st.median - bare.median;
          const limit = typeof target === 'number' ? target : target[syscall];
          out.push({
            suite: SUITE,
            name: `${label}: with ${what}`,
            unit: 'us/call',
            median: round(st.median),
            p99: round(st.p99),
            baseline: { name: phase.baseline, median: round(bare.median) },
            target: `adds <= ${limit} us/call`,
            met: added <= limit,
            notes: `adds ${round(added)} us/call (${round((st.median / bare.median - 1) * 100, 1)}%)`,
          });
        }
      }
    }
    return out;
  } finally {
    await kernel.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
