/**
 * The scheduler as a real component: built from this folder by the SDK pipeline (cached), loaded into a real
 * Kernel with the host interfaces, and driven through `kernel.call` only.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KernelError } from '@cam-os/host/errors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComponentHarness } from '../../../sdk/src/build/harness.js';
import { type BuildResult, buildComponent } from '../../../sdk/src/build/index.js';
import { DEFAULT_WEIGHTS, type QueuedTask, type Ranking, rank, type Task } from './triple-helix.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCHED = 'cam:kernel/scheduler';
const LIFE = 'cam:kernel/lifecycle';
const T0 = 1_800_000_000_000;

let outDir: string;
let built: BuildResult;
let h: ComponentHarness;

function task(id: string, priority: number, extra: Partial<Task> = {}): Task {
  return {
    id,
    description: '',
    requirements: [],
    metadata: [],
    priority,
    deadline: undefined,
    taskType: 'unspecified',
    agentId: undefined,
    dependsOn: [],
    tpmIdentity: undefined,
    ...extra,
  };
}

const call = <T = unknown>(fn: string, ...args: unknown[]) => h.call<T>('scheduler', SCHED, fn, ...args);
const q = (t: Task, at = 0, trust?: number): QueuedTask => ({ task: t, enqueuedAtMs: BigInt(at), trust });

async function guestError(p: Promise<unknown>): Promise<KernelError> {
  const e = await p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KernelError);
  return e as KernelError;
}

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'cam-sched-build-'));
  built = await buildComponent({
    entry: join(ROOT, 'drivers/scheduler/src/index.ts'),
    world: 'scheduler-component',
    outDir,
    cacheDir: join(ROOT, 'drivers/.cache'),
    name: 'scheduler',
  });
  h = await ComponentHarness.start({ startTimeMs: T0 });
  await h.load({ name: 'scheduler', wasmPath: built.wasmPath, imports: built.imports });
}, 180_000);

afterAll(async () => {
  await h?.stop();
  await rm(outDir, { recursive: true, force: true });
});

describe('scheduler component', () => {
  it('imports only the clock and the log', () => {
    expect(built.imports).toEqual(['cam:kernel/clock@0.1.0', 'cam:kernel/log@0.1.0']);
    expect(h.logs.some((l) => l.component === 'scheduler' && l.msg === 'scheduler initialised')).toBe(true);
  });

  it('ranks a queue with bands, dependencies and preemptions', async () => {
    const r = await call<Ranking>(
      'rank',
      [
        q(task('mid', 50), 1),
        q(task('urgent', 100, { dependsOn: ['blocker'], deadline: BigInt(T0 / 1000 + 60) }), 2, 0.9),
        q(task('blocker', 1), 3),
        q(task('bulk', 95), 4),
      ],
      [{ task: task('background', 20), startedAtMs: BigInt(T0 - 1000) }],
    );
    expect(r.order.map((x) => x.taskId)).toEqual(['blocker', 'urgent', 'bulk', 'mid']);
    const urgent = r.order[1]!;
    expect(urgent.dimensions.urgency).toBe(1);
    expect(urgent.band).toBe('high');
    // `urgent` cannot start (its dependency is queued), so `bulk` is the one that preempts.
    expect(r.preemptions).toEqual([
      { waitingTaskId: 'bulk', runningTaskId: 'background', reason: 'priority 95 >= 2 x 20' },
    ]);
  });

  it('reads the time from the host clock (urgency follows the virtual clock)', async () => {
    const deadline = BigInt(T0 / 1000 + 2 * 3600);
    const urgency = async () =>
      (await call<Ranking>('rank', [q(task('t', 10, { deadline }))], [])).order[0]!.dimensions.urgency;
    expect(await urgency()).toBe(0.9);
    h.clock.advance(90 * 60_000);
    expect(await urgency()).toBe(1);
    h.clock.set(T0);
  });

  it('gives the same ranking as the same code run directly in Node, for 1,000 tasks', async () => {
    const queue: QueuedTask[] = [];
    for (let i = 0; i < 1000; i++) {
      const deps = i % 7 === 3 ? [`t${i - 3}`] : [];
      const deadline = i % 3 === 0 ? BigInt(T0 / 1000 + (i % 48) * 1800) : undefined;
      const types = ['analysis', 'arbitration', 'routing', 'memory'] as const;
      queue.push(
        q(
          task(`t${i}`, (i * 37) % 101, { dependsOn: deps, deadline, taskType: types[i % 4]! }),
          i,
          (i % 10) / 10,
        ),
      );
    }
    const viaComponent = await call<Ranking>('rank', queue, []);
    const direct = rank(queue, [], { weights: DEFAULT_WEIGHTS, nowMs: T0 });
    expect(viaComponent).toEqual(direct);
  });

  it('refuses malformed queues with invalid-argument', async () => {
    const dup = await guestError(call('rank', [q(task('a', 1)), q(task('a', 2))], []));
    expect(dup.status).toBe('INVALID_ARGUMENT');
    expect(dup.message).toBe('task a appears twice in the queue');
    const cycle = await guestError(
      call('rank', [q(task('a', 1, { dependsOn: ['b'] })), q(task('b', 1, { dependsOn: ['a'] }))], []),
    );
    expect(cycle.message).toMatch(/^dependency cycle: (a -> b -> a|b -> a -> b)$/);
    const prio = await guestError(call('rank', [q(task('a', 101))], []));
    expect(prio.message).toContain('priority must be 0-100');
    const trust = await guestError(call('rank', [q(task('a', 1), 0, Number.NaN)], []));
    expect(trust.status).toBe('INVALID_ARGUMENT');
  });

  it('traps on a value that does not match the WIT type, and keeps serving afterwards', async () => {
    // On an instance of its own: the restart after a trap starts from a fresh instance.
    await h.load({ name: 'scheduler-trap', wasmPath: built.wasmPath, imports: built.imports });
    const e = await guestError(
      h.call('scheduler-trap', SCHED, 'rank', [q(task(42 as unknown as string, 1))], []),
    );
    expect(e.code).toBe('KERNEL_ERR_COMPONENT_TRAP');
    const r = await h.call<Ranking>('scheduler-trap', SCHED, 'rank', [q(task('a', 1))], []);
    expect(r.order).toHaveLength(1);
    await h.kernel.unload('scheduler-trap');
  });

  it('changes weights (normalised), refuses bad ones, and reports the weights in use', async () => {
    const applied = await call('set-weights', {
      urgency: 2,
      importance: 1,
      efficiency: 1,
      energy: 0,
      trust: 0,
    });
    expect(applied).toEqual({ urgency: 0.5, importance: 0.25, efficiency: 0.25, energy: 0, trust: 0 });
    const bad = await guestError(
      call('set-weights', { urgency: -1, importance: 1, efficiency: 1, energy: 0, trust: 0 }),
    );
    expect(bad.status).toBe('INVALID_ARGUMENT');
    expect(await call('get-weights')).toEqual(applied);
  });

  it('keeps its weights through export-state / import-state into another instance', async () => {
    const weights = await call('get-weights');
    const state = await h.call<Uint8Array>('scheduler', LIFE, 'export-state');
    await h.load({ name: 'scheduler-b', wasmPath: built.wasmPath, imports: built.imports });
    expect(await h.call('scheduler-b', SCHED, 'get-weights')).toEqual(DEFAULT_WEIGHTS);
    await h.kernel.call('scheduler-b', LIFE, 'import-state', [state]);
    expect(await h.kernel.call('scheduler-b', SCHED, 'get-weights', [])).toEqual(weights);

    const garbage = await guestError(
      h.kernel.call('scheduler-b', LIFE, 'import-state', [new Uint8Array([1, 2])]),
    );
    expect(garbage.status).toBe('INVALID_ARGUMENT');
    const newer = new TextEncoder().encode(JSON.stringify({ format: 9, weights }));
    const tooNew = await guestError(h.kernel.call('scheduler-b', LIFE, 'import-state', [newer]));
    expect(tooNew.status).toBe('UNIMPLEMENTED');
    await h.kernel.unload('scheduler-b');
  });

  it('survives a kernel hot-swap with its weights', async () => {
    const weights = await call('get-weights');
    const record = await h.kernel.swap('scheduler', {
      bytes: await readFile(built.wasmPath),
      imports: built.imports,
      memoryMaxPages: 2048,
      version: '0.1.1',
    });
    expect(record.result).toBe('swapped');
    expect(await call('get-weights')).toEqual(weights);
  });

  it('applies weights from init config and refuses unknown config keys', async () => {
    await h.load({
      name: 'scheduler-c',
      wasmPath: built.wasmPath,
      imports: built.imports,
      config: {
        'weight.urgency': '1',
        'weight.importance': '1',
        'weight.efficiency': '1',
        'weight.energy': '0',
        'weight.trust': '2',
      },
    });
    const w = await h.kernel.call('scheduler-c', SCHED, 'get-weights', []);
    expect(w).toEqual({ urgency: 0.2, importance: 0.2, efficiency: 0.2, energy: 0, trust: 0.4 });
    await h.kernel.unload('scheduler-c');
    const e = await guestError(
      h.load({
        name: 'scheduler-d',
        wasmPath: built.wasmPath,
        imports: built.imports,
        config: { speed: 'max' },
      }),
    );
    expect(e.message).toContain("unknown config key 'speed'");
    expect(h.kernel.has('scheduler-d')).toBe(false);
  });
});
