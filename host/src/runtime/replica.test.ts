/**
 * Query replicas (runtime/replica.ts) and the interrupt watchdog they run under (runtime/interrupt.ts), with
 * real WAT components in a real kernel. No timing thresholds: these check who answered and what.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import binaryen from 'binaryen';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelError } from '../errors.js';
import { Kernel } from '../kernel/kernel.js';
import { buildFixture } from '../testing/fixtures.js';
import { CHECK_MODULE, InterruptError, Interrupter, instrument } from './interrupt.js';
import type { ReplicaStatus } from './supervisor.js';

const CALC = 'test:fixtures/calc@0.1.0';
const CHAOS = 'test:fixtures/chaos@0.1.0';
const LOG = 'test:fixtures/log@0.1.0';

function wat(text: string): Uint8Array {
  const m = binaryen.parseText(text);
  try {
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

const SPIN = `(module
  (func (export "spin") (loop $l (br $l)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))`;

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

afterAll(async () => {
  await Interrupter.shutdown();
});

describe('interrupt watchdog', () => {
  it('stops an instrumented infinite loop on the calling thread at its deadline, and the next call runs', async () => {
    const it = await Interrupter.get();
    const bytes = await instrument(wat(SPIN));
    expect(WebAssembly.Module.imports(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>))).toEqual([
      { module: CHECK_MODULE, name: 'log_execution', kind: 'function' },
    ]);
    const inst = new WebAssembly.Instance(
      new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>),
      it.imports(),
    );
    const { spin, add } = inst.exports as { spin: () => void; add: (a: number, b: number) => number };
    const before = it.interrupts;
    expect(() => it.run(Date.now() + 30, spin)).toThrow(InterruptError);
    expect(it.interrupts).toBe(before + 1);
    expect(it.run(Date.now() + 1_000, () => add(2, 3))).toBe(5);
    // A trap that is not the watchdog's is the guest's own, and stays what it was.
    expect(() =>
      it.run(Date.now() + 1_000, () => {
        throw new RangeError('guest');
      }),
    ).toThrow(RangeError);
  });

  it('wakes from its idle sleep when a call starts after a quiet period', async () => {
    const it = await Interrupter.get();
    const bytes = await instrument(wat(`(module (func (export "spin") (loop $l (br $l))))`));
    const inst = new WebAssembly.Instance(
      new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>),
      it.imports(),
    );
    // The watchdog goes to sleep after a second without inline calls.
    await new Promise((r) => setTimeout(r, 1_300));
    expect(() => it.run(Date.now() + 30, inst.exports.spin as () => void)).toThrow(InterruptError);
  });

  it('keeps instrumented modules on disk by digest, and uses them on the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cam-os-instrument-'));
    try {
      const first = await instrument(wat(SPIN), dir);
      const files = readdirSync(join(dir, 'interrupt-v1'));
      expect(files).toHaveLength(1);
      const written = statSync(join(dir, 'interrupt-v1', files[0]!)).mtimeMs;
      expect(Buffer.from(await instrument(wat(SPIN), dir))).toEqual(Buffer.from(first));
      expect(statSync(join(dir, 'interrupt-v1', files[0]!)).mtimeMs).toBe(written); // read, not made again
      // A damaged entry is not used: it is made again.
      writeFileSync(join(dir, 'interrupt-v1', files[0]!), 'not wasm');
      expect(Buffer.from(await instrument(wat(SPIN), dir))).toEqual(Buffer.from(first));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a module that already imports from its check module', async () => {
    const bytes = wat(`(module (import "${CHECK_MODULE}" "x" (func)) (func (export "f")))`);
    await expect(instrument(bytes)).rejects.toThrow(/cannot be instrumented/);
  });
});

describe('query replicas in the kernel', () => {
  let dataDir: string;
  let kernel: Kernel;
  const logs: string[] = [];
  const replica = (name: string): ReplicaStatus => kernel.info(name).status.replica;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cam-os-replica-'));
    kernel = new Kernel({ dataDir });
    kernel.provide({ name: LOG, functions: { log: (_caller, msg) => void logs.push(msg as string) } });
    await kernel.load({ name: 'calc', bytes: await buildFixture('calc'), imports: [LOG] });
    await kernel.load({
      name: 'chaos',
      bytes: await buildFixture('chaos'),
      imports: ['wasi:cli/exit'],
      deadlineMs: 2_000,
      restart: { initialBackoffMs: 5, maxBackoffMs: 50, maxRestarts: 50, windowMs: 60_000 },
    });
  });

  afterAll(async () => {
    await kernel.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers queries on the kernel thread once built; other calls always go to the worker', async () => {
    // The first replica is built at load, in the background.
    expect(['building', 'ready']).toContain(replica('calc').state);
    await until('the replica', () => replica('calc').state === 'ready');
    const before = replica('calc').calls;
    expect(await kernel.call('calc', CALC, 'add', [20, 22], { query: true })).toBe(42);
    expect(await kernel.call('calc', CALC, 'echo', ['héllo'], { query: true })).toBe('héllo');
    expect(await kernel.call('calc', CALC, 'sum', [new Uint32Array([1, 2, 3])], { query: true })).toBe(6n);
    expect(replica('calc').calls).toBe(before + 3);
    expect(replica('calc').builds).toBe(1);
  });

  it('drops the replica when a non-query call finishes, and builds a new one', async () => {
    await until('the replica', () => replica('calc').state === 'ready');
    const builds = replica('calc').builds;
    expect(await kernel.call('calc', CALC, 'add', [1, 1])).toBe(2);
    expect(replica('calc').state).toBe('stale');
    const calls = replica('calc').calls;
    expect(await kernel.call('calc', CALC, 'add', [2, 2], { query: true })).toBe(4);
    expect(replica('calc').calls).toBe(calls); // answered by the worker while the new replica builds
    await until('the new replica', () => replica('calc').state === 'ready');
    expect(replica('calc').builds).toBe(builds + 1);
  });

  it('answers a typed guest error from the replica', async () => {
    await until('the replica', () => replica('calc').state === 'ready');
    // divide-by-zero logs through a host import this test did not declare inline, so it is refused and the
    // worker answers; the error reaches the caller the same way either way.
    const e = await kernel.call('calc', CALC, 'divide', [1, 0], { query: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KernelError);
    expect(String((e as KernelError).message)).toContain('division by zero');
    const r = replica('calc');
    expect(r.fallbacks).toBe(1);
    expect(r.lastFallback).toContain(`refused: ${CALC}#divide called ${LOG}#log`);
    expect(logs).toEqual(['division by zero']); // the refused import did not run; the worker's did
  });

  it('sends a runaway query to the worker after interrupting it on the kernel thread', async () => {
    expect(await kernel.call('chaos', CHAOS, 'ping', [], { query: true })).toBeTypeOf('number');
    await until('the replica', () => replica('chaos').state === 'ready');
    const started = Date.now();
    // The replica stops after its budget; the worker then spins until the call's deadline and is killed.
    const e = await kernel.call('chaos', CHAOS, 'spin', [], { query: true }).catch((x: unknown) => x);
    expect((e as KernelError).code).toBe('KERNEL_ERR_CALL_DEADLINE');
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    const r = replica('chaos');
    expect(r.fallbacks).toBe(1);
    expect(r.lastFallback).toMatch(/^interrupted: /);
    // The kernel thread was free again: other components answered meanwhile and still do.
    expect(await kernel.call('calc', CALC, 'add', [5, 5], { query: true })).toBe(10);
  });

  it('reports why a component has no replica', async () => {
    const k = new Kernel({ dataDir: join(dataDir, 'off'), queryReplicas: false });
    k.provide({ name: LOG, functions: { log: () => undefined } });
    try {
      await k.load({ name: 'calc', bytes: await buildFixture('calc'), imports: [LOG] });
      expect(await k.call('calc', CALC, 'add', [1, 2], { query: true })).toBe(3);
      const r = k.info('calc').status.replica;
      expect(r.state).toBe('off');
      expect(r.reason).toBe('disabled in the kernel configuration');
      expect(r.calls).toBe(0);
    } finally {
      await k.stop();
    }
  });
});
