/**
 * The memory component (AssemblyScript, compiled) against the SDK's memory template (TypeScript run by
 * componentize-js, the same `cam:kernel/memory` interface), both loaded into one kernel in the same run:
 *  - read of the latest version (64 B and 4 KiB values), write (64 B), write-many (1,000 x 1 KiB) through
 *    `kernel.call` (worker hop, bindings, guest, kv host calls; embedded LMDB, durable writes), one call in
 *    flight (latency) and 16 in flight (time per call = elapsed / calls);
 *  - the guest's own cost: the same component instantiated in this thread through the same jco bindings,
 *    its imports served from an in-memory map, so no worker hop and no storage are measured; and the same
 *    again with the core modules instrumented for interruption, as a query replica runs them;
 *  - read as a query, answered by the query replica on the kernel thread (host/src/runtime/replica.ts),
 *    against the same read through the component's worker, in the same kernel.
 * Components come from the SDK build pipeline (cached in drivers/.cache).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { hostInterfaces } from '../host/src/host-interfaces/index.js';
import { Kernel } from '../host/src/kernel/kernel.js';
import { type KvStore, openKv } from '../host/src/kv/index.js';
import { Interrupter, instrument } from '../host/src/runtime/interrupt.js';
import { buildComponent } from '../sdk/src/build/index.js';
import { ROOT } from '../test/grpc/harness.js';
import { type BenchResult, round, stats } from './types.js';

const SUITE = 'memory';
const MEM = 'cam:kernel/memory';
const ROUNDS = 5;
const CONCURRENCY = 16;

/** Latency (us) of each call, one in flight, over ROUNDS rounds after a warm-up. */
async function sequential(n: number, op: (i: number) => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < Math.min(n, 200); i++) await op(i);
  const lat: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await op(i);
      lat.push((performance.now() - t) * 1000);
    }
  }
  return lat;
}

/** Microseconds per call with `c` calls in flight (elapsed / calls), median over ROUNDS rounds. */
async function concurrent(n: number, c: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const per: number[] = [];
  for (let r = -1; r < ROUNDS; r++) {
    let next = 0;
    const t = performance.now();
    await Promise.all(
      Array.from({ length: c }, async () => {
        for (let i = next++; i < n; i = next++) await op(i);
      }),
    );
    if (r >= 0) per.push(((performance.now() - t) * 1000) / n);
  }
  return stats(per).median;
}

type Exports = Record<string, Record<string, (...args: unknown[]) => unknown>>;

/**
 * The component in this thread, through its jco bindings, with kv/log/clock/digest served from memory.
 * `interrupt`: its core modules instrumented with interrupt checks and linked to the watchdog's check.
 */
async function inProcess(kernel: Kernel, bytes: Uint8Array, interrupt?: Interrupter): Promise<Exports> {
  const t = await kernel.transpiler.get(bytes);
  const modules = new Map<string, WebAssembly.Module>();
  for (const [k, v] of t.coreModules) {
    const code = interrupt ? await instrument(v) : v;
    modules.set(k, new WebAssembly.Module(code as Uint8Array<ArrayBuffer>));
  }
  const store = new Map<string, Map<string, Uint8Array>>();
  const part = (p: string) => {
    let m = store.get(p);
    if (!m) {
      m = new Map();
      store.set(p, m);
    }
    return m;
  };
  let now = 1_800_000_000_000n;
  const imports = {
    'cam:kernel/kv': {
      get: (p: string, k: string) => part(p).get(k),
      getMany: (p: string, ks: string[]) => ks.map((k) => part(p).get(k)),
      batch: (p: string, ops: Array<{ tag: string; val: { key: string; value: Uint8Array } | string }>) => {
        const m = part(p);
        for (const op of ops) {
          if (op.tag === 'put') {
            const v = op.val as { key: string; value: Uint8Array };
            m.set(v.key, v.value.slice());
          } else m.delete(op.val as string);
        }
      },
      scan: (p: string, prefix: string, after: string | undefined, limit: number, reverse: boolean) => {
        const keys = [...part(p).keys()].filter((k) => k.startsWith(prefix)).sort();
        if (reverse) keys.reverse();
        const from = after === undefined ? keys : keys.filter((k) => (reverse ? k < after : k > after));
        return from.slice(0, limit).map((key) => ({ key, value: part(p).get(key)! }));
      },
    },
    'cam:kernel/log': { log: () => {} },
    'cam:kernel/clock': { nowMs: () => now++ },
    'cam:kernel/digest': {
      sha256: (data: Uint8Array) => new Uint8Array(createHash('sha256').update(data).digest()),
    },
  };
  const mod = (await import(pathToFileURL(t.jsPath).href)) as {
    instantiate: (
      get: (n: string) => WebAssembly.Module,
      imports: unknown,
      inst: (m: WebAssembly.Module, i?: WebAssembly.Imports) => WebAssembly.Instance,
    ) => Promise<Exports>;
  };
  return mod.instantiate(
    (n) => modules.get(n)!,
    imports,
    (m, i) => new WebAssembly.Instance(m, interrupt ? { ...i, ...interrupt.imports() } : i),
  );
}

