/**
 * Kernel core benchmarks (issue 2). Every figure has a baseline measured in the same run:
 *  - binding overhead: patched jco bindings vs jco's default bindings vs the raw core export;
 *  - the kernel's full call path to a worker-isolated component vs a plain worker postMessage round trip;
 *  - warm instantiation (WAT and componentize-js), cold load from the transpile cache vs a cache miss;
 *  - RSS per loaded component; runaway stop latency and other components' p99 meanwhile;
 *  - 1,000 injected crashes in a row.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { transpileBytes } from '@bytecodealliance/jco-transpile';
import { Kernel } from '../host/src/kernel/kernel.js';
import { buildFixture, fixtureCoreModule } from '../host/src/testing/fixtures.js';
import { buildJsCalc } from '../host/src/testing/js-fixture.js';
import { type BenchResult, round, stats } from './types.js';

const SUITE = 'kernel';
const CALC = 'test:fixtures/calc@0.1.0';
const CHAOS = 'test:fixtures/chaos@0.1.0';
const LOG = 'test:fixtures/log@0.1.0';

type Calc = { add(a: number, b: number): number; echo(s: string): string; sum(xs: number[]): bigint };

/** ns per call of f, median over rounds of n calls. */
function perCallNs(f: (i: number) => unknown, n: number, rounds = 15): { median: number; p99: number } {
  for (let i = 0; i < n; i++) f(i); // warm up (JIT)
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f(i);
    per.push(Number(process.hrtime.bigint() - t) / n);
  }
  const s = stats(per);
  return { median: s.median, p99: s.p99 };
}

async function importTranspiled(dir: string, name: string, js: string): Promise<{ instantiate: Function }> {
  const file = join(dir, `${name}.mjs`);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(file, js);
  return import(pathToFileURL(file).href);
}

async function bindingOverhead(kernel: Kernel, dir: string): Promise<BenchResult[]> {
  const bytes = await buildFixture('calc');
  const t = await kernel.transpiler.get(bytes);
  const modules = new Map(
    [...t.coreModules].map(([k, v]) => [k, new WebAssembly.Module(v as Uint8Array<ArrayBuffer>)]),
  );
  const imports = { 'test:fixtures/log': { log: () => {} } };
  const sync = (m: WebAssembly.Module, i?: WebAssembly.Imports) => new WebAssembly.Instance(m, i);
  const patched = (await import(pathToFileURL(t.jsPath).href)) as { instantiate: Function };
  const pInst = (await patched.instantiate((n: string) => modules.get(n), imports, sync))[CALC] as Calc;
  // jco's default output for the same component, unpatched, as shipped.
  const raw = await transpileBytes(bytes, {
    name: 'component',
    instantiation: 'async',
    wasiShim: false,
    emitTypescriptDeclarations: false,
  });
  const dflt = await importTranspiled(dir, 'default', Buffer.from(raw.files['component.js']!).toString());
  const dInst = (await dflt.instantiate((n: string) => modules.get(n), imports, sync))[CALC] as Calc;
  // The raw core export, no component model at all.
  const core = new WebAssembly.Instance(
    new WebAssembly.Module((await fixtureCoreModule('calc')) as Uint8Array<ArrayBuffer>),
    {
      'test:fixtures/log@0.1.0': { log: () => {} },
    },
  );
  const rawAdd = core.exports[`${CALC}#add`] as (a: number, b: number) => number;
  const rawEcho = core.exports[`${CALC}#echo`] as (p: number, n: number) => number;
  const rawPostEcho = core.exports[`cabi_post_${CALC}#echo`] as (p: number) => void;
  const rawSum = core.exports[`${CALC}#sum`] as (p: number, n: number) => bigint;
  const realloc = core.exports.cabi_realloc as (a: number, b: number, c: number, d: number) => number;
  const mem = core.exports.memory as WebAssembly.Memory;
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const text = 'hello, component world';
  const list = Array.from({ length: 16 }, (_, i) => i);

  const rawAddNs = perCallNs((i) => rawAdd(i, 1), 2_000_000);
  const patchedAdd = perCallNs((i) => pInst.add(i, 1), 300_000);
  const defaultAdd = perCallNs((i) => dInst.add(i, 1), 100_000);
  // Raw string baseline: what a minimal hand-written binding must do (encode, call, decode).
  const rawEchoNs = perCallNs(() => {
    const bytesIn = enc.encode(text);
    const p = realloc(0, 0, 1, bytesIn.length);
    new Uint8Array(mem.buffer, p, bytesIn.length).set(bytesIn);
    const ret = rawEcho(p, bytesIn.length);
    const dv = new DataView(mem.buffer);
    const s = dec.decode(new Uint8Array(mem.buffer, dv.getUint32(ret, true), dv.getUint32(ret + 4, true)));
    rawPostEcho(ret);
    return s;
  }, 200_000);
  const patchedEcho = perCallNs(() => pInst.echo(text), 100_000);
  const rawSumNs = perCallNs(() => {
    const p = realloc(0, 0, 4, list.length * 4);
    new Uint32Array(mem.buffer, p, list.length).set(list);
    return rawSum(p, list.length);
  }, 200_000);
  const patchedSum = perCallNs(() => pInst.sum(list), 100_000);
  const us = (ns: number) => round(ns / 1000, 4);
  return [
    {
      suite: SUITE,
      name: 'binding overhead, scalar export (add), patched jco bindings',
      unit: 'us/call',
      median: us(patchedAdd.median - rawAddNs.median),
      p99: us(patchedAdd.p99),
      baseline: { name: 'raw core export', median: us(rawAddNs.median) },
      target: '<= 1 us',
      met: (patchedAdd.median - rawAddNs.median) / 1000 <= 1,
      notes: `total ${us(patchedAdd.median)} us; jco default bindings in the same run: ${us(defaultAdd.median)} us`,
    },
    {
      suite: SUITE,
      name: 'binding overhead, string export (echo 22 chars), patched jco bindings',
      unit: 'us/call',
      median: us(patchedEcho.median - rawEchoNs.median),
      p99: us(patchedEcho.p99),
      baseline: { name: 'raw core export + hand encode/decode', median: us(rawEchoNs.median) },
      notes: `total ${us(patchedEcho.median)} us`,
    },
    {
      suite: SUITE,
      name: 'binding overhead, list<u32> export (sum of 16), patched jco bindings',
      unit: 'us/call',
      median: us(patchedSum.median - rawSumNs.median),
      p99: us(patchedSum.p99),
      baseline: { name: 'raw core export + hand copy', median: us(rawSumNs.median) },
      notes: `total ${us(patchedSum.median)} us`,
    },
  ];
}

