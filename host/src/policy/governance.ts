/**
 * Wiring of the policy engine and the audit log into one kernel: opened by startKernel, so every kernel
 * (booted or started by a test harness) authorizes its syscalls through the policy and records its
 * decisions. What it installs:
 * - the authorizer on the dispatcher (after validate, before handle), which records policy denials;
 * - observers of the kernel's events (load, unload, restart, failure, swap, rollback);
 * - decision recorders around Arbitrate (once the syscall table is installed: `recordSyscallDecisions`);
 * - a registry from dispatcher to these parts, which the QueryPolicy / PolicyUpdate / ExplainAction
 *   handlers use (they are built before the kernel context reaches them).
 */
import { join } from 'node:path';
import type { AuditEntry } from '../audit/index.js';
import { auditKeySigner, HashChainAuditLog, tpmSigner } from '../audit/log.js';
import type { CallContext, Dispatcher, SyscallGroup } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import type { Kernel, KernelEvent } from '../kernel/kernel.js';
import type { TpmContext } from '../server/trust-anchors.js';
import { Backend } from '../syscalls/backend.js';
import { PolicyEngine } from './engine.js';

export interface Governance {
  audit: HashChainAuditLog;
  policy: PolicyEngine;
  authMode(): string;
  /** Decision records still being completed (an arbitration's candidate scores being read). */
  pending: Set<Promise<void>>;
  /** Resolves when every pending record is in the log. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

const registry = new WeakMap<Dispatcher, Governance>();

export function governanceOf(d: Dispatcher): Governance | undefined {
  return registry.get(d);
}

/** The role the policy sees: no scope restriction, administrator, or agent. */
export function roleOf(scopes: readonly string[] | undefined): 'unrestricted' | 'admin' | 'agent' {
  if (scopes === undefined) return 'unrestricted';
  return scopes.includes('group:admin') || scopes.includes('group:*') ? 'admin' : 'agent';
}

export interface GovernanceOptions {
  dataDir: string;
  kernel: Kernel;
  dispatcher: Dispatcher;
  tpm?: TpmContext;
  authMode(): string;
  /** Where warnings about stored policies and a repaired audit file go (status shows the kernel's warnings). */
  warn?: (message: string) => void;
  /** Checkpoint interval of the audit log (default 256 entries). */
  checkpointEvery?: number;
}

export async function openGovernance(opts: GovernanceOptions): Promise<Governance> {
  const dir = join(opts.dataDir, 'audit');
  // Independent start-up work (liboqs + the audit key; wasm-tools + the built-in policy) runs side by side.
  const [{ signer }, policy] = await Promise.all([
    auditKeySigner(dir),
    PolicyEngine.open({ dir: join(opts.dataDir, 'policies'), warn: opts.warn }),
  ]);
  const audit = new HashChainAuditLog({
    dir,
    signers: [signer],
    checkpointEvery: opts.checkpointEvery,
    ...(opts.warn ? { warn: opts.warn } : {}),
  });
  const tpm = opts.tpm;
  if (tpm?.tpm) audit.addSigner(tpmSigner(tpm.tpm, () => tpm.signingKey()));
  const pending = new Set<Promise<void>>();
  const settled = async () => {
    while (pending.size > 0) await Promise.all([...pending]);
  };
  const g: Governance = {
    audit,
    policy,
    authMode: opts.authMode,
    pending,
    settled,
    async close() {
      await settled();
      await audit.close();
    },
  };
  registry.set(opts.dispatcher, g);
  opts.dispatcher.authorizers.push(authorizer(g));
  opts.kernel.events.push((e) => recordKernelEvent(audit, e));
  return g;
}

/** The dispatcher hook: synchronous; a cached allow costs a Map lookup. */
export function authorizer(g: Governance): (name: string, group: SyscallGroup, ctx: CallContext) => void {
  return (name, group, ctx) => {
    const mode = g.authMode();
    const role = roleOf(ctx.scopes);
    // Break glass: an installed policy can never lock administrators out of replacing it.
    if (name === 'PolicyUpdate' && role !== 'agent') return;
    const d = g.policy.authorize(mode, role, ctx.callerId, group, name);
    if (d.allow) return;
    g.audit.append({
      kind: 'policy-deny',
      actor: ctx.callerId,
      action: name,
      outcome: 'denied',
      cause: d.reason,
      inputs: { mode, role, group, syscall: name, policy: d.policyId, version: d.version, rule: d.rule },
      ...(ctx.traceId ? { traceId: ctx.traceId } : {}),
    });
    throw new KernelError(
      'KERNEL_ERR_POLICY_DENIED',
      `${name}: policy '${d.policyId}' v${d.version} denies '${ctx.callerId}': ${d.reason}`,
    );
  };
}

export function recordKernelEvent(audit: HashChainAuditLog, e: KernelEvent): AuditEntry {
  switch (e.kind) {
    case 'load':
      return audit.append({
        kind: 'load',
        actor: 'kernel',
        subject: e.name,
        action: 'load',
        outcome: 'loaded',
        cause: `component '${e.name}'${e.version ? ` ${e.version}` : ''} loaded`,
        inputs: { component: e.name, version: e.version ?? '', digest: e.digest },
      });
    case 'unload':
      return audit.append({
        kind: 'unload',
        actor: 'kernel',
        subject: e.name,
        action: 'unload',
        outcome: 'unloaded',
        cause: `component '${e.name}' unloaded`,
        inputs: { component: e.name },
      });
    case 'restart':
    case 'failed':
      return audit.append({
        kind: 'restart',
        actor: 'supervisor',
        subject: e.name,
        action: 'restart',
        outcome: e.kind === 'restart' ? 'restarted' : 'failed (restart budget spent)',
        cause: e.cause ?? 'instance fault',
        inputs: { component: e.name, restarts: e.restarts },
        scores: { restarts: e.restarts },
      });
    case 'swap': {
      const r = e.record;
      const rolledBack = r.kind === 'rollback' || r.result === 'rolled-back';
      return audit.append({
        kind: rolledBack ? 'rollback' : 'swap',
        actor: 'kernel',
        subject: r.name,
        action: r.kind,
        outcome: r.result,
        cause:
          r.reason ??
          (r.kind === 'rollback'
            ? `operator rollback to ${r.to.version ?? r.to.digest}`
            : `swapped ${r.from.version ?? r.from.digest} -> ${r.to.version ?? r.to.digest}`),
        inputs: {
          component: r.name,
          from: r.from.version ?? r.from.digest,
          to: r.to.version ?? r.to.digest,
          fromDigest: r.from.digest,
          toDigest: r.to.digest,
        },
        ...(r.pausedMs !== undefined ? { scores: { pausedMs: r.pausedMs } } : {}),
      });
    }
  }
}

/**
 * For the marketplace: record an install or uninstall (package, version, digest, publisher, why).
 * Returns the audit entry.
 */
export function recordInstall(
  audit: { append: HashChainAuditLog['append'] },
  e: {
    kind?: 'install' | 'uninstall';
    actor: string;
    pkg: string;
    version: string;
    outcome: string;
    cause: string;
    inputs?: Record<string, unknown>;
  },
): AuditEntry {
  return audit.append({
    kind: e.kind ?? 'install',
    actor: e.actor,
    subject: e.pkg,
    action: e.kind ?? 'install',
    outcome: e.outcome,
    cause: e.cause,
    inputs: { package: e.pkg, version: e.version, ...e.inputs },
  });
}

interface WireArbitration {
  result?: {
    task_id?: string;
    assigned_agent?: string;
    provider?: string;
    confidence?: number;
    reasoning?: string;
    metadata?: Record<string, string>;
    trace_id?: string;
    timestamp?: number;
  };
}

interface ComponentExplanation {
  explanation: string;
  confidence: number;
  evidence: string[];
}

/** Candidate scores from the arbitration component's evidence lines ("chosen agent-a: score 0.812, ..."). */
export function candidateScores(evidence: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of evidence) {
    const m = /^(?:chosen|candidate) (\S+): score (-?\d+(?:\.\d+)?)/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/**
 * Record the decisions syscalls return: Arbitrate (with every candidate's score, read from the
 * arbitration component's own record of the decision) and SystemTuning (new scheduling weights). Runs
 * once the syscall table is installed: it wraps the registered handlers, so every transport is covered.
 * The arbitration entry is appended when the component's record has been read; ExplainAction and
 * `ask` wait for such pending entries (`settled`).
 */
export function recordSyscallDecisions(dispatcher: Dispatcher, g: Governance, kernel: Kernel): void {
  const audit = g.audit;
  const arbitration = new Backend(kernel, 'arbitration');
  const arbitrate = dispatcher.definition('Arbitrate');
  if (arbitrate) {
    const handle = arbitrate.handle.bind(arbitrate);
    arbitrate.handle = async (req, ctx) => {
      const res = (await handle(req, ctx)) as WireArbitration;
      const r = res?.result;
      if (r?.assigned_agent) {
        const ts = Date.now();
        const task = (req as { task?: { id?: string; requirements?: string[]; priority?: number } }).task;
        const base: Record<string, number> = {};
        if (typeof r.confidence === 'number' && Number.isFinite(r.confidence)) base.confidence = r.confidence;
        const append = (x: ComponentExplanation | undefined, why?: string) =>
          audit.append({
            kind: 'arbitration',
            actor: 'arbitration',
            subject: r.assigned_agent!,
            action: 'Arbitrate',
            outcome: `assigned to ${r.assigned_agent}`,
            cause: r.reasoning ?? '',
            ts,
            inputs: {
              taskId: r.task_id ?? task?.id ?? '',
              caller: ctx.callerId,
              requirements: task?.requirements ?? [],
              priority: task?.priority ?? 0,
              provider: r.provider ?? '',
              ...(r.trace_id ? { arbitrationTraceId: r.trace_id } : {}),
              ...(x ? { evidence: x.evidence } : { evidence: [`candidate scores unavailable: ${why}`] }),
            },
            scores: { ...base, ...(x ? candidateScores(x.evidence) : {}) },
            // The call's trace (observability) when it has one, else the arbitration's own trace id.
            ...(ctx.traceId || r.trace_id ? { traceId: ctx.traceId || r.trace_id } : {}),
          });
        const p: Promise<void> = (
          r.trace_id
            ? arbitration.call('explain', [r.trace_id], ctx).then(
                (x) => void append(x as ComponentExplanation),
                (e: Error) => void append(undefined, e.message),
              )
            : Promise.resolve(void append(undefined, 'the component returned no trace id'))
        ).finally(() => g.pending.delete(p));
        g.pending.add(p);
      }
      return res;
    };
  }
  const tuning = dispatcher.definition('SystemTuning');
  if (tuning) {
    const handle = tuning.handle.bind(tuning);
    tuning.handle = async (req, ctx) => {
      const res = (await handle(req, ctx)) as { applied_settings?: Record<string, string> };
      const applied = res?.applied_settings ?? {};
      const scores: Record<string, number> = {};
      for (const [k, v] of Object.entries(applied)) if (Number.isFinite(Number(v))) scores[k] = Number(v);
      const profile = (req as { profile?: string }).profile ?? '';
      audit.append({
        kind: 'scheduling',
        actor: ctx.callerId,
        subject: 'scheduler',
        action: 'SystemTuning',
        outcome: 'weights changed',
        cause: `scheduling weights set${profile ? ` from profile '${profile}'` : ''} by ${ctx.callerId}`,
        inputs: { applied },
        scores,
      });
      return res;
    };
  }
}

/** For whoever ranks the queue with the scheduler component: record the order it decided and why. */
export function recordRanking(
  audit: { append: HashChainAuditLog['append'] },
  r: {
    order: Array<{ taskId: string; score: number; band: string }>;
    preemptions?: Array<{ run: string; suspend: string; reason: string }>;
  },
  actor = 'scheduler',
): AuditEntry {
  const scores: Record<string, number> = {};
  for (const t of r.order) scores[t.taskId] = t.score;
  const first = r.order[0];
  return audit.append({
    kind: 'scheduling',
    actor,
    ...(first ? { subject: first.taskId } : {}),
    action: 'rank',
    outcome: r.order.map((t) => t.taskId).join(' > ') || 'empty queue',
    cause: first
      ? `${first.taskId} first with score ${first.score.toFixed(3)} (${first.band} band)${r.preemptions?.length ? `; preempts: ${r.preemptions.map((p) => `${p.run} over ${p.suspend} (${p.reason})`).join(', ')}` : ''}`
      : 'nothing queued',
    inputs: { order: r.order, preemptions: r.preemptions ?? [] },
    scores,
  });
}
