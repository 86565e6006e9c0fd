/**
 * Runs against a real in-process kernel. `cam-os driver test` runs this file twice: against the built
 * component (componentize-js) and against the dev path, and both must pass.
 */
import { startDriver, type TestDriver } from '@cam-os/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const T0 = 1_800_000_000_000;
let driver: TestDriver;

function task(id: string, priority: number, extra: Record<string, unknown> = {}) {
  return {
    id,
    description: '',
    requirements: [],
    metadata: [],
    priority,
    deadline: undefined,
    taskType: 'analysis',
    agentId: undefined,
    dependsOn: [],
    tpmIdentity: undefined,
    ...extra,
  };
}
const queued = (t: ReturnType<typeof task>, trust?: number) => ({ task: t, enqueuedAtMs: BigInt(T0), trust });

interface Ranking {
  order: Array<{ taskId: string; score: number; band: string }>;
  preemptions: Array<{ waitingTaskId: string; runningTaskId: string }>;
}

beforeAll(async () => {
  driver = await startDriver(new URL('..', import.meta.url), { startTimeMs: T0 });
});
afterAll(() => driver?.stop());

describe('__NAME__', () => {
  it('ranks by priority, deadline and trust', async () => {
    const r = await driver.call<Ranking>(
      'scheduler',
      'rank',
      [
        queued(task('low', 10), 0),
        queued(task('urgent', 100, { deadline: BigInt(T0 + 60_000) }), 0.9),
        queued(task('important', 250), 0.9),
      ],
      [],
    );
    expect(r.order.map((o) => o.taskId)).toEqual(['urgent', 'important', 'low']);
    expect(r.order[2]!.band).toBe('low');
  });

  it('preempts a lower-priority running task for a high-band one', async () => {
    const r = await driver.call<Ranking>(
      'scheduler',
      'rank',
      [queued(task('hot', 255, { deadline: BigInt(T0 - 1) }), 1)],
      [{ task: task('cold', 5), startedAtMs: BigInt(T0) }],
    );
    expect(r.preemptions).toEqual([expect.objectContaining({ waitingTaskId: 'hot', runningTaskId: 'cold' })]);
  });

  it('refuses bad input with invalid-argument', async () => {
    await expect(
      driver.call('scheduler', 'set-weights', {
        urgency: 2,
        importance: 0,
        efficiency: 0,
        energy: 0,
        trust: 0,
      }),
    ).rejects.toMatchObject({ code: 'KERNEL_ERR_GUEST_ERROR', detail: { tag: 'invalid-argument' } });
    await expect(
      driver.call('scheduler', 'rank', [queued(task('x', 1)), queued(task('x', 2))], []),
    ).rejects.toMatchObject({
      detail: { tag: 'invalid-argument' },
    });
  });

  it('keeps its weights across a hot-swap', async () => {
    const w = { urgency: 0, importance: 1, efficiency: 0, energy: 0, trust: 0 };
    expect(await driver.call('scheduler', 'set-weights', w)).toEqual(w);
    expect((await driver.reload()).result).toBe('swapped');
    expect(await driver.call('scheduler', 'get-weights')).toEqual(w);
  });
});
