/**
 * The arbitration component (world `cam:kernel/arbitration-component@0.1.0`): the agent registry, agent
 * selection for a task (scoring.ts), and the durable record of every decision, commit and rollback.
 *
 * Storage (this component's private kv partitions):
 *   agents     <agent id>          -> agent record (JSON)
 *   decisions  <trace id>          -> decision record: result, reasoning, evidence (JSON)
 *              #seq                -> last decision number
 *   tasks      c/<task id>         -> the task's current commit (present while committed)
 *              k/<commit id>       -> commit history: who, when, and the rollback if any
 *              l/<16-digit seq>    -> the task log, one entry per commit or rollback, in order
 *              #seq                -> last log / commit number
 * Each operation is one kv batch in one partition, so it happens entirely or not at all.
 *
 * The registry and the sequence numbers are cached in memory after first use (not in `init`: during a
 * hot-swap the new instance is initialised while the old one still writes). The component assumes it is
 * the only writer of its partitions, i.e. concurrency 1, as its manifest declares.
 *
 * Configuration (`init`): `weight.performance`, `weight.availability`, `weight.trust` (decimals >= 0,
 * normalised; defaults 0.4 / 0.35 / 0.25).
 */
import { nowMs } from 'cam:kernel/clock@0.1.0';
import { log } from 'cam:kernel/log@0.1.0';
import {
  type AgentView,
  type CandidateScore,
  DEFAULT_SELECTION_WEIGHTS,
  normalizeSelectionWeights,
  type SelectionWeights,
  selectAgent,
} from './scoring.js';
import {
  commitBatch,
  del,
  fromHex,
  getJson,
  getManyJson,
  type KvOp,
  lastStorageError,
  putJson,
  scanJson,
  toHex,
} from './store.js';

// ---------------------------------------------------------------------------------------------------------
// WIT shapes (as jco presents them)

type StringMap = Array<[string, string]>;

interface TpmIdentity {
  keyId: string;
  certificateChain: Uint8Array[];
  attestationData: Uint8Array;
  algorithm: string;
  createdAtMs: bigint;
  expiresAtMs?: bigint | null;
  attributes: StringMap;
}

interface Task {
  id: string;
  description: string;
  requirements: string[];
  metadata: StringMap;
  priority: number;
  deadline?: bigint | null;
  taskType: string;
  agentId?: string | null;
  dependsOn: string[];
  tpmIdentity?: TpmIdentity | null;
}

interface AgentRegistration {
  agentId: string;
  capabilities: string[];
  metadata: StringMap;
  tpmIdentity?: TpmIdentity | null;
}

interface Agent {
  id: string;
  capabilities: string[];
  metadata: StringMap;
  load: number;
  performance: number;
  trust: number;
  registeredAtMs: bigint;
  updatedAtMs: bigint;
  tpmIdentity?: TpmIdentity;
}

interface AgentUpdate {
  agentId: string;
  load?: number | null;
  performance?: number | null;
  trust?: number | null;
}

interface ArbitrationRequest {
  task: Task;
  policyId?: string | null;
  context: StringMap;
  caller: { id: string; tpmIdentity?: TpmIdentity | null };
}

// ---------------------------------------------------------------------------------------------------------
// Stored shapes

interface StoredTpm {
  keyId: string;
  chain: string[];
  attestation: string;
  algorithm: string;
  createdAtMs: number;
  expiresAtMs: number | null;
  attributes: StringMap;
}

interface StoredAgent extends AgentView {
  registeredAtMs: number;
  updatedAtMs: number;
  tpm: StoredTpm | null;
}

interface StoredDecision {
  traceId: string;
  taskId: string;
  agentId: string;
  provider: string;
  confidence: number;
  reasoning: string;
  evidence: string[];
  candidates: CandidateScore[];
  policyId: string | null;
  callerId: string;
  timestampMs: number;
}

interface StoredCommit {
  commitId: string;
  taskId: string;
  agentId: string;
  committedAtMs: number;
  task?: StoredTask;
  rollback?: { reason: string; atMs: number };
}

interface StoredTask {
  id: string;
  description: string;
  requirements: string[];
  metadata: StringMap;
  priority: number;
  deadline: number | null;
  taskType: string;
  agentId: string | null;
  dependsOn: string[];
}

const AGENTS = 'agents';
const DECISIONS = 'decisions';
const TASKS = 'tasks';
const SEQ = '#seq';
const STATE_FORMAT = 1;

