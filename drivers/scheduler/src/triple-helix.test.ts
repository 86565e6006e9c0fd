/** The triple-helix ranking as plain functions (the component runs the same code inside wasm). */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_WEIGHTS,
  type Dimensions,
  importanceOf,
  normalizeWeights,
  type QueuedTask,
  type RunningTask,
  rank,
  type Task,
  urgencyOf,
} from './triple-helix.js';

const NOW = 1_800_000_000_000;
const HOUR_S = 3600;

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
    ...extra,
  };
}

function queued(t: Task, enqueuedAtMs = 0, trust?: number): QueuedTask {
  return { task: t, enqueuedAtMs: BigInt(enqueuedAtMs), trust };
}

function running(t: Task, startedAtMs = 0): RunningTask {
  return { task: t, startedAtMs: BigInt(startedAtMs) };
}

function rankIds(queue: QueuedTask[], run: RunningTask[] = [], weights: Dimensions = DEFAULT_WEIGHTS) {
  return rank(queue, run, { weights, nowMs: NOW });
}

function thrown(f: () => unknown): { tag: string; val: string } {
  try {
    f();
  } catch (e) {
    return e as { tag: string; val: string };
  }
  throw new Error('expected a kernel-error, but nothing was thrown');
}

describe('dimensions', () => {
  it('derives urgency from the deadline (unix seconds) with the CAM-OS steps', () => {
    const at = (hours: number) => BigInt(NOW / 1000 + hours * HOUR_S);
    expect(urgencyOf(at(-5), NOW)).toBe(1.0);
    expect(urgencyOf(at(1), NOW)).toBe(1.0);
    expect(urgencyOf(at(1.01), NOW)).toBe(0.9);
    expect(urgencyOf(at(6), NOW)).toBe(0.9);
    expect(urgencyOf(at(24), NOW)).toBe(0.7);
    expect(urgencyOf(at(25), NOW)).toBe(0.4);
    expect(urgencyOf(undefined, NOW)).toBe(0.4);
  });

  it('derives importance from priority and task type, capped at 1', () => {
    expect(importanceOf(50, 'arbitration')).toBeCloseTo(0.6);
    expect(importanceOf(50, 'collaboration')).toBeCloseTo(0.55);
    expect(importanceOf(50, 'routing')).toBeCloseTo(0.45);
    expect(importanceOf(50, 'analysis')).toBeCloseTo(0.4);
    expect(importanceOf(50, 'security')).toBeCloseTo(0.5);
    expect(importanceOf(90, 'arbitration')).toBe(1);
  });

  it('scores the weighted sum and bands it (high >= 0.8, medium >= 0.5)', () => {
    const deadline = BigInt(NOW / 1000 + 60);
    const r = rankIds([
      queued(task('hot', 100, { deadline, metadata: [['cam.efficiency', '1']] }), 0, 1),
      queued(task('mid', 50, { deadline })),
      queued(task('cold', 0)),
    ]);
    const byId = Object.fromEntries(r.order.map((x) => [x.taskId, x]));
    // 0.4*1 + 0.3*1 + 0.2*1 + 0.05*0.5 + 0.05*1
    expect(byId.hot!.score).toBeCloseTo(0.975);
    expect(byId.hot!.band).toBe('high');
    // 0.4*1 + 0.3*0.5 + 0.2*0.5 + 0.05*0.5 + 0.05*0.5
    expect(byId.mid!.score).toBeCloseTo(0.7);
    expect(byId.mid!.band).toBe('medium');
    expect(byId.cold!.score).toBeCloseTo(0.16 + 0.1 + 0.025 + 0.025);
    expect(byId.cold!.band).toBe('low');
    expect(byId.hot!.dimensions).toEqual({ urgency: 1, importance: 1, efficiency: 1, energy: 0.5, trust: 1 });
  });

  it('puts a score of exactly 0.8 in the high band despite float error', () => {
    // 0.4*1 + 0.3*1 + 0.2*0.5 + 0.05*0 + 0.05*0 is 0.7999999999999999 in plain float arithmetic.
    const t = task('t', 100, { deadline: BigInt(NOW / 1000), metadata: [['cam.energy', '0']] });
    const r = rankIds([queued(t, 0, 0)]);
    expect(r.order[0]!.score).toBe(0.8);
    expect(r.order[0]!.band).toBe('high');
  });

  it('ignores (and reports) metadata hints that are not numbers in 0.0-1.0', () => {
    const ignored: string[] = [];
    const r = rank([queued(task('t', 10, { metadata: [['cam.energy', 'lots']] }))], [], {
      weights: DEFAULT_WEIGHTS,
      nowMs: NOW,
      ignoredHints: ignored,
    });
    expect(r.order[0]!.dimensions.energy).toBe(0.5);
    expect(ignored).toEqual(['t: cam.energy=lots']);
  });
});

