/**
 * __NAME__: a scheduler (world `cam:kernel/scheduler-component`). It ranks the queue by a weighted sum of
 * five dimensions, each in 0..1:
 *
 *   urgency     deadline closeness (1 = due now or overdue, 0 = no deadline or more than an hour away)
 *   importance  priority / 255
 *   efficiency  1 / (1 + number of requirements)
 *   energy      1 / (1 + number of unfinished dependencies in the queue)
 *   trust       the queued task's trust, default 0.5
 *
 * Bands: high >= 0.6, medium >= 0.3, low below. A high-band waiting task preempts the running task with the
 * lowest priority when that priority is lower than its own. The weights are set with `set-weights` and kept
 * across hot-swaps (export/import-state).
 */
import { nowMs } from 'cam:kernel/clock@0.1.0';
import { log } from 'cam:kernel/log@0.1.0';
import { kernelError, lifecycle as makeLifecycle } from '@cam-os/sdk/guest';

interface Dimensions {
  urgency: number;
  importance: number;
  efficiency: number;
  energy: number;
  trust: number;
}
interface Task {
  id: string;
  priority: number;
  deadline?: bigint;
  requirements: string[];
  dependsOn: string[];
}
interface QueuedTask {
  task: Task;
  enqueuedAtMs: bigint;
  trust?: number;
}
interface RunningTask {
  task: Task;
  startedAtMs: bigint;
}

const DEFAULT_WEIGHTS: Dimensions = {
  urgency: 0.3,
  importance: 0.3,
  efficiency: 0.1,
  energy: 0.1,
  trust: 0.2,
};
const HOUR_MS = 3_600_000;
let weights: Dimensions = { ...DEFAULT_WEIGHTS };

export const lifecycle = makeLifecycle<Dimensions>({
  configKeys: [],
  exportState: () => weights,
  importState(state) {
    weights = checkWeights(state);
  },
});

function checkWeights(w: Dimensions): Dimensions {
  const keys = ['urgency', 'importance', 'efficiency', 'energy', 'trust'] as const;
  for (const k of keys) {
    const v = w[k];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1))
      throw kernelError('invalid-argument', `weight ${k} must be in 0..1`);
  }
  const sum = keys.reduce((s, k) => s + w[k], 0);
  if (sum <= 0) throw kernelError('invalid-argument', 'at least one weight must be positive');
  return {
    urgency: w.urgency,
    importance: w.importance,
    efficiency: w.efficiency,
    energy: w.energy,
    trust: w.trust,
  };
}

function dimensions(q: QueuedTask, now: bigint, queued: Set<string>): Dimensions {
  let urgency = 0;
  if (q.task.deadline !== undefined) {
    const left = Number(q.task.deadline - now);
    urgency = left <= 0 ? 1 : Math.max(0, 1 - left / HOUR_MS);
  }
  const blocking = q.task.dependsOn.filter((d) => queued.has(d)).length;
  return {
    urgency,
    importance: q.task.priority / 255,
    efficiency: 1 / (1 + q.task.requirements.length),
    energy: 1 / (1 + blocking),
    trust: q.trust ?? 0.5,
  };
}

export const scheduler = {
  rank(queue: QueuedTask[], running: RunningTask[]) {
    const now = nowMs();
    const ids = new Set(queue.map((q) => q.task.id));
    if (ids.size !== queue.length) throw kernelError('invalid-argument', 'queue holds a task id twice');
    const total = weights.urgency + weights.importance + weights.efficiency + weights.energy + weights.trust;
    const order = queue
      .map((q) => {
        const d = dimensions(q, now, ids);
        const score =
          (d.urgency * weights.urgency +
            d.importance * weights.importance +
            d.efficiency * weights.efficiency +
            d.energy * weights.energy +
            d.trust * weights.trust) /
          total;
        const band = score >= 0.6 ? ('high' as const) : score >= 0.3 ? ('medium' as const) : ('low' as const);
        return { taskId: q.task.id, score, band, dimensions: d, priority: q.task.priority };
      })
      .sort((a, b) => b.score - a.score || (a.taskId < b.taskId ? -1 : 1));
    const preemptions: Array<{ waitingTaskId: string; runningTaskId: string; reason: string }> = [];
    const victims = [...running].sort((a, b) => a.task.priority - b.task.priority);
    for (const r of order) {
      if (r.band !== 'high') break;
      const victim = victims[0];
      if (!victim || victim.task.priority >= r.priority) break;
      victims.shift();
      preemptions.push({
        waitingTaskId: r.taskId,
        runningTaskId: victim.task.id,
        reason: `high-band task (score ${r.score.toFixed(2)}, priority ${r.priority}) outranks running priority ${victim.task.priority}`,
      });
    }
    log('debug', 'ranked', [['tasks', String(order.length)]]);
    return {
      order: order.map(({ priority: _p, ...rest }) => rest),
      preemptions,
    };
  },
  setWeights(w: Dimensions): Dimensions {
    weights = checkWeights(w);
    log(
      'info',
      'weights set',
      Object.entries(weights).map(([k, v]) => [k, String(v)] as [string, string]),
    );
    return weights;
  },
  getWeights(): Dimensions {
    return weights;
  },
};
