/**
 * A model router (world `cam:kernel/arbitration-component`): provider agents register the models they
 * serve (capabilities) with their price and latency in metadata, and `arbitrate` picks the provider for a
 * task by cost and latency within the caller's budgets.
 *
 * Agent metadata: `cost-per-1k` (price per 1,000 tokens), `latency-ms` (typical latency), `provider`.
 * Request context: `optimize` = cost | latency | balanced (default: config `default-optimize`),
 * `max-cost-per-1k`, `max-latency-ms` (budgets; agents outside them are not candidates).
 *
 * Score of a candidate, 0..1: (w_cost * cheapest/cost + w_latency * fastest/latency) * availability * trust,
 * with (w_cost, w_latency) = (0.8, 0.2) for cost, (0.2, 0.8) for latency, (0.5, 0.5) balanced, and
 * availability = 1 - load. Agents, assignments and decisions are durable (cam:kernel/kv); `commit` adds 0.1
 * to the chosen agent's load and `rollback` removes it.
 */
import { nowMs } from 'cam:kernel/clock@0.1.0';
import { batch, get, scan } from 'cam:kernel/kv@0.1.0';
import { log } from 'cam:kernel/log@0.1.0';
import { decodeJson, encodeJson, kernelError, lifecycle as makeLifecycle } from '@cam-os/sdk/guest';

type StringMap = Array<[string, string]>;
type Optimize = 'cost' | 'latency' | 'balanced';
interface Agent {
  id: string;
  capabilities: string[];
  metadata: StringMap;
  load: number;
  performance: number;
  trust: number;
  registeredAtMs: bigint;
  updatedAtMs: bigint;
  tpmIdentity?: unknown;
}
interface Task {
  id: string;
  requirements: string[];
}
interface Candidate {
  agentId: string;
  score: number;
  capabilityMatch: number;
  performance: number;
  availability: number;
  trust: number;
}
interface Decision {
  taskId: string;
  agentId: string;
  optimize: Optimize;
  candidates: Candidate[];
  reasoning: string;
  confidence: number;
}

const WEIGHTS: Record<Optimize, [number, number]> = {
  cost: [0.8, 0.2],
  latency: [0.2, 0.8],
  balanced: [0.5, 0.5],
};
let defaultOptimize: Optimize = 'balanced';
let decisions = 0;

function optimizeOf(v: string): Optimize {
  if (v !== 'cost' && v !== 'latency' && v !== 'balanced')
    throw kernelError('invalid-argument', `optimize must be cost, latency or balanced, not '${v}'`);
  return v;
}

export const lifecycle = makeLifecycle<{ decisions: number }>({
  configKeys: ['default-optimize'],
  init(config) {
    if (config['default-optimize'] !== undefined) defaultOptimize = optimizeOf(config['default-optimize']);
  },
  exportState: () => ({ decisions }),
  importState(s) {
    decisions = s.decisions;
  },
});

const meta = (m: StringMap, k: string) => m.find(([key]) => key === k)?.[1];

function num(m: StringMap, k: string, what: string): number {
  const v = Number(meta(m, k));
  if (!Number.isFinite(v) || v <= 0)
    throw kernelError('invalid-argument', `${what}: metadata '${k}' must be a positive number`);
  return v;
}

function load(id: string): Agent {
  const raw = get('agents', id);
  if (raw === undefined) throw kernelError('not-found', `no agent '${id}'`);
  return decodeJson<Agent>(raw);
}

function save(a: Agent): Agent {
  batch('agents', [{ tag: 'put', val: { key: a.id, value: encodeJson(a) } }]);
  return a;
}

function unit(name: string, v: number | undefined): number | undefined {
  if (v !== undefined && !(v >= 0 && v <= 1))
    throw kernelError('invalid-argument', `${name} must be in 0..1`);
  return v;
}