const MAX_ID_BYTES = 256;
const MAX_LIST = 256;
const MAX_VALUE_BYTES = 4096;
const TRUST_NEW = 0.5;
const TRUST_WITH_TPM = 0.7;

// ---------------------------------------------------------------------------------------------------------
// Validation

function invalid(message: string): { tag: 'invalid-argument'; val: string } {
  return { tag: 'invalid-argument', val: message };
}

function utf8Length(s: string): number {
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

function checkString(what: string, v: string, maxBytes: number, allowEmpty = false): string {
  if (typeof v !== 'string') throw invalid(`${what} must be a string`);
  if (!allowEmpty && v.length === 0) throw invalid(`${what} must not be empty`);
  if (v.length * 3 > maxBytes && utf8Length(v) > maxBytes)
    throw invalid(`${what} is longer than ${maxBytes} bytes`);
  return v;
}

function checkList(what: string, v: string[], maxItems: number, maxBytes: number): string[] {
  if (!Array.isArray(v)) throw invalid(`${what} must be a list`);
  if (v.length > maxItems) throw invalid(`${what} has ${v.length} entries, at most ${maxItems} are allowed`);
  for (let i = 0; i < v.length; i++) checkString(`${what}[${i}]`, v[i]!, maxBytes);
  return v;
}

/** Validates a string-map and returns it with repeated keys collapsed (the last occurrence wins). */
function checkMap(what: string, v: StringMap): StringMap {
  if (!Array.isArray(v)) throw invalid(`${what} must be a list of pairs`);
  if (v.length > MAX_LIST) throw invalid(`${what} has ${v.length} entries, at most ${MAX_LIST} are allowed`);
  const seen = new Map<string, string>();
  for (let i = 0; i < v.length; i++) {
    const [k, val] = v[i]!;
    checkString(`${what} key`, k, MAX_ID_BYTES);
    checkString(`${what}[${k}]`, val, MAX_VALUE_BYTES, true);
    seen.set(k, val);
  }
  return seen.size === v.length ? v : [...seen];
}

function checkFraction(what: string, v: number): number {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1))
    throw invalid(`${what} must be a number in 0.0-1.0, got ${String(v)}`);
  return v;
}

function checkTask(task: Task): Task {
  if (task === null || typeof task !== 'object') throw invalid('task is missing');
  checkString('task id', task.id, MAX_ID_BYTES);
  if (!Number.isInteger(task.priority) || task.priority < 0 || task.priority > 100) {
    throw invalid(`task ${task.id}: priority must be 0-100, got ${String(task.priority)}`);
  }
  checkList(`task ${task.id} requirements`, task.requirements, MAX_LIST, MAX_ID_BYTES);
  checkList(`task ${task.id} depends-on`, task.dependsOn, MAX_LIST, MAX_ID_BYTES);
  checkString(`task ${task.id} description`, task.description, 64 * 1024, true);
  checkMap(`task ${task.id} metadata`, task.metadata);
  return task;
}

function storedTpm(t: TpmIdentity | null | undefined): StoredTpm | null {
  if (t === undefined || t === null) return null;
  checkString('tpm identity key id', t.keyId, MAX_ID_BYTES);
  return {
    keyId: t.keyId,
    chain: t.certificateChain.map(toHex),
    attestation: toHex(t.attestationData),
    algorithm: t.algorithm,
    createdAtMs: Number(t.createdAtMs),
    expiresAtMs: t.expiresAtMs === undefined || t.expiresAtMs === null ? null : Number(t.expiresAtMs),
    attributes: checkMap('tpm identity attributes', t.attributes),
  };
}

function witTpm(t: StoredTpm): TpmIdentity {
  return {
    keyId: t.keyId,
    certificateChain: t.chain.map(fromHex),
    attestationData: fromHex(t.attestation),
    algorithm: t.algorithm,
    createdAtMs: BigInt(t.createdAtMs),
    expiresAtMs: t.expiresAtMs === null ? undefined : BigInt(t.expiresAtMs),
    attributes: t.attributes,
  };
}

function witAgent(a: StoredAgent): Agent {
  const out: Agent = {
    id: a.id,
    capabilities: a.capabilities,
    metadata: a.metadata,
    load: a.load,
    performance: a.performance,
    trust: a.trust,
    registeredAtMs: BigInt(a.registeredAtMs),
    updatedAtMs: BigInt(a.updatedAtMs),
  };
  if (a.tpm) out.tpmIdentity = witTpm(a.tpm);
  return out;
}

