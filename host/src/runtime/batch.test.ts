/**
 * Batched calls (Supervisor.runBatch, Instance.callMany, serveBatch in the worker): calls that queue up
 * while a component is busy reach it in one round trip, and each keeps the semantics it has alone — its own
 * result or typed error, host calls served in the middle, its own deadline, and a trap that fails only the
 * call that trapped (the calls after it run on the restarted instance).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelError } from '../errors.js';
import { Kernel } from '../kernel/kernel.js';
import { buildFixture } from '../testing/fixtures.js';
import { CTL_MAIN_SLEEPING } from './channel.js';

const CALC = 'test:fixtures/calc@0.1.0';
const CHAOS = 'test:fixtures/chaos@0.1.0';
const LOG = 'test:fixtures/log@0.1.0';

let dataDir: string;
let kernel: Kernel;
const logs: string[] = [];

type Settled = { ok: true; value: unknown } | { ok: false; code: string; message: string };
const settle = (p: Promise<unknown>): Promise<Settled> =>
  p.then(
    (value) => ({ ok: true, value }),
    (e: unknown) => {
      expect(e).toBeInstanceOf(KernelError);
      return { ok: false, code: (e as KernelError).code, message: (e as KernelError).message };
    },
  );

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cam-batch-test-'));
  kernel = new Kernel({ dataDir });
  kernel.provide({
    name: LOG,
    functions: {
      log: (_caller, msg) => {
        logs.push(msg as string);
      },
    },
  });
  await kernel.load({ name: 'calc', bytes: await buildFixture('calc'), imports: [LOG] });
  await kernel.load({
    name: 'chaos',
    bytes: await buildFixture('chaos'),
    imports: ['wasi:cli/exit'],
    deadlineMs: 20_000,
    restart: { initialBackoffMs: 5, maxBackoffMs: 50, maxRestarts: 50, windowMs: 60_000 },
  });
});

afterAll(async () => {
  await kernel?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('batched calls', () => {
  it('answer every queued call with its own result or typed error, host calls included', async () => {
    const before = kernel.info('calc').status.batchedCalls;
    const calls = Array.from({ length: 300 }, (_, i) =>
      i % 10 === 9
        ? settle(kernel.call('calc', CALC, 'divide', [i, 0])) // typed error, after a host call to log
        : settle(kernel.call('calc', CALC, 'add', [i, 1])),
    );
    const results = await Promise.all(calls);
    results.forEach((r, i) => {
      if (i % 10 === 9)
        expect(r).toEqual({ ok: false, code: 'KERNEL_ERR_GUEST_ERROR', message: 'division by zero' });
      else expect(r).toEqual({ ok: true, value: i + 1 });
    });
    expect(logs.filter((l) => l === 'division by zero').length).toBe(30);
    const status = kernel.info('calc').status;
    // All but the first call queued behind a busy instance, so they went in batches.
    expect(status.batchedCalls - before).toBe(299);
    expect(status.restarts).toBe(0);
    expect(status.health).toBe('healthy');
  });

  it('fail only the call that trapped; the calls after it run on the restarted instance', async () => {
    const plan = ['ping', 'ping', 'ping', 'crash', 'ping', 'ping', 'quit', 'ping'];
    const results = await Promise.all(plan.map((fn) => settle(kernel.call('chaos', CHAOS, fn, []))));
    expect(results.map((r) => (r.ok ? r.value : r.code))).toEqual([
      42,
      42,
      42,
      'KERNEL_ERR_COMPONENT_TRAP',
      42,
      42,
      'KERNEL_ERR_COMPONENT_EXIT',
      42,
    ]);
    expect(kernel.info('chaos').status.restarts).toBe(2);
  });

  it('hold each call to its own deadline: a runaway in a batch is stopped and the calls after it still run', async () => {
    const first = settle(kernel.call('chaos', CHAOS, 'ping', []));
    // Queued behind the first call, so they go as one batch: ping, spin, ping, ping.
    const batch = [
      settle(kernel.call('chaos', CHAOS, 'ping', [])),
      settle(kernel.call('chaos', CHAOS, 'spin', [], { deadlineMs: 300 })),
      settle(kernel.call('chaos', CHAOS, 'ping', [])),
      settle(kernel.call('chaos', CHAOS, 'ping', [])),
    ];
    expect(await first).toEqual({ ok: true, value: 42 });
    const [before, spin, after1, after2] = await Promise.all(batch);
    expect(spin).toMatchObject({ ok: false, code: 'KERNEL_ERR_CALL_DEADLINE' });
    expect((spin as { message: string }).message).toContain('spin passed its deadline');
    // The ping before the runaway finished before the worker was stopped: its outcome was already published.
    expect(before).toEqual({ ok: true, value: 42 });
    expect(after1).toEqual({ ok: true, value: 42 });
    expect(after2).toEqual({ ok: true, value: 42 });
  });

  it('do not run a call whose deadline passed while it waited behind a runaway', async () => {
    const first = settle(kernel.call('chaos', CHAOS, 'ping', []));
    const spin = settle(kernel.call('chaos', CHAOS, 'spin', [], { deadlineMs: 400 }));
    const late = settle(kernel.call('chaos', CHAOS, 'ping', [], { deadlineMs: 100 }));
    expect(await first).toEqual({ ok: true, value: 42 });
    expect(await spin).toMatchObject({ ok: false, code: 'KERNEL_ERR_CALL_DEADLINE' });
    expect(await late).toMatchObject({ ok: false, code: 'KERNEL_ERR_CALL_DEADLINE' });
    expect(await kernel.call('chaos', CHAOS, 'ping', [])).toBe(42);
  });
});

describe('the sleeping kernel thread', () => {
  it('raises its sleeping flag again after a stale wake-up, so the real answer still wakes it', async () => {
    // The worker publishes an answer, then takes the flag down and posts a wake-up (worker.ts publish()). If
    // it is descheduled in between, the kernel can take that answer without the wake-up, send the next
    // request and go to sleep: the late exchange then lowers the flag of that new wait and its message
    // finds nothing. Emulated here on a real wait (a runaway call, so the worker stays busy).
    const inst = [
      ...(
        kernel as unknown as { components: Map<string, { supervisor: { all: Set<unknown> } }> }
      ).components.get('chaos')!.supervisor.all,
    ][0] as unknown as {
      ch: { ctl: Int32Array };
      worker: { emit(event: string, v: unknown): boolean };
    };
    const ctl = inst.ch.ctl;
    const spin = settle(kernel.call('chaos', CHAOS, 'spin', [], { deadlineMs: 500 }));
    const until = Date.now() + 400;
    while (Atomics.load(ctl, CTL_MAIN_SLEEPING) !== 1 && Date.now() < until)
      await new Promise((r) => setTimeout(r, 2));
    expect(Atomics.load(ctl, CTL_MAIN_SLEEPING)).toBe(1);
    Atomics.store(ctl, CTL_MAIN_SLEEPING, 0);
    inst.worker.emit('message', 0);
    expect(Atomics.load(ctl, CTL_MAIN_SLEEPING)).toBe(1);
    expect(await spin).toMatchObject({ ok: false, code: 'KERNEL_ERR_CALL_DEADLINE' });
    expect(await kernel.call('chaos', CHAOS, 'ping', [])).toBe(42);
  });
});