async function postMessageRoundTrip(n: number): Promise<number[]> {
  const w = new Worker(
    "const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m + 1));",
    { eval: true },
  );
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await new Promise((r) => {
      w.once('message', r);
      w.postMessage(i);
    });
    lat.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  await w.terminate();
  return lat.slice(n / 10);
}

async function callPath(kernel: Kernel): Promise<BenchResult[]> {
  const lat = async (f: () => Promise<unknown>, n: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      await f();
      out.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    return stats(out.slice(n / 10));
  };
  const pm = stats(await postMessageRoundTrip(5_000));
  const add = await lat(() => kernel.call('calc', CALC, 'add', [1, 2]), 30_000);
  const echo = await lat(() => kernel.call('calc', CALC, 'echo', ['hello, component world']), 20_000);
  const js = await lat(() => kernel.call('js-calc', CALC, 'add', [1, 2]), 10_000);
  return [
    {
      suite: SUITE,
      name: 'kernel call path, WAT component in its worker, scalar (add)',
      unit: 'us round trip',
      median: round(add.median, 2),
      p99: round(add.p99, 2),
      baseline: { name: 'plain worker postMessage round trip', median: round(pm.median, 2) },
      target: '<= 20 us median',
      met: add.median <= 20,
    },
    {
      suite: SUITE,
      name: 'kernel call path, WAT component, string (echo)',
      unit: 'us round trip',
      median: round(echo.median, 2),
      p99: round(echo.p99, 2),
      baseline: { name: 'plain worker postMessage round trip', median: round(pm.median, 2) },
    },
    {
      suite: SUITE,
      name: 'kernel call path, componentize-js component, scalar (add)',
      unit: 'us round trip',
      median: round(js.median, 2),
      p99: round(js.p99, 2),
      baseline: { name: 'plain worker postMessage round trip', median: round(pm.median, 2) },
      notes: 'includes SpiderMonkey (interpreted, inside wasm) running the guest JS',
    },
  ];
}