function storedTask(t: Task): StoredTask {
  return {
    id: t.id,
    description: t.description,
    requirements: t.requirements,
    metadata: t.metadata,
    priority: t.priority,
    deadline: t.deadline === undefined || t.deadline === null ? null : Number(t.deadline),
    taskType: t.taskType,
    agentId: t.agentId ?? null,
    dependsOn: t.dependsOn,
  };
}

// ---------------------------------------------------------------------------------------------------------
// State

let initialized = false;
let weights: SelectionWeights = { ...DEFAULT_SELECTION_WEIGHTS };
let registry: Map<string, StoredAgent> | undefined;
let decisionSeq: number | undefined;
let taskSeq: number | undefined;
let decisions = 0;

function agents(): Map<string, StoredAgent> {
  if (registry) return registry;
  const map = new Map<string, StoredAgent>();
  let after: string | undefined;
  for (;;) {
    const page = scanJson<StoredAgent>(AGENTS, '', after, 1000);
    for (const [key, value] of page) map.set(key, value);
    if (page.length < 1000) break;
    after = page[page.length - 1]![0];
  }
  registry = map;
  return map;
}

function nextSeq(partition: string, current: number | undefined): number {
  return (current ?? getJson<number>(partition, SEQ) ?? 0) + 1;
}

function now(): number {
  return Number(nowMs());
}

function notFound(message: string): { tag: 'not-found'; val: string } {
  return { tag: 'not-found', val: message };
}

// ---------------------------------------------------------------------------------------------------------
// Exports

export const lifecycle = {
  init(config: StringMap): void {
    if (initialized) throw { tag: 'failed-precondition', val: 'init was already called' };
    const w: SelectionWeights = { ...DEFAULT_SELECTION_WEIGHTS };
    for (const [key, value] of config) {
      const name = key.startsWith('weight.') ? key.slice(7) : '';
      if (name !== 'performance' && name !== 'availability' && name !== 'trust') {
        throw invalid(
          `unknown config key '${key}' (known: weight.performance, weight.availability, weight.trust)`,
        );
      }
      w[name] = value.trim() === '' ? Number.NaN : Number(value);
    }
    weights = normalizeSelectionWeights(w);
    initialized = true;
  },

  health() {
    const checks: StringMap = [
      ['initialized', String(initialized)],
      ['decisions', String(decisions)],
      ['kv', lastStorageError === undefined ? 'ok' : lastStorageError],
    ];
    if (registry) checks.push(['agents', String(registry.size)]);
    return lastStorageError === undefined
      ? { status: 'serving', detail: '', checks }
      : { status: 'degraded', detail: `storage: ${lastStorageError}`, checks };
  },

  exportState(): Uint8Array {
    if (!initialized) throw { tag: 'failed-precondition', val: 'export-state before init' };
    // Everything else is durable in kv; the selection weights are the only in-memory state.
    return new TextEncoder().encode(JSON.stringify({ format: STATE_FORMAT, weights }));
  },

  importState(state: Uint8Array): void {
    let parsed: { format?: unknown; weights?: SelectionWeights };
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(state));
    } catch {
      throw invalid('state is not the JSON this component exports');
    }
    if (typeof parsed?.format !== 'number') throw invalid('state has no format number');
    if (parsed.format > STATE_FORMAT) {
      throw { tag: 'unimplemented', val: `state format ${parsed.format} is newer than ${STATE_FORMAT}` };
    }
    if (parsed.weights === null || typeof parsed.weights !== 'object') throw invalid('state has no weights');
    weights = normalizeSelectionWeights(parsed.weights);
    // Re-read durable state on next use rather than trust anything cached before the swap.
    registry = undefined;
    decisionSeq = undefined;
    taskSeq = undefined;
  },
};

