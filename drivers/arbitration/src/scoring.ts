/**
 * Agent selection as a pure function: which registered agent should run a task, how sure we are, and why.
 * The arbitration component (index.ts) feeds it the registry and records what it returns.
 *
 * Rules (services.wit, CAM-OS): an agent is a candidate when it offers every requirement (capability
 * match is a gate, so every candidate's capability-match is 1.0) and its load is at most 0.9. Candidates
 * are scored by a weighted sum of performance, availability (1 - load) and trust; ties go to the lower
 * load, then the smaller id, so the same registry always gives the same answer.
 */

export interface AgentView {
  id: string;
  capabilities: string[];
  metadata: Array<[string, string]>;
  load: number;
  performance: number;
  trust: number;
}

export interface CandidateScore {
  agentId: string;
  score: number;
  capabilityMatch: number;
  performance: number;
  availability: number;
  trust: number;
}

export interface SelectionWeights {
  performance: number;
  availability: number;
  trust: number;
}

export const DEFAULT_SELECTION_WEIGHTS: Readonly<SelectionWeights> = Object.freeze({
  performance: 0.4,
  availability: 0.35,
  trust: 0.25,
});

export const MAX_LOAD = 0.9;
export const MAX_REPORTED_CANDIDATES = 16;

export type Selection =
  | {
      ok: true;
      agent: AgentView;
      confidence: number;
      reasoning: string;
      evidence: string[];
      candidates: CandidateScore[];
    }
  | { ok: false; tag: 'failed-precondition' | 'resource-exhausted'; message: string; evidence: string[] };

const round = (x: number, digits = 6) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};
const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);

function list(items: string[], max = 8): string {
  return items.length <= max
    ? items.join(', ')
    : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

export function normalizeSelectionWeights(w: SelectionWeights): SelectionWeights {
  let sum = 0;
  for (const k of ['performance', 'availability', 'trust'] as const) {
    const v = w[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw { tag: 'invalid-argument', val: `weight ${k} must be a finite number >= 0, got ${String(v)}` };
    }
    sum += v;
  }
  if (!(sum > 0)) throw { tag: 'invalid-argument', val: 'selection weights must not all be zero' };
  return { performance: w.performance / sum, availability: w.availability / sum, trust: w.trust / sum };
}

/**
 * Pick the agent for a task with `requirements` among `agents`. Confidence is the winner's score, reduced
 * by up to a quarter when the runner-up is within 0.1 of it (a near tie is a less certain choice).
 */
export function selectAgent(
  requirements: string[],
  agents: Iterable<AgentView>,
  weights: SelectionWeights = DEFAULT_SELECTION_WEIGHTS,
): Selection {
  const needed = [...new Set(requirements)];
  const capable: AgentView[] = [];
  let closest: { id: string; offered: number } | undefined;
  let total = 0;
  for (const a of agents) {
    total++;
    let offered = 0;
    for (let i = 0; i < needed.length; i++) if (a.capabilities.includes(needed[i]!)) offered++;
    if (offered === needed.length) capable.push(a);
    else if (!closest || offered > closest.offered || (offered === closest.offered && a.id < closest.id)) {
      closest = { id: a.id, offered };
    }
  }
  const reqText = needed.length > 0 ? `[${list(needed)}]` : 'nothing';
  if (capable.length === 0) {
    const evidence = [
      `task requires ${reqText}`,
      `${total} agent(s) registered, none offers every requirement`,
    ];
    const hint = closest ? `; closest: ${closest.id} offers ${closest.offered} of ${needed.length}` : '';
    return {
      ok: false,
      tag: 'failed-precondition',
      message: `no registered agent offers every requirement ${reqText}${total === 0 ? ' (no agents registered)' : hint}`,
      evidence,
    };
  }
  const overloaded = capable.filter((a) => !(a.load <= MAX_LOAD));
  const candidates = capable.filter((a) => a.load <= MAX_LOAD);
  const overloadedText = overloaded.sort((a, b) => b.load - a.load).map((a) => `${a.id} ${f2(a.load)}`);
  if (candidates.length === 0) {
    return {
      ok: false,
      tag: 'resource-exhausted',
      message: `all ${capable.length} agent(s) offering ${reqText} are above ${MAX_LOAD} load (${list(overloadedText)})`,
      evidence: [`task requires ${reqText}`, `capable but overloaded: ${list(overloadedText)}`],
    };
  }

  const scored = candidates.map((a) => {
    const availability = 1 - a.load;
    const score =
      weights.performance * a.performance + weights.availability * availability + weights.trust * a.trust;
    return { agent: a, score: round(score), availability };
  });
  scored.sort((x, y) => {
    if (y.score !== x.score) return y.score - x.score;
    if (x.agent.load !== y.agent.load) return x.agent.load - y.agent.load;
    return x.agent.id < y.agent.id ? -1 : x.agent.id > y.agent.id ? 1 : 0;
  });
  const best = scored[0]!;
  const second = scored[1];
  const margin = second ? best.score - second.score : 1;
  const confidence = round(best.score * (0.75 + 0.25 * Math.min(1, margin / 0.1)));

  const a = best.agent;
  const parts = [
    `assigned ${a.id}: offers ${needed.length === 0 ? 'what the task needs (no requirements)' : `all of ${reqText}`}`,
    `score ${f3(best.score)} (performance ${f2(a.performance)}, availability ${f2(best.availability)}, trust ${f2(a.trust)})`,
  ];
  if (second) {
    const b = second.agent;
    const diffs = [
      { name: 'performance', d: weights.performance * (a.performance - b.performance) },
      { name: 'availability', d: weights.availability * (best.availability - second.availability) },
      { name: 'trust', d: weights.trust * (a.trust - b.trust) },
    ]
      .filter((x) => x.d > 1e-9)
      .sort((x, y) => y.d - x.d);
    const why =
      diffs.length > 0
        ? `mainly on ${diffs
            .slice(0, 2)
            .map((x) => `${x.name} (+${f3(x.d)})`)
            .join(' and ')}`
        : 'on the tie-break (lower load, then id)';
    parts.push(`ahead of ${b.id} (${f3(second.score)}) ${why}`);
  } else {
    parts.push('the only capable agent at or below 0.9 load');
  }
  if (overloaded.length > 0) parts.push(`excluded above ${MAX_LOAD} load: ${list(overloadedText)}`);

  const evidence = [
    `task requires ${reqText}`,
    ...scored
      .slice(0, MAX_REPORTED_CANDIDATES)
      .map(
        (s, i) =>
          `${i === 0 ? 'chosen' : 'candidate'} ${s.agent.id}: score ${f3(s.score)}, performance ${f2(s.agent.performance)}, load ${f2(s.agent.load)}, trust ${f2(s.agent.trust)}`,
      ),
    ...overloadedText.map((t) => `excluded ${t.replace(' ', ': load ')} > ${MAX_LOAD}`),
  ];
  return {
    ok: true,
    agent: a,
    confidence,
    reasoning: parts.join('; '),
    evidence,
    candidates: scored.slice(0, MAX_REPORTED_CANDIDATES).map((s) => ({
      agentId: s.agent.id,
      score: s.score,
      capabilityMatch: 1,
      performance: s.agent.performance,
      availability: round(s.availability),
      trust: s.agent.trust,
    })),
  };
}
