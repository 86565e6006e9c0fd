/**
 * The triple-helix ranking, as pure functions: the scheduler component (index.ts) wraps them, and unit tests
 * and benchmarks run them directly in Node. Written for SpiderMonkey's interpreter inside wasm, where every
 * allocation and closure is paid for: plain loops, integer keys, one sort, no libraries.
 *
 * Values have the shapes jco gives WIT values in JS (records as camelCase objects, u64 as bigint, options
 * as value-or-undefined, enums as strings); errors are thrown as `kernel-error` variants `{ tag, val }`.
 */

export type TaskType =
  | 'unspecified'
  | 'arbitration'
  | 'collaboration'
  | 'routing'
  | 'analysis'
  | 'security'
  | 'memory'
  | 'policy';

export interface Task {
  id: string;
  description: string;
  requirements: string[];
  metadata: Array<[string, string]>;
  priority: number;
  deadline?: bigint | null;
  taskType: TaskType;
  agentId?: string | null;
  dependsOn: string[];
  tpmIdentity?: unknown;
}

export interface QueuedTask {
  task: Task;
  enqueuedAtMs: bigint;
  trust?: number | null;
}

export interface RunningTask {
  task: Task;
  startedAtMs: bigint;
}

export interface Dimensions {
  urgency: number;
  importance: number;
  efficiency: number;
  energy: number;
  trust: number;
}

export type Band = 'high' | 'medium' | 'low';

export interface RankedTask {
  taskId: string;
  score: number;
  band: Band;
  dimensions: Dimensions;
}

export interface Preemption {
  waitingTaskId: string;
  runningTaskId: string;
  reason: string;
}

export interface Ranking {
  order: RankedTask[];
  preemptions: Preemption[];
}

export interface KernelErrorValue {
  tag: 'invalid-argument' | 'failed-precondition' | 'resource-exhausted' | 'unimplemented' | 'internal';
  val: string;
}

/** CAM-OS's defaults. */
export const DEFAULT_WEIGHTS: Readonly<Dimensions> = Object.freeze({
  urgency: 0.4,
  importance: 0.3,
  efficiency: 0.2,
  energy: 0.05,
  trust: 0.05,
});

export const DIMENSION_NAMES = ['urgency', 'importance', 'efficiency', 'energy', 'trust'] as const;

/** Metadata entries a submitter may set to state a task's expected efficiency / energy friendliness. */
export const EFFICIENCY_HINT = 'cam.efficiency';
export const ENERGY_HINT = 'cam.energy';

const TYPE_FACTOR: Record<string, number> = {
  unspecified: 1.0,
  arbitration: 1.2,
  collaboration: 1.1,
  routing: 0.9,
  analysis: 0.8,
  security: 1.0,
  memory: 1.0,
  policy: 1.0,
};

const HOUR_MS = 3_600_000;
const MAX_ID_BYTES = 256;
const MAX_DEPENDENCIES = 256;
/** Sort keys pack three ranks below n into one double: n^3 must stay below 2^53. */
export const MAX_QUEUE = 100_000;

export function invalid(message: string): KernelErrorValue {
  return { tag: 'invalid-argument', val: message };
}

/** UTF-8 length of a (well-formed) string without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Urgency from a deadline in unix SECONDS; `now` in unix ms. */
export function urgencyOf(deadline: bigint | null | undefined, nowMs: number): number {
  if (deadline === undefined || deadline === null) return 0.4;
  const left = Number(deadline) * 1000 - nowMs;
  if (left <= HOUR_MS) return 1.0;
  if (left <= 6 * HOUR_MS) return 0.9;
  if (left <= 24 * HOUR_MS) return 0.7;
  return 0.4;
}

export function importanceOf(priority: number, taskType: string): number {
  const factor = TYPE_FACTOR[taskType];
  if (factor === undefined) throw invalid(`unknown task type '${taskType}'`);
  const v = (priority / 100) * factor;
  return Math.min(v, 1);
}