export const arbitration = {
  registerAgent(reg: AgentRegistration): Agent {
    if (reg === null || typeof reg !== 'object') throw invalid('registration is missing');
    const id = checkString('agent id', reg.agentId, MAX_ID_BYTES);
    const capabilities = [
      ...new Set(checkList(`agent ${id} capabilities`, reg.capabilities, MAX_LIST, MAX_ID_BYTES)),
    ];
    const metadata = checkMap(`agent ${id} metadata`, reg.metadata);
    const tpm = storedTpm(reg.tpmIdentity);
    const map = agents();
    const existing = map.get(id);
    const t = now();
    if (existing?.tpm && existing.tpm.keyId !== tpm?.keyId) {
      throw {
        tag: 'permission-denied',
        val: `agent ${id} is registered with TPM key ${existing.tpm.keyId}; it must re-register with that key`,
      };
    }
    const record: StoredAgent = existing
      ? {
          ...existing,
          capabilities,
          metadata,
          // Binding a TPM identity to an agent that had none raises its trust to at least the TPM level.
          trust: tpm && !existing.tpm ? Math.max(existing.trust, TRUST_WITH_TPM) : existing.trust,
          updatedAtMs: t,
          tpm: tpm ?? existing.tpm,
        }
      : {
          id,
          capabilities,
          metadata,
          load: 0,
          performance: 0.5,
          trust: tpm ? TRUST_WITH_TPM : TRUST_NEW,
          registeredAtMs: t,
          updatedAtMs: t,
          tpm,
        };
    commitBatch(AGENTS, [putJson(id, record)]);
    map.set(id, record);
    log('info', existing ? 'agent re-registered' : 'agent registered', [
      ['agent', id],
      ['capabilities', String(capabilities.length)],
      ['tpm', tpm ? tpm.keyId : ''],
    ]);
    return witAgent(record);
  },

  updateAgent(update: AgentUpdate): Agent {
    if (update === null || typeof update !== 'object') throw invalid('update is missing');
    const id = checkString('agent id', update.agentId, MAX_ID_BYTES);
    const map = agents();
    const existing = map.get(id);
    if (!existing) throw notFound(`agent ${id} is not registered`);
    const record: StoredAgent = { ...existing, updatedAtMs: now() };
    if (update.load !== undefined && update.load !== null) record.load = checkFraction('load', update.load);
    if (update.performance !== undefined && update.performance !== null) {
      record.performance = checkFraction('performance', update.performance);
    }
    if (update.trust !== undefined && update.trust !== null)
      record.trust = checkFraction('trust', update.trust);
    commitBatch(AGENTS, [putJson(id, record)]);
    map.set(id, record);
    return witAgent(record);
  },

  getAgent(agentId: string): Agent {
    checkString('agent id', agentId, MAX_ID_BYTES);
    const a = agents().get(agentId);
    if (!a) throw notFound(`agent ${agentId} is not registered`);
    return witAgent(a);
  },

  listAgents(): Agent[] {
    return [...agents().values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map(witAgent);
  },

  arbitrate(request: ArbitrationRequest) {
    if (request === null || typeof request !== 'object') throw invalid('request is missing');
    const task = checkTask(request.task);
    const policyId = request.policyId ?? null;
    if (policyId !== null) checkString('policy id', policyId, MAX_ID_BYTES);
    const context = checkMap('context', request.context);
    const callerId = checkString('caller id', request.caller?.id, MAX_ID_BYTES);

    const selection = selectAgent(task.requirements, agents().values(), weights);
    if (!selection.ok) {
      log('info', 'arbitration found no candidate', [
        ['task', task.id],
        ['reason', selection.message],
      ]);
      throw { tag: selection.tag, val: selection.message };
    }
    const seq = nextSeq(DECISIONS, decisionSeq);
    const traceId = `arb-${seq}`;
    const t = now();
    const provider = selection.agent.metadata.find(([k]) => k === 'provider')?.[1] ?? '';
    const evidence = [
      ...selection.evidence,
      `policy ${policyId ?? 'default'}`,
      `requested by ${callerId}`,
      ...(context.length > 0 ? [`context keys: ${context.map(([k]) => k).join(', ')}`] : []),
    ];
    const record: StoredDecision = {
      traceId,
      taskId: task.id,
      agentId: selection.agent.id,
      provider,
      confidence: selection.confidence,
      reasoning: selection.reasoning,
      evidence,
      candidates: selection.candidates,
      policyId,
      callerId,
      timestampMs: t,
    };
    commitBatch(DECISIONS, [putJson(traceId, record), putJson(SEQ, seq)]);
    decisionSeq = seq;
    decisions++;
    return {
      taskId: task.id,
      assignedAgent: selection.agent.id,
      provider,
      confidence: selection.confidence,
      reasoning: selection.reasoning,
      metadata: [
        ['policy-id', policyId ?? ''],
        ['candidates', String(selection.candidates.length)],
      ] as StringMap,
      traceId,
      timestampMs: BigInt(t),
      candidates: selection.candidates,
      tpmProof: undefined,
    };
  },

  commit(taskIn: Task, agentId: string): string {
    const task = checkTask(taskIn);
    checkString('agent id', agentId, MAX_ID_BYTES);
    const agent = agents().get(agentId);
    if (!agent) throw notFound(`agent ${agentId} is not registered`);
    const missing = task.requirements.filter((r) => !agent.capabilities.includes(r));
    if (missing.length > 0) {
      throw {
        tag: 'failed-precondition',
        val: `agent ${agentId} lacks ${missing.join(', ')} required by task ${task.id}`,
      };
    }
    const deps = [...new Set(task.dependsOn)];
    const [existing, ...depCommits] = getManyJson<StoredCommit>(TASKS, [
      `c/${task.id}`,
      ...deps.map((d) => `c/${d}`),
    ]);
    if (existing) {
      throw {
        tag: 'already-exists',
        val: `task ${task.id} is already committed (${existing.commitId} to ${existing.agentId})`,
      };
    }
    for (let i = 0; i < deps.length; i++) {
      if (deps[i] === task.id || !depCommits[i]) {
        throw {
          tag: 'failed-precondition',
          val: `task ${task.id} depends on ${deps[i]}, which is not committed`,
        };
      }
    }
    const seq = nextSeq(TASKS, taskSeq);
    const commitId = `commit-${seq}`;
    const t = now();
    const record: StoredCommit = {
      commitId,
      taskId: task.id,
      agentId,
      committedAtMs: t,
      task: storedTask(task),
    };
    const ops: KvOp[] = [
      putJson(`c/${task.id}`, record),
      putJson(`k/${commitId}`, { commitId, taskId: task.id, agentId, committedAtMs: t }),
      putJson(`l/${String(seq).padStart(16, '0')}`, {
        kind: 'commit',
        commitId,
        taskId: task.id,
        agentId,
        atMs: t,
      }),
      putJson(SEQ, seq),
    ];
    commitBatch(TASKS, ops);
    taskSeq = seq;
    log('info', 'task committed', [
      ['task', task.id],
      ['agent', agentId],
      ['commit', commitId],
    ]);
    return commitId;
  },

  rollback(taskId: string, reason: string): void {
    checkString('task id', taskId, MAX_ID_BYTES);
    checkString('reason', reason, MAX_VALUE_BYTES, true);
    const current = getJson<StoredCommit>(TASKS, `c/${taskId}`);
    if (!current) throw notFound(`task ${taskId} has no commit`);
    const seq = nextSeq(TASKS, taskSeq);
    const t = now();
    const history: StoredCommit = {
      commitId: current.commitId,
      taskId,
      agentId: current.agentId,
      committedAtMs: current.committedAtMs,
      rollback: { reason, atMs: t },
    };
    commitBatch(TASKS, [
      del(`c/${taskId}`),
      putJson(`k/${current.commitId}`, history),
      putJson(`l/${String(seq).padStart(16, '0')}`, {
        kind: 'rollback',
        commitId: current.commitId,
        taskId,
        agentId: current.agentId,
        reason,
        atMs: t,
      }),
      putJson(SEQ, seq),
    ]);
    taskSeq = seq;
    log('info', 'task rolled back', [
      ['task', taskId],
      ['commit', current.commitId],
      ['reason', reason],
    ]);
  },

  explain(traceId: string) {
    checkString('trace id', traceId, MAX_ID_BYTES);
    if (traceId.startsWith('commit-')) {
      const c = getJson<StoredCommit>(TASKS, `k/${traceId}`);
      if (!c) throw notFound(`no commit ${traceId} is recorded`);
      const committed = `task ${c.taskId} was committed to agent ${c.agentId} as ${c.commitId} at ${new Date(c.committedAtMs).toISOString()}`;
      const evidence = [committed];
      if (c.rollback) {
        evidence.push(
          `rolled back at ${new Date(c.rollback.atMs).toISOString()}: ${c.rollback.reason || '(no reason given)'}`,
        );
      }
      return { explanation: evidence.join('; '), confidence: 1, evidence };
    }
    const d = getJson<StoredDecision>(DECISIONS, traceId);
    if (!d) throw notFound(`no decision is recorded under trace id ${traceId}`);
    return {
      explanation: `task ${d.taskId}: ${d.reasoning}`,
      confidence: d.confidence,
      evidence: d.evidence,
    };
  },
};
