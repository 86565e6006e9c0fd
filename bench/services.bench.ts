/**
 * The system services as components, each against the same work done without a component in the same run:
 *  - context write / read (latest) through the memory component (embedded LMDB backend, durable writes),
 *    one operation in flight, vs the same kv operations issued directly on the KvStore from Node
 *    (write: get head + sha-256 + one batch of meta, data and head; read: get head + get-many of meta and
 *    data). The ratio is what the sandbox costs: SpiderMonkey inside wasm, bindings, the worker hop and one
 *    host-call round trip per kv/clock/digest call.
 *  - ranking a 1,000-task queue (with dependencies, deadlines, trust) through the scheduler component vs
 *    the same triple-helix code (drivers/scheduler/src/triple-helix.ts) called directly in Node.
 *  - the floor: a trivial export call (scheduler.get-weights) through the kernel.
 * Components come from the SDK build pipeline (cached in drivers/.cache).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  DEFAULT_WEIGHTS,
  type QueuedTask,
  rank,
  type Task,
  type TaskType,
} from '../drivers/scheduler/src/triple-helix.js';
import { hostInterfaces } from '../host/src/host-interfaces/index.js';
import { Kernel } from '../host/src/kernel/kernel.js';
import { type KvStore, openKv } from '../host/src/kv/index.js';
import { buildComponent } from '../sdk/src/build/index.js';
import { ROOT } from '../test/grpc/harness.js';
import { type BenchResult, round, stats } from './types.js';

const SUITE = 'services';
const MEM = 'cam:kernel/memory';
const SCHED = 'cam:kernel/scheduler';
const VALUE_BYTES = 256;
const OPS = 1500;
const ROUNDS = 3;

async function build(root: string, name: string, world: string, outDir: string) {
  // The driver's own driver.json names its entry and toolchain (memory is AssemblyScript).
  const desc = JSON.parse(readFileSync(join(root, 'drivers', name, 'driver.json'), 'utf8')) as {
    entry: string;
  };
  return buildComponent({
    entry: join(root, 'drivers', name, desc.entry),
    world,
    outDir,
    cacheDir: join(root, 'drivers', '.cache'),
    name,
  });
}

/** ops/s of each round and the latency (us) of every op, one op in flight. */
async function measure(
  n: number,
  op: (i: number) => Promise<unknown>,
): Promise<{ opsPerSec: number; latUs: number[] }> {
  const lat: number[] = new Array(n);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await op(i);
    lat[i] = (performance.now() - s) * 1000;
  }
  return { opsPerSec: n / ((performance.now() - t0) / 1000), latUs: lat };
}

async function rounds(n: number, op: (round: number, i: number) => Promise<unknown>) {
  await measure(Math.min(200, n), (i) => op(-1, i)); // warm-up
  const rates: number[] = [];
  const lat: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const m = await measure(n, (i) => op(r, i));
    rates.push(m.opsPerSec);
    for (const x of m.latUs) lat.push(x);
  }
  const l = stats(lat);
  return { opsPerSec: stats(rates).median, latMedian: l.median, latP99: l.p99 };
}

function queue(n: number, nowMs: number): QueuedTask[] {
  const types: TaskType[] = ['analysis', 'arbitration', 'routing', 'memory', 'collaboration'];
  const out: QueuedTask[] = [];
  for (let i = 0; i < n; i++) {
    const task: Task = {
      id: `task-${i}`,
      description: `queued task number ${i}`,
      requirements: ['gpu'],
      metadata: i % 5 === 0 ? [['cam.efficiency', '0.8']] : [],
      priority: (i * 37) % 101,
      deadline: i % 3 === 0 ? BigInt(Math.floor(nowMs / 1000) + (i % 48) * 1800) : undefined,
      taskType: types[i % types.length]!,
      agentId: `agent-${i % 17}`,
      dependsOn: i % 7 === 3 ? [`task-${i - 3}`] : [],
      tpmIdentity: undefined,
    };
    out.push({ task, enqueuedAtMs: BigInt(nowMs - (n - i)), trust: (i % 10) / 10 });
  }
  return out;
}