async function instantiation(kernel: Kernel): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  for (const [name, bytes, n] of [
    ['small WAT component', await buildFixture('calc'), 2000],
    ['componentize-js component', await buildJsCalc(), 60],
  ] as const) {
    const t = await kernel.transpiler.get(bytes);
    const modules = new Map(
      [...t.coreModules].map(([k, v]) => [k, new WebAssembly.Module(v as Uint8Array<ArrayBuffer>)]),
    );
    const mod = (await import(pathToFileURL(t.jsPath).href)) as { instantiate: Function };
    const imports = { 'test:fixtures/log': { log: () => {} } };
    const sync = (m: WebAssembly.Module, i?: WebAssembly.Imports) => new WebAssembly.Instance(m, i);
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await mod.instantiate((f: string) => modules.get(f), imports, sync);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    // Raw core instantiation of the same modules, no bindings: the floor.
    const s = stats(times.slice(n / 10));
    const target = name.startsWith('small') ? 0.2 : 5;
    out.push({
      suite: SUITE,
      name: `warm instantiate, ${name} (compiled modules reused)`,
      unit: 'ms',
      median: round(s.median, 3),
      p99: round(s.p99, 3),
      target: `<= ${target} ms`,
      met: s.median <= target,
    });
  }
  return out;
}

async function coldLoad(dir: string): Promise<BenchResult[]> {
  const bytes = await buildFixture('calc');
  const jsBytes = await buildJsCalc();
  const measure = async (b: Uint8Array, dataDir: string) => {
    const k = new Kernel({ dataDir });
    k.provide({ name: LOG, functions: { log: () => {} } });
    const t0 = process.hrtime.bigint();
    await k.load({ name: 'c', bytes: b, imports: [LOG], memoryMaxPages: 2048 });
    await k.call('c', CALC, 'add', [1, 2]);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    await k.stop();
    return ms;
  };
  const results: BenchResult[] = [];
  for (const [label, b] of [
    ['WAT component', bytes],
    ['componentize-js component', jsBytes],
  ] as const) {
    const miss: number[] = [];
    const hit: number[] = [];
    for (let i = 0; i < 3; i++) {
      const d = mkdtempSync(join(dir, 'cold-'));
      miss.push(await measure(b, d));
      hit.push(await measure(b, d));
    }
    results.push({
      suite: SUITE,
      name: `cold load to first call, ${label}, transpile cache hit (new kernel, new worker)`,
      unit: 'ms',
      median: round(stats(hit).median, 1),
      baseline: { name: 'same with transpile cache miss', median: round(stats(miss).median, 1) },
    });
  }
  return results;
}

async function rssPerComponent(dir: string): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  for (const [label, bytes, n] of [
    ['WAT component', await buildFixture('calc'), 20],
    ['componentize-js component', await buildJsCalc(), 8],
  ] as const) {
    const k = new Kernel({ dataDir: mkdtempSync(join(dir, 'rss-')) });
    k.provide({ name: LOG, functions: { log: () => {} } });
    await k.load({ name: 'warm', bytes, imports: [LOG], memoryMaxPages: 2048 });
    await k.call('warm', CALC, 'add', [1, 1]);
    global.gc?.();
    const before = process.memoryUsage.rss();
    for (let i = 0; i < n; i++) {
      await k.load({ name: `c${i}`, bytes, imports: [LOG], memoryMaxPages: 2048 });
      await k.call(`c${i}`, CALC, 'add', [1, 1]);
    }
    global.gc?.();
    const per = (process.memoryUsage.rss() - before) / n / 2 ** 20;
    await k.stop();
    out.push({
      suite: SUITE,
      name: `RSS per loaded component, ${label} (own worker each)`,
      unit: 'MiB',
      median: round(per, 2),
      notes: `${n} components loaded`,
    });
  }
  return out;
}