describe('order', () => {
  it('ranks best first, ties by earlier enqueue, then id', () => {
    const r = rankIds([
      queued(task('b', 40), 5),
      queued(task('a', 40), 5),
      queued(task('early', 40), 1),
      queued(task('top', 90), 9),
    ]);
    expect(r.order.map((x) => x.taskId)).toEqual(['top', 'early', 'a', 'b']);
  });

  it('never puts a task before a queued dependency, and lifts the dependency to its dependent', () => {
    const r = rankIds([
      queued(task('mid', 50), 1),
      queued(task('urgent', 100, { dependsOn: ['blocker'] }), 2),
      queued(task('blocker', 1), 3),
      queued(task('low', 5), 4),
    ]);
    expect(r.order.map((x) => x.taskId)).toEqual(['blocker', 'urgent', 'mid', 'low']);
    // The reported score stays the task's own.
    expect(r.order[0]!.score).toBeLessThan(r.order[2]!.score);
  });

  it('orders a dependency chain and ignores dependencies outside the queue', () => {
    const r = rankIds([
      queued(task('c', 90, { dependsOn: ['b', 'gone'] })),
      queued(task('b', 10, { dependsOn: ['a'] })),
      queued(task('a', 20)),
      queued(task('x', 50)),
    ]);
    expect(r.order.map((x) => x.taskId)).toEqual(['a', 'b', 'c', 'x']);
  });

  it('refuses a dependency cycle and names it', () => {
    const e = thrown(() =>
      rankIds([
        queued(task('a', 1, { dependsOn: ['b'] })),
        queued(task('b', 1, { dependsOn: ['c'] })),
        queued(task('c', 1, { dependsOn: ['a'] })),
        queued(task('d', 1, { dependsOn: ['a'] })),
      ]),
    );
    expect(e.tag).toBe('invalid-argument');
    expect(e.val).toMatch(/^dependency cycle: /);
    const names = e.val.replace('dependency cycle: ', '').split(' -> ');
    expect(names[0]).toBe(names.at(-1));
    expect(new Set(names)).toEqual(new Set(['a', 'b', 'c']));
    expect(thrown(() => rankIds([queued(task('s', 1, { dependsOn: ['s'] }))])).val).toBe(
      'dependency cycle: s -> s',
    );
  });

  it('ranks 1,000 tasks with random dependencies respecting every edge', () => {
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const q: QueuedTask[] = [];
    for (let i = 0; i < 1000; i++) {
      const deps = i > 10 && rnd() < 0.3 ? [`t${Math.floor(rnd() * i)}`] : [];
      q.push(queued(task(`t${i}`, Math.floor(rnd() * 101), { dependsOn: deps }), i, rnd()));
    }
    const r = rankIds(q);
    const pos = new Map(r.order.map((x, i) => [x.taskId, i]));
    expect(pos.size).toBe(1000);
    for (const { task: t } of q)
      for (const d of t.dependsOn) expect(pos.get(d)!).toBeLessThan(pos.get(t.id)!);
  });
});

describe('preemption', () => {
  it('preempts the lowest-priority running task when a waiting task has >= 2x its priority', () => {
    const r = rankIds(
      [queued(task('w90', 90)), queued(task('w30', 30)), queued(task('w41', 41))],
      [running(task('r20', 20)), running(task('r40', 40)), running(task('r45', 45))],
    );
    expect(r.preemptions).toEqual([
      { waitingTaskId: 'w90', runningTaskId: 'r20', reason: 'priority 90 >= 2 x 20' },
    ]);
  });

  it('preempts at most once per running task, matching waiting tasks in ranking order', () => {
    const r = rankIds(
      [queued(task('a', 100)), queued(task('b', 80)), queued(task('c', 60))],
      [running(task('x', 10)), running(task('y', 40))],
    );
    expect(r.preemptions.map((p) => [p.waitingTaskId, p.runningTaskId])).toEqual([
      ['a', 'x'],
      ['b', 'y'],
    ]);
  });

  it('does not let a task preempt while a dependency is still queued or running, nor equal zeros swap', () => {
    const r = rankIds(
      [queued(task('dep-running', 100, { dependsOn: ['r'] })), queued(task('zero', 0))],
      [running(task('r', 10)), running(task('z', 0))],
    );
    expect(r.preemptions).toEqual([]);
  });
});

describe('validation', () => {
  it('refuses duplicates, priority > 100, bad trust, and a task both queued and running', () => {
    expect(thrown(() => rankIds([queued(task('a', 1)), queued(task('a', 2))])).val).toContain('twice');
    expect(thrown(() => rankIds([queued(task('a', 101))])).val).toContain('priority must be 0-100');
    expect(thrown(() => rankIds([queued(task('a', 1), 0, Number.NaN)])).val).toContain('trust');
    expect(thrown(() => rankIds([queued(task('a', 1), 0, 1.5)])).val).toContain('trust');
    expect(thrown(() => rankIds([queued(task('a', 1))], [running(task('a', 1))])).val).toContain(
      'both queued and running',
    );
    expect(thrown(() => rankIds([queued(task('', 1))])).val).toContain('empty task id');
    expect(thrown(() => rankIds([queued(task('x'.repeat(257), 1))])).val).toContain('256 bytes');
  });

  it('normalises weights and refuses negative, non-finite or all-zero weights', () => {
    expect(normalizeWeights({ urgency: 2, importance: 2, efficiency: 0, energy: 0, trust: 0 })).toEqual({
      urgency: 0.5,
      importance: 0.5,
      efficiency: 0,
      energy: 0,
      trust: 0,
    });
    const zero = { urgency: 0, importance: 0, efficiency: 0, energy: 0, trust: 0 };
    expect(thrown(() => normalizeWeights(zero)).val).toContain('zero');
    expect(thrown(() => normalizeWeights({ ...zero, urgency: -1, trust: 2 })).val).toContain('urgency');
    expect(thrown(() => normalizeWeights({ ...zero, energy: Number.POSITIVE_INFINITY })).val).toContain(
      'energy',
    );
  });
});