/** A 0.0-1.0 hint from metadata, or 0.5 when absent or unusable (the caller records unusable ones). */
function hint(metadata: Array<[string, string]>, key: string, bad: string[], taskId: string): number {
  let raw: string | undefined;
  for (let i = 0; i < metadata.length; i++) {
    const e = metadata[i]!;
    // A repeated key keeps its last value (types.wit).
    if (e[0] === key) raw = e[1];
  }
  if (raw === undefined) return 0.5;
  const v = raw.trim() === '' ? Number.NaN : Number(raw);
  if (!(v >= 0 && v <= 1)) {
    bad.push(`${taskId}: ${key}=${raw.length > 20 ? `${raw.slice(0, 20)}…` : raw}`);
    return 0.5;
  }
  return v;
}

export function bandOf(score: number): Band {
  if (score >= 0.8) return 'high';
  if (score >= 0.5) return 'medium';
  return 'low';
}

/**
 * Validates weights and returns them normalised to sum to 1.0. Refuses (rather than clamps) anything
 * non-finite or negative, and an all-zero set, since no ranking can be derived from it.
 */
export function normalizeWeights(w: Dimensions): Dimensions {
  if (w === null || typeof w !== 'object') throw invalid('weights must be a dimensions record');
  let sum = 0;
  for (const name of DIMENSION_NAMES) {
    const v = w[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw invalid(`weight ${name} must be a finite number >= 0, got ${String(v)}`);
    }
    sum += v;
  }
  if (!(sum > 0)) throw invalid('weights must not all be zero');
  return {
    urgency: w.urgency / sum,
    importance: w.importance / sum,
    efficiency: w.efficiency / sum,
    energy: w.energy / sum,
    trust: w.trust / sum,
  };
}

function checkTask(task: Task, where: string): void {
  if (task === null || typeof task !== 'object') throw invalid(`${where} has no task`);
  const id = task.id;
  if (typeof id !== 'string' || id.length === 0) throw invalid(`${where} has an empty task id`);
  if (id.length * 3 > MAX_ID_BYTES && utf8Length(id) > MAX_ID_BYTES) {
    throw invalid(`${where}: task id is longer than ${MAX_ID_BYTES} bytes`);
  }
  const p = task.priority;
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 100) {
    throw invalid(`task ${id}: priority must be 0-100, got ${String(p)}`);
  }
  if (!Array.isArray(task.dependsOn) || task.dependsOn.length > MAX_DEPENDENCIES) {
    throw invalid(`task ${id}: depends-on must be a list of at most ${MAX_DEPENDENCIES} ids`);
  }
}

/** Finds one cycle among the `stuck` tasks (in-degree never reached zero) and names it. */
function describeCycle(ids: string[], deps: Array<number[] | undefined>, stuck: boolean[]): string {
  // Every stuck node has a stuck dependency, so walking dependencies from any stuck node must revisit one.
  let start = stuck.indexOf(true);
  const seenAt = new Map<number, number>();
  const path: number[] = [];
  while (!seenAt.has(start)) {
    seenAt.set(start, path.length);
    path.push(start);
    const list = deps[start] ?? [];
    let next = -1;
    for (let i = 0; i < list.length; i++) {
      if (stuck[list[i]!]) {
        next = list[i]!;
        break;
      }
    }
    start = next;
  }
  const cycle = path.slice(seenAt.get(start)!).reverse();
  cycle.push(cycle[0]!);
  // Reversed so that each arrow reads "must run before".
  return cycle.map((i) => ids[i]).join(' -> ');
}

/**
 * Dense rank of each value (equal values share a rank; best = 0). Sorting is done comparator-free on a
 * typed array: in SpiderMonkey's interpreter a comparator callback costs more than the rest of the ranking.
 */
function denseRanks(values: number[], descending: boolean): number[] {
  const sorted = Float64Array.from(values).sort();
  const rankOf = new Map<number, number>();
  let distinct = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (i === 0 || sorted[i] !== sorted[i - 1]) rankOf.set(sorted[i]!, distinct++);
  }
  const out: number[] = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const r = rankOf.get(values[i]!)!;
    out[i] = descending ? distinct - 1 - r : r;
  }
  return out;
}

export interface RankOptions {
  weights: Dimensions;
  nowMs: number;
  /** Receives "task: hint=value" for each metadata hint that was not a number in 0.0-1.0 (ignored). */
  ignoredHints?: string[];
}