export async function run(): Promise<BenchResult[]> {
  const root = ROOT;
  const dir = mkdtempSync(join(tmpdir(), 'cam-bench-services-'));
  const results: BenchResult[] = [];
  let kv: KvStore | undefined;
  let kernel: Kernel | undefined;
  try {
    const mem = await build(root, 'memory', 'memory-component', join(dir, 'out'));
    const sched = await build(root, 'scheduler', 'scheduler-component', join(dir, 'out'));
    kv = await openKv({ backend: 'embedded', path: join(dir, 'kv') });
    kernel = new Kernel({ dataDir: join(dir, 'kernel') });
    for (const iface of hostInterfaces({ kv, log: { sink: () => {} } })) kernel.provide(iface);
    await kernel.load({
      name: 'memory',
      bytes: await readFile(mem.wasmPath),
      imports: mem.imports,
      memoryMaxPages: 2048,
    });
    await kernel.load({
      name: 'scheduler',
      bytes: await readFile(sched.wasmPath),
      imports: sched.imports,
      memoryMaxPages: 2048,
    });
    const k = kernel;
    const store = kv;

    // ---- context write
    const value = new Uint8Array(VALUE_BYTES).fill(42);
    const viaMem = await rounds(OPS, (r, i) =>
      k.call('memory', MEM, 'write', [
        'bench',
        `key-${r}-${i % 100}`,
        value,
        [['description', 'bench']],
        'bench',
      ]),
    );
    const enc = new TextEncoder();
    const direct = await rounds(OPS, async (r, i) => {
      const key = `key-${r}-${i % 100}`;
      const p = 'direct/ns/bench';
      const headRaw = await store.get(p, `h\0${key}`);
      const head = headRaw ? JSON.parse(Buffer.from(headRaw).toString()) : { n: 0 };
      const v = head.n + 1;
      const hash = createHash('sha256').update(value).digest('hex');
      const meta = {
        v,
        t: Date.now(),
        a: 'bench',
        h: hash,
        s: value.length,
        m: [['description', 'bench']],
        dv: v,
      };
      const vk = v.toString(16).padStart(16, '0');
      await store.batch(p, [
        { op: 'put', key: `m\0${key}\0${vk}`, value: enc.encode(JSON.stringify(meta)) },
        { op: 'put', key: `d\0${key}\0${vk}`, value },
        { op: 'put', key: `h\0${key}`, value: enc.encode(JSON.stringify({ n: v, o: 1, l: v, ld: v })) },
      ]);
    });
    results.push({
      suite: SUITE,
      name: 'context write via memory component (durable, 1 in flight)',
      unit: 'ops/s',
      median: round(viaMem.opsPerSec, 0),
      p99: round(viaMem.latP99, 0),
      baseline: { name: 'same kv ops directly on the KvStore', median: round(direct.opsPerSec, 0) },
      notes: `p99 in us (median ${round(viaMem.latMedian, 0)} us; direct median ${round(direct.latMedian, 0)} us, p99 ${round(direct.latP99, 0)} us); ${VALUE_BYTES}-byte values`,
    });

    // ---- context read (latest)
    const readMem = await rounds(OPS, (_r, i) =>
      k.call('memory', MEM, 'read', ['bench', `key-0-${i % 100}`, undefined]),
    );
    const readDirect = await rounds(OPS, async (_r, i) => {
      const key = `key-0-${i % 100}`;
      const p = 'direct/ns/bench';
      const head = JSON.parse(Buffer.from((await store.get(p, `h\0${key}`))!).toString()) as {
        l: number;
        ld: number;
      };
      const vk = (x: number) => x.toString(16).padStart(16, '0');
      const [m] = await store.getMany(p, [`m\0${key}\0${vk(head.l)}`, `d\0${key}\0${vk(head.ld)}`]);
      JSON.parse(Buffer.from(m!).toString());
    });
    results.push({
      suite: SUITE,
      name: 'context read (latest) via memory component',
      unit: 'ops/s',
      median: round(readMem.opsPerSec, 0),
      p99: round(readMem.latP99, 0),
      baseline: { name: 'same kv reads directly on the KvStore', median: round(readDirect.opsPerSec, 0) },
      notes: `p99 in us (median ${round(readMem.latMedian, 0)} us; direct median ${round(readDirect.latMedian, 1)} us, p99 ${round(readDirect.latP99, 1)} us)`,
    });

    // ---- scheduler: 1,000-task ranking
    const nowMs = Date.now();
    const q = queue(1000, nowMs);
    const rankVia = await rounds(30, () => k.call('scheduler', SCHED, 'rank', [q, []]));
    const rankDirect = await rounds(30, async () => rank(q, [], { weights: DEFAULT_WEIGHTS, nowMs }));
    results.push({
      suite: SUITE,
      name: 'rank 1,000 tasks via scheduler component',
      unit: 'ms',
      median: round(rankVia.latMedian / 1000, 2),
      p99: round(rankVia.latP99 / 1000, 2),
      baseline: {
        name: 'same triple-helix code directly in Node',
        median: round(rankDirect.latMedian / 1000, 3),
      },
      notes: `direct p99 ${round(rankDirect.latP99 / 1000, 3)} ms; queue has dependencies, deadlines, trust and hints`,
    });

    // ---- floor: a trivial export
    const floor = await rounds(2000, () => k.call('scheduler', SCHED, 'get-weights', []));
    results.push({
      suite: SUITE,
      name: 'trivial component call (scheduler.get-weights)',
      unit: 'us',
      median: round(floor.latMedian, 1),
      p99: round(floor.latP99, 1),
      notes:
        'the per-call floor of any service call through the kernel (worker hop + bindings + interpreter)',
    });
  } finally {
    await kernel?.stop();
    await kv?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