/**
 * Microseconds per synchronous call: median of 9 rounds of ~50 ms each (at least 3 calls a round), after
 * 300 ms of warm-up (V8 compiles wasm with its baseline compiler first and optimizes it in the background).
 */
function perCallUs(f: (i: number) => unknown): number {
  let i = 0;
  let t0 = performance.now();
  while (performance.now() - t0 < 300) f(i++);
  const warm = i;
  t0 = performance.now();
  do f(i++);
  while (performance.now() - t0 < 50);
  const n = Math.max(3, i - warm);
  const per: number[] = [];
  for (let r = 0; r < 9; r++) {
    const t = performance.now();
    for (let j = 0; j < n; j++) f(i++);
    per.push(((performance.now() - t) * 1000) / n);
  }
  return stats(per).median;
}

export async function run(): Promise<BenchResult[]> {
  const root = ROOT;
  const dir = mkdtempSync(join(tmpdir(), 'cam-bench-memory-'));
  const results: BenchResult[] = [];
  let kv: KvStore | undefined;
  let kernel: Kernel | undefined;
  try {
    const desc = JSON.parse(readFileSync(join(root, 'drivers', 'memory', 'driver.json'), 'utf8')) as {
      entry: string;
      world: string;
    };
    const cacheDir = join(root, 'drivers', '.cache');
    const as = await buildComponent({
      entry: join(root, 'drivers', 'memory', desc.entry),
      world: desc.world,
      outDir: join(dir, 'out'),
      cacheDir,
      name: 'memory',
    });
    const tpl = await buildComponent({
      entry: join(root, 'sdk', 'templates', 'memory', 'src', 'index.ts'),
      world: 'memory-component',
      outDir: join(dir, 'out'),
      cacheDir,
      name: 'memory-template',
    });
    kv = await openKv({ backend: 'embedded', path: join(dir, 'kv') });
    kernel = new Kernel({ dataDir: join(dir, 'kernel') });
    for (const iface of hostInterfaces({ kv, log: { sink: () => {} } })) kernel.provide(iface);
    const small = new Uint8Array(64).fill(97);
    const page = new Uint8Array(4096).fill(98);
    const kib = new Uint8Array(1024).fill(99);
    // The guest's own cost, in this thread, measured first: later phases leave the process's heap larger.
    const guests = new Map<string, Exports>();
    const interrupter = await Interrupter.get();
    for (const { name, built } of [
      { name: 'memory', built: as },
      { name: 'memory-template', built: tpl },
    ])
      guests.set(name, await inProcess(kernel, await readFile(built.wasmPath)));
    guests.set('memory-interruptible', await inProcess(kernel, await readFile(as.wasmPath), interrupter));
    const guestUs = new Map<string, number>();
    for (const name of ['memory', 'memory-template', 'memory-interruptible']) {
      const m = guests.get(name)![`${MEM}@0.1.0`]!;
      m.write!('bench', 'read-64', small, [], 'bench');
      m.write!('bench', 'read-4k', page, [], 'bench');
      guestUs.set(
        `${name} read 64 B`,
        perCallUs(() => m.read!('bench', 'read-64', undefined)),
      );
      guestUs.set(
        `${name} read 4 KiB`,
        perCallUs(() => m.read!('bench', 'read-4k', undefined)),
      );
      guestUs.set(
        `${name} write 64 B`,
        perCallUs((i) => m.write!('bench', `w-${i % 100}`, small, [], 'bench')),
      );
      const requests = Array.from({ length: 1000 }, (_, j) => ({
        namespace: 'bench-many',
        key: `k-${j}`,
        data: kib,
        metadata: [] as Array<[string, string]>,
        author: 'bench',
      }));
      guestUs.set(
        `${name} write-many`,
        perCallUs(() => m.writeMany!(requests)),
      );
    }

    const builds = [
      { name: 'memory', built: as },
      { name: 'memory-template', built: tpl },
    ];
    for (const { name, built } of builds) {
      await kernel.load({
        name,
        bytes: await readFile(built.wasmPath),
        imports: built.imports,
        memoryMaxPages: 2048,
        concurrency: 1,
        // The template's write-many stores 1,000 writes one durable kv batch each: seconds.
        deadlineMs: 300_000,
      });
    }
    const k = kernel;
    const BASE = 'SDK memory template (componentize-js)';
    const asLabel = `AssemblyScript memory component, ${(as.size / 1024).toFixed(0)} KiB`;

    type Figures = { seq: number[]; conc: number; guest?: number };
    const figures = new Map<string, Figures>();
    const record = (key: string, f: Figures) => figures.set(key, f);

    // Reads as queries: the replica on the kernel thread (built after the last write), then the same reads
    // through the worker in the same kernel. Measured before the template's runs below grow the heap.
    await k.call('memory', MEM, 'write', ['bench', 'read-64', small, [], 'bench']);
    await k.call('memory', MEM, 'write', ['bench', 'read-4k', page, [], 'bench']);
    const query = (key: string) => () =>
      k.call('memory', MEM, 'read', ['bench', key, undefined], { query: true });
    // A query starts a build when the replica is stale (builds are spaced a little): keep asking until ready.
    for (let i = 0; k.info('memory').status.replica.state !== 'ready'; i++) {
      await query('read-64')();
      if (i > 5_000)
        throw new Error(
          `the memory replica did not start: ${JSON.stringify(k.info('memory').status.replica)}`,
        );
      await new Promise((r) => setTimeout(r, 2));
    }
    const answeredBefore = k.info('memory').status.replica.calls;
    for (const [label, key] of [
      ['read 64 B', 'read-64'],
      ['read 4 KiB', 'read-4k'],
    ] as const) {
      record(`memory ${label} query`, {
        seq: await sequential(1000, query(key)),
        conc: await concurrent(5000, CONCURRENCY, query(key)),
      });
    }
    const replica = k.info('memory').status.replica;
    if (replica.fallbacks > 0 || replica.calls - answeredBefore < 2 * 6 * 1000) {
      throw new Error(`the replica did not answer every query: ${JSON.stringify(replica)}`);
    }

    for (const { name } of builds) {
      await k.call(name, MEM, 'write', ['bench', 'read-64', small, [], 'bench']);
      await k.call(name, MEM, 'write', ['bench', 'read-4k', page, [], 'bench']);
      for (const [label, key] of [
        ['read 64 B', 'read-64'],
        ['read 4 KiB', 'read-4k'],
      ] as const) {
        const op = () => k.call(name, MEM, 'read', ['bench', key, undefined]);
        record(`${name} ${label}`, {
          seq: await sequential(1000, op),
          conc: await concurrent(5000, CONCURRENCY, op),
        });
      }
      const write = (i: number) => k.call(name, MEM, 'write', ['bench', `w-${i % 100}`, small, [], 'bench']);
      record(`${name} write 64 B`, {
        seq: await sequential(300, write),
        conc: await concurrent(1000, CONCURRENCY, write),
      });
      const requests = Array.from({ length: 1000 }, (_, j) => ({
        namespace: 'bench-many',
        key: `k-${j}`,
        data: kib,
        metadata: [] as Array<[string, string]>,
        author: 'bench',
      }));
      const many = () => k.call(name, MEM, 'write-many', [requests]);
      const lat: number[] = [];
      await many();
      for (let r = 0; r < 3; r++) {
        const t = performance.now();
        await many();
        lat.push((performance.now() - t) * 1000);
      }
      record(`${name} write-many`, { seq: lat, conc: Number.NaN });
    }
    for (const label of ['read 64 B', 'read 4 KiB', 'write 64 B']) {
      const a = figures.get(`memory ${label}`)!;
      const b = figures.get(`memory-template ${label}`)!;
      const sa = stats(a.seq);
      const sb = stats(b.seq);
      results.push({
        suite: SUITE,
        name: `${label} via kernel.call, ${CONCURRENCY} in flight`,
        unit: 'us/call',
        median: round(a.conc, 1),
        baseline: { name: BASE, median: round(b.conc, 1) },
        ...(label.startsWith('read') && { target: '< 20 us', met: a.conc < 20 }),
        notes: `${asLabel}; time per call = elapsed / calls, median of ${ROUNDS} rounds`,
      });
      results.push({
        suite: SUITE,
        name: `${label} via kernel.call, 1 in flight`,
        unit: 'us',
        median: round(sa.median, 1),
        p99: round(sa.p99, 1),
        baseline: { name: BASE, median: round(sb.median, 1) },
        notes: `latency per call; baseline p99 ${round(sb.p99, 1)} us`,
      });
      results.push({
        suite: SUITE,
        name: `${label}: guest + bindings, in process`,
        unit: 'us/call',
        median: round(guestUs.get(`memory ${label}`)!, 2),
        baseline: { name: BASE, median: round(guestUs.get(`memory-template ${label}`)!, 2) },
        notes: 'jco bindings + guest code, imports served from an in-memory map in the same thread',
      });
    }
    for (const label of ['read 64 B', 'read 4 KiB']) {
      const q = figures.get(`memory ${label} query`)!;
      const w = figures.get(`memory ${label}`)!;
      const sq = stats(q.seq);
      const sw = stats(w.seq);
      const WORKER = `the same read through the component's worker`;
      results.push({
        suite: SUITE,
        name: `${label} as a query (replica on the kernel thread), 1 in flight`,
        unit: 'us',
        median: round(sq.median, 1),
        p99: round(sq.p99, 1),
        baseline: { name: WORKER, median: round(sw.median, 1) },
        notes: `kernel.call(..., { query: true }); worker p99 ${round(sw.p99, 1)} us`,
      });
      results.push({
        suite: SUITE,
        name: `${label} as a query (replica on the kernel thread), ${CONCURRENCY} in flight`,
        unit: 'us/call',
        median: round(q.conc, 1),
        baseline: { name: WORKER, median: round(w.conc, 1) },
        notes: 'time per call = elapsed / calls',
      });
      results.push({
        suite: SUITE,
        name: `${label}: guest + bindings, in process, instrumented for interruption`,
        unit: 'us/call',
        median: round(guestUs.get(`memory-interruptible ${label}`)!, 2),
        baseline: { name: 'the same, not instrumented', median: round(guestUs.get(`memory ${label}`)!, 2) },
        notes: 'a check at every function entry, loop header and return (host/src/runtime/interrupt.ts)',
      });
    }
    results.push({
      suite: SUITE,
      name: 'write-many 1,000 x 1 KiB: guest + bindings, in process, instrumented for interruption',
      unit: 'ms/call',
      median: round(guestUs.get('memory-interruptible write-many')! / 1000, 3),
      baseline: {
        name: 'the same, not instrumented',
        median: round(guestUs.get('memory write-many')! / 1000, 3),
      },
      notes: 'the loop-heaviest call: what the checks cost where they run most',
    });
    const wa = stats(figures.get('memory write-many')!.seq);
    const wb = stats(figures.get('memory-template write-many')!.seq);
    results.push({
      suite: SUITE,
      name: 'write-many 1,000 x 1 KiB via kernel.call',
      unit: 'ms/call',
      median: round(wa.median / 1000, 2),
      p99: round(wa.p99 / 1000, 2),
      baseline: { name: BASE, median: round(wb.median / 1000, 2) },
      notes:
        'one namespace, durable: the component stores it in one kv batch, the template in one batch per write',
    });
    results.push({
      suite: SUITE,
      name: 'write-many 1,000 x 1 KiB: guest + bindings, in process',
      unit: 'ms/call',
      median: round(guestUs.get('memory write-many')! / 1000, 3),
      baseline: { name: BASE, median: round(guestUs.get('memory-template write-many')! / 1000, 3) },
      notes: 'jco bindings + guest code, imports served from an in-memory map in the same thread',
    });
  } finally {
    await kernel?.stop();
    await Interrupter.shutdown();
    await kv?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
