/**
 * The model router in a real kernel, as a componentize-js component and on the dev path (the same tests).
 */
import { driverModes, startDriver, type TestDriver } from '@cam-os/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const task = (id: string, requirements: string[]) => ({
  id,
  description: '',
  requirements,
  metadata: [],
  priority: 1,
  deadline: undefined,
  taskType: 'routing',
  agentId: undefined,
  dependsOn: [],
  tpmIdentity: undefined,
});
const request = (t: ReturnType<typeof task>, context: Array<[string, string]>) => ({
  task: t,
  policyId: undefined,
  context,
  caller: { id: 'tester', tpmIdentity: undefined },
});
interface Result {
  assignedAgent: string;
  provider: string;
  traceId: string;
  candidates: Array<{ agentId: string; score: number }>;
}

describe.each(driverModes())('model-router (%s)', (mode) => {
  let d: TestDriver;
  const arb = <T = unknown>(fn: string, ...args: unknown[]) => d.call<T>('arbitration', fn, ...args);
  const register = (agentId: string, capabilities: string[], cost: number, latency: number) =>
    arb('register-agent', {
      agentId,
      capabilities,
      metadata: [
        ['cost-per-1k', String(cost)],
        ['latency-ms', String(latency)],
        ['provider', agentId.split('.')[0]!],
      ],
      tpmIdentity: undefined,
    });

  beforeAll(async () => {
    d = await startDriver(new URL('..', import.meta.url), { mode, startTimeMs: 1_800_000_000_000 });
    await register('cheap.small', ['chat'], 0.1, 900);
    await register('fast.large', ['chat', 'code'], 2, 120);
    await register('mid.medium', ['chat', 'code'], 0.6, 400);
  });
  afterAll(() => d?.stop());

  it('routes by cost, by latency, and within budgets', async () => {
    expect(
      (await arb<Result>('arbitrate', request(task('t1', ['chat']), [['optimize', 'cost']]))).assignedAgent,
    ).toBe('cheap.small');
    const fast = await arb<Result>('arbitrate', request(task('t2', ['chat']), [['optimize', 'latency']]));
    expect(fast).toMatchObject({ assignedAgent: 'fast.large', provider: 'fast' });
    // cheap.small: 0.2 * 1 + 0.8 * 120/900 = 0.307 beats mid.medium: 0.2 * 0.1/0.6 + 0.8 * 120/400 = 0.273
    expect(fast.candidates.map((c) => c.agentId)).toEqual(['fast.large', 'cheap.small', 'mid.medium']);
    const budget = await arb<Result>(
      'arbitrate',
      request(task('t3', ['code']), [
        ['optimize', 'latency'],
        ['max-cost-per-1k', '1'],
      ]),
    );
    expect(budget.assignedAgent).toBe('mid.medium');
    expect(budget.candidates).toHaveLength(1);
  });

  it('explains a decision by its trace id', async () => {
    const r = await arb<Result>('arbitrate', request(task('t4', ['code']), [['optimize', 'cost']]));
    const e = await arb<{ explanation: string; evidence: string[] }>('explain', r.traceId);
    expect(e.explanation).toContain('cost: mid.medium');
    expect(e.evidence).toHaveLength(2);
  });

  it('commit adds load, rollback removes it; load changes the choice', async () => {
    await arb('update-agent', {
      agentId: 'cheap.small',
      load: 0.9,
      performance: undefined,
      trust: undefined,
    });
    expect(await arb('commit', task('t5', ['chat']), 'cheap.small')).toBe('commit.t5.cheap.small');
    expect((await arb<{ load: number }>('get-agent', 'cheap.small')).load).toBe(1);
    await expect(
      arb(
        'arbitrate',
        request(task('t6', ['chat']), [
          ['optimize', 'cost'],
          ['max-latency-ms', '1000'],
          ['max-cost-per-1k', '0.2'],
        ]),
      ),
    ).rejects.toMatchObject({
      detail: { tag: 'resource-exhausted' },
    });
    await arb('rollback', 't5', 'test');
    expect((await arb<{ load: number }>('get-agent', 'cheap.small')).load).toBe(0.9);
    await expect(arb('rollback', 't5', 'again')).rejects.toMatchObject({ detail: { tag: 'not-found' } });
  });

  it('refuses bad input with typed errors and keeps agents across a hot-swap', async () => {
    await expect(register('cheap.small', ['chat'], 1, 1)).rejects.toMatchObject({
      detail: { tag: 'already-exists' },
    });
    await expect(register('nocost', ['chat'], Number.NaN, 1)).rejects.toMatchObject({
      detail: { tag: 'invalid-argument' },
    });
    await expect(arb('arbitrate', request(task('t7', ['vision']), []))).rejects.toMatchObject({
      detail: { tag: 'not-found' },
    });
    await expect(
      arb('arbitrate', request(task('t8', ['chat']), [['optimize', 'vibes']])),
    ).rejects.toMatchObject({
      detail: { tag: 'invalid-argument' },
    });
    expect((await d.reload()).result).toBe('swapped');
    expect((await arb<unknown[]>('list-agents')).length).toBe(3);
  });
});