/**
 * Rank the whole queue. Best first by weighted score (ties: earlier enqueue, then id), except that a task
 * never precedes a queued dependency, and a dependency inherits the rank of its best dependent, so that
 * whatever blocks an urgent task runs as early as that task would have (no priority inversion).
 * Dependencies outside the queue (committed, finished or running) do not constrain the order.
 */
export function rank(queue: QueuedTask[], running: RunningTask[], opts: RankOptions): Ranking {
  if (!Array.isArray(queue)) throw invalid('queue must be a list');
  if (!Array.isArray(running)) throw invalid('running must be a list');
  const n = queue.length;
  if (n > MAX_QUEUE) {
    throw {
      tag: 'resource-exhausted',
      val: `a queue of ${n} tasks is more than the ${MAX_QUEUE} one call ranks`,
    };
  }
  const w = opts.weights;
  const ignored = opts.ignoredHints ?? [];
  const index = new Map<string, number>();
  const ids: string[] = new Array(n);
  const scores: number[] = new Array(n);
  const enq: number[] = new Array(n);
  const ranked: RankedTask[] = new Array(n);

  for (let i = 0; i < n; i++) {
    const q = queue[i]!;
    const task = q?.task;
    checkTask(task, `queue[${i}]`);
    const id = task.id;
    if (index.has(id)) throw invalid(`task ${id} appears twice in the queue`);
    index.set(id, i);
    ids[i] = id;
    let trust = 0.5;
    if (q.trust !== undefined && q.trust !== null) {
      trust = q.trust;
      if (typeof trust !== 'number' || !(trust >= 0 && trust <= 1)) {
        throw invalid(`task ${id}: trust must be a finite number in 0.0-1.0, got ${String(trust)}`);
      }
    }
    const dims: Dimensions = {
      urgency: urgencyOf(task.deadline, opts.nowMs),
      importance: importanceOf(task.priority, task.taskType),
      efficiency: hint(task.metadata, EFFICIENCY_HINT, ignored, id),
      energy: hint(task.metadata, ENERGY_HINT, ignored, id),
      trust,
    };
    const raw =
      w.urgency * dims.urgency +
      w.importance * dims.importance +
      w.efficiency * dims.efficiency +
      w.energy * dims.energy +
      w.trust * dims.trust;
    // Rounded so that band edges (0.8, 0.5) are not missed by a float error in the last bit.
    const score = Math.round(raw * 1e12) / 1e12;
    scores[i] = score;
    enq[i] = Number(q.enqueuedAtMs);
    ranked[i] = { taskId: id, score, band: bandOf(score), dimensions: dims };
  }

  const runningIds = new Set<string>();
  for (let i = 0; i < running.length; i++) {
    const r = running[i]!;
    checkTask(r?.task, `running[${i}]`);
    const id = r.task.id;
    if (runningIds.has(id)) throw invalid(`task ${id} appears twice in the running set`);
    if (index.has(id)) throw invalid(`task ${id} is both queued and running`);
    runningIds.add(id);
  }

  // Own rank: position in a plain best-first sort (score desc, enqueue asc, id asc).
  const scoreRank = denseRanks(scores, true);
  const enqRank = denseRanks(enq, false);
  const sortedIds = ids.slice().sort(); // default sort: UTF-16 code units, like `<` on strings
  const idRank = new Map<string, number>();
  for (let r = 0; r < n; r++) idRank.set(sortedIds[r]!, r);
  const byId: number[] = new Array(n); // id rank -> queue index
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = idRank.get(ids[i]!)!;
    byId[r] = i;
    keys[i] = (scoreRank[i]! * n + enqRank[i]!) * n + r;
  }
  keys.sort();
  const byScore: number[] = new Array(n);
  const own: number[] = new Array(n);
  for (let r = 0; r < n; r++) {
    const i = byId[keys[r]! % n]!;
    byScore[r] = i;
    own[i] = r;
  }

  // Dependency edges within the queue, as lists only for the tasks that have any. `blocked` marks tasks
  // that cannot start yet (a dependency is still queued or running); only unblocked tasks may preempt.
  const deps: Array<number[] | undefined> = new Array(n);
  const dependents: Array<number[] | undefined> = new Array(n);
  const indegree: number[] = new Array(n).fill(0);
  const blocked: boolean[] = new Array(n).fill(false);
  let edges = 0;
  for (let i = 0; i < n; i++) {
    const list = queue[i]!.task.dependsOn;
    for (let k = 0; k < list.length; k++) {
      const dep = list[k]!;
      if (dep === ids[i]) throw invalid(`dependency cycle: ${dep} -> ${dep}`);
      const j = index.get(dep);
      if (j === undefined) {
        if (runningIds.has(dep)) blocked[i] = true;
        continue;
      }
      blocked[i] = true;
      const own = deps[i];
      if (own) own.push(j);
      else deps[i] = [j];
      const back = dependents[j];
      if (back) back.push(i);
      else dependents[j] = [i];
      indegree[i]!++;
      edges++;
    }
  }

  const order: RankedTask[] = new Array(n);
  if (edges === 0) {
    for (let r = 0; r < n; r++) order[r] = ranked[byScore[r]!]!;
  } else {
    // Topological order (Kahn) with each task's level (longest chain of queued dependencies below it);
    // leftovers mean a cycle.
    const topo: number[] = [];
    const level: number[] = new Array(n).fill(0);
    const deg = indegree.slice();
    for (let i = 0; i < n; i++) if (deg[i] === 0) topo.push(i);
    for (let h = 0; h < topo.length; h++) {
      const t = topo[h]!;
      const d = dependents[t];
      if (d === undefined) continue;
      for (let k = 0; k < d.length; k++) {
        const x = d[k]!;
        if (level[t]! + 1 > level[x]!) level[x] = level[t]! + 1;
        if (--deg[x]! === 0) topo.push(x);
      }
    }
    if (topo.length < n) {
      const stuck = deg.map((x) => x > 0);
      throw invalid(`dependency cycle: ${describeCycle(ids, deps, stuck)}`);
    }
    // Inherited rank: the best (lowest) own rank among a task and everything that depends on it.
    const eff = own.slice();
    for (let h = n - 1; h >= 0; h--) {
      const t = topo[h]!;
      const d = dependents[t];
      if (d === undefined) continue;
      for (let k = 0; k < d.length; k++) if (eff[d[k]!]! < eff[t]!) eff[t] = eff[d[k]!]!;
    }
    // Sorting by (inherited rank, level, own rank) is a topological order: along an edge the inherited
    // rank never gets better, and where it is equal the level grows. It groups each task with whatever
    // must run before it, and keeps everything else best first.
    const order2 = new Float64Array(n);
    for (let i = 0; i < n; i++) order2[i] = (eff[i]! * n + level[i]!) * n + own[i]!;
    order2.sort();
    for (let r = 0; r < n; r++) order[r] = ranked[byScore[order2[r]! % n]!]!;
  }

  return { order, preemptions: preemptions(order, queue, index, blocked, running) };
}