async function runaway(dir: string): Promise<BenchResult[]> {
  const k = new Kernel({ dataDir: mkdtempSync(join(dir, 'runaway-')) });
  k.provide({ name: LOG, functions: { log: () => {} } });
  await k.load({ name: 'calc', bytes: await buildFixture('calc'), imports: [LOG] });
  await k.load({
    name: 'chaos',
    bytes: await buildFixture('chaos'),
    imports: ['wasi:cli/exit'],
    deadlineMs: 200,
    restart: { initialBackoffMs: 1, maxRestarts: 1000 },
  });
  const stopLag: number[] = [];
  const others: number[] = [];
  for (let round = 0; round < 10; round++) {
    const started = Date.now();
    let stoppedAt = 0;
    const spin = k.call('chaos', CHAOS, 'spin', []).catch(() => {
      stoppedAt = Date.now();
    });
    while (!stoppedAt) {
      const t = process.hrtime.bigint();
      await k.call('calc', CALC, 'add', [1, 2]);
      others.push(Number(process.hrtime.bigint() - t) / 1e6);
      await new Promise((r) => setImmediate(r));
    }
    await spin;
    stopLag.push(stoppedAt - started - 200);
    while (k.info('chaos').status.health !== 'healthy') await new Promise((r) => setTimeout(r, 2));
  }
  await k.stop();
  const lag = stats(stopLag);
  const o = stats(others);
  return [
    {
      suite: SUITE,
      name: 'runaway component stopped after its deadline (lag past deadline)',
      unit: 'ms',
      median: round(lag.median, 1),
      p99: round(lag.p99, 1),
      target: '<= 50 ms',
      met: lag.p99 <= 50,
    },
    {
      suite: SUITE,
      name: "other component's call latency while a runaway spins",
      unit: 'ms',
      median: round(o.median, 3),
      p99: round(o.p99, 3),
      target: 'p99 < 5 ms',
      met: o.p99 < 5,
      notes: `${others.length} calls over 10 runaways`,
    },
  ];
}

async function crashes(dir: string): Promise<BenchResult[]> {
  const k = new Kernel({ dataDir: mkdtempSync(join(dir, 'crash-')) });
  k.provide({ name: LOG, functions: { log: () => {} } });
  await k.load({ name: 'calc', bytes: await buildFixture('calc'), imports: [LOG] });
  await k.load({
    name: 'chaos',
    bytes: await buildFixture('chaos'),
    imports: ['wasi:cli/exit'],
    restart: { initialBackoffMs: 0, maxBackoffMs: 0, maxRestarts: 2000, windowMs: 60_000 },
  });
  const t0 = Date.now();
  let trapped = 0;
  let otherOk = 0;
  for (let i = 0; i < 1000; i++) {
    await k.call('chaos', CHAOS, i % 2 ? 'crash' : 'quit', []).catch(() => trapped++);
    if ((await k.call('calc', CALC, 'add', [i, 1])) === i + 1) otherOk++;
  }
  const ms = Date.now() - t0;
  while (k.info('chaos').status.health !== 'healthy') await new Promise((r) => setTimeout(r, 2));
  const alive = (await k.call('chaos', CHAOS, 'ping', [])) === 42;
  const restarts = k.info('chaos').status.restarts;
  await k.stop();
  return [
    {
      suite: SUITE,
      name: '1,000 injected crashes in a row (traps and guest exits)',
      unit: 'ms per crash+recover',
      median: round(ms / 1000, 3),
      target: 'kernel never exits, others keep answering',
      met: trapped === 1000 && otherOk === 1000 && alive,
      notes: `${trapped} faults, ${restarts} restarts, other component answered ${otherOk}/1000, crashed component serving afterwards: ${alive}`,
    },
  ];
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cam-bench-kernel-'));
  const kernel = new Kernel({ dataDir: join(dir, 'main') });
  kernel.provide({ name: LOG, functions: { log: () => {} } });
  try {
    await kernel.load({ name: 'calc', bytes: await buildFixture('calc'), imports: [LOG] });
    await kernel.load({ name: 'js-calc', bytes: await buildJsCalc(), imports: [LOG], memoryMaxPages: 2048 });
    const results = [
      ...(await bindingOverhead(kernel, dir)),
      ...(await callPath(kernel)),
      ...(await instantiation(kernel)),
    ];
    await kernel.stop();
    results.push(
      ...(await coldLoad(dir)),
      ...(await rssPerComponent(dir)),
      ...(await runaway(dir)),
      ...(await crashes(dir)),
    );
    return results;
  } finally {
    await kernel.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