export const arbitration = {
  registerAgent(r: { agentId: string; capabilities: string[]; metadata: StringMap }): Agent {
    if (!/^[a-z0-9][a-z0-9._-]{0,127}$/.test(r.agentId))
      throw kernelError('invalid-argument', 'agent-id must be 1-128 of a-z, 0-9, . _ -');
    if (get('agents', r.agentId) !== undefined)
      throw kernelError('already-exists', `agent '${r.agentId}' is registered`);
    num(r.metadata, 'cost-per-1k', r.agentId);
    num(r.metadata, 'latency-ms', r.agentId);
    const now = nowMs();
    log('info', 'agent registered', [['agent', r.agentId]]);
    return save({
      id: r.agentId,
      capabilities: r.capabilities,
      metadata: r.metadata,
      load: 0,
      performance: 1,
      trust: 1,
      registeredAtMs: now,
      updatedAtMs: now,
    });
  },
  updateAgent(u: { agentId: string; load?: number; performance?: number; trust?: number }): Agent {
    const a = load(u.agentId);
    a.load = unit('load', u.load) ?? a.load;
    a.performance = unit('performance', u.performance) ?? a.performance;
    a.trust = unit('trust', u.trust) ?? a.trust;
    a.updatedAtMs = nowMs();
    return save(a);
  },
  getAgent(id: string): Agent {
    return load(id);
  },
  listAgents(): Agent[] {
    return scan('agents', '', undefined, 10_000, false).map((e) => decodeJson<Agent>(e.value));
  },
  arbitrate(req: { task: Task; context: StringMap; caller: { id: string } }) {
    const optimize = optimizeOf(meta(req.context, 'optimize') ?? defaultOptimize);
    const maxCost = Number(meta(req.context, 'max-cost-per-1k') ?? Infinity);
    const maxLatency = Number(meta(req.context, 'max-latency-ms') ?? Infinity);
    if (Number.isNaN(maxCost) || Number.isNaN(maxLatency))
      throw kernelError('invalid-argument', 'budgets must be numbers');
    const all = arbitration.listAgents();
    const capable = all.filter((a) => req.task.requirements.every((r) => a.capabilities.includes(r)));
    if (capable.length === 0)
      throw kernelError('not-found', `no agent serves ${req.task.requirements.join(' + ') || 'anything'}`);
    const inBudget = capable.filter(
      (a) =>
        num(a.metadata, 'cost-per-1k', a.id) <= maxCost &&
        num(a.metadata, 'latency-ms', a.id) <= maxLatency &&
        a.load < 1,
    );
    if (inBudget.length === 0)
      throw kernelError('resource-exhausted', 'every capable agent is over budget or fully loaded');
    const cheapest = Math.min(...inBudget.map((a) => num(a.metadata, 'cost-per-1k', a.id)));
    const fastest = Math.min(...inBudget.map((a) => num(a.metadata, 'latency-ms', a.id)));
    const [wc, wl] = WEIGHTS[optimize];
    const candidates: Candidate[] = inBudget
      .map((a) => {
        const availability = 1 - a.load;
        const fit =
          wc * (cheapest / num(a.metadata, 'cost-per-1k', a.id)) +
          wl * (fastest / num(a.metadata, 'latency-ms', a.id));
        return {
          agentId: a.id,
          score: fit * availability * a.trust,
          capabilityMatch: 1,
          performance: a.performance,
          availability,
          trust: a.trust,
        };
      })
      .sort((x, y) => y.score - x.score || (x.agentId < y.agentId ? -1 : 1));
    const best = candidates[0]!;
    const runnerUp = candidates[1];
    const confidence = runnerUp ? Math.min(1, 0.5 + (best.score - runnerUp.score)) : 1;
    const chosen = all.find((a) => a.id === best.agentId)!;
    const reasoning = `${optimize}: ${best.agentId} scores ${best.score.toFixed(3)} of ${candidates.length} candidate(s) within budget`;
    decisions++;
    const timestampMs = nowMs();
    const traceId = `${req.task.id}.${timestampMs}.${decisions}`;
    const decision: Decision = {
      taskId: req.task.id,
      agentId: best.agentId,
      optimize,
      candidates,
      reasoning,
      confidence,
    };
    batch('decisions', [{ tag: 'put', val: { key: traceId, value: encodeJson(decision) } }]);
    return {
      taskId: req.task.id,
      assignedAgent: best.agentId,
      provider: meta(chosen.metadata, 'provider') ?? best.agentId,
      confidence,
      reasoning,
      metadata: [['optimize', optimize]] as StringMap,
      traceId,
      timestampMs,
      candidates,
      tpmProof: undefined,
    };
  },
  commit(task: Task, agentId: string): string {
    const a = load(agentId);
    if (get('assignments', task.id) !== undefined)
      throw kernelError('already-exists', `task '${task.id}' is already committed`);
    a.load = Math.min(1, Math.round((a.load + 0.1) * 10) / 10);
    a.updatedAtMs = nowMs();
    batch('agents', [{ tag: 'put', val: { key: a.id, value: encodeJson(a) } }]);
    batch('assignments', [{ tag: 'put', val: { key: task.id, value: encodeJson({ agentId }) } }]);
    return `commit.${task.id}.${agentId}`;
  },
  rollback(taskId: string, reason: string): void {
    const raw = get('assignments', taskId);
    if (raw === undefined) throw kernelError('not-found', `task '${taskId}' is not committed`);
    const a = load(decodeJson<{ agentId: string }>(raw).agentId);
    a.load = Math.max(0, Math.round((a.load - 0.1) * 10) / 10);
    batch('agents', [{ tag: 'put', val: { key: a.id, value: encodeJson(a) } }]);
    batch('assignments', [{ tag: 'delete', val: taskId }]);
    log('info', 'rolled back', [
      ['task', taskId],
      ['reason', reason],
    ]);
  },
  explain(traceId: string) {
    const raw = get('decisions', traceId);
    if (raw === undefined) throw kernelError('not-found', `no decision '${traceId}'`);
    const d = decodeJson<Decision>(raw);
    return {
      explanation: d.reasoning,
      confidence: d.confidence,
      evidence: d.candidates.map(
        (c) => `${c.agentId}: score ${c.score.toFixed(3)}, availability ${c.availability.toFixed(2)}`,
      ),
    };
  },
};