/**
 * A waiting task preempts the lowest-priority running task when its priority is >= 2x that task's (and
 * strictly higher, so that two priority-0 tasks do not swap forever). Waiting tasks are considered in
 * ranking order, each running task is preempted at most once, and a task that cannot start yet (a
 * dependency still queued or running) never preempts.
 */
function preemptions(
  order: RankedTask[],
  queue: QueuedTask[],
  index: Map<string, number>,
  blocked: boolean[],
  running: RunningTask[],
): Preemption[] {
  if (running.length === 0) return [];
  // Lowest priority first; among equals the most recently started (least work lost), then by id.
  const pool = running.slice().sort((a, b) => {
    const d = a.task.priority - b.task.priority;
    if (d !== 0) return d;
    const s = Number(b.startedAtMs) - Number(a.startedAtMs);
    if (s !== 0) return s;
    return a.task.id < b.task.id ? -1 : a.task.id > b.task.id ? 1 : 0;
  });
  const out: Preemption[] = [];
  let next = 0;
  for (let k = 0; k < order.length && next < pool.length; k++) {
    const i = index.get(order[k]!.taskId)!;
    if (blocked[i]) continue;
    const wp = queue[i]!.task.priority;
    const victim = pool[next]!;
    const rp = victim.task.priority;
    if (wp >= 2 * rp && wp > rp) {
      out.push({
        waitingTaskId: order[k]!.taskId,
        runningTaskId: victim.task.id,
        reason: `priority ${wp} >= 2 x ${rp}`,
      });
      next++;
    }
  }
  return out;
}
