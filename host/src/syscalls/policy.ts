/**
 * QueryPolicy, PolicyUpdate and ExplainAction, on the kernel's policy engine and audit log
 * (host/src/policy, host/src/audit; attached to the dispatcher by startKernel).
 *
 * - QueryPolicy: evaluate `policy_id` (empty = `authz`, the authorization policy) on an input built from
 *   `context` (plus `caller` = the authenticated caller when context does not name one); `query` names the
 *   entrypoint (empty = the policy's first). Answers allowed + reason; the evaluation is audited.
 * - PolicyUpdate: `policy_data` is a tar.gz OPA bundle, a bare policy.wasm or a JSON data object (see
 *   host/src/policy/bundle.ts); answers the new version. A malformed policy is INVALID_ARGUMENT naming
 *   what was wrong, and nothing changes.
 * - ExplainAction: `action_id` is an audit sequence number (`12` or `audit-12`) or a task id; `trace_id`
 *   finds the entry carrying that trace id. A `?level=brief|detailed|technical|audit` suffix on either
 *   picks the level (default detailed).
 */

import { evidence } from '../audit/explain.js';
import { type AuditEntry, EXPLAIN_LEVELS, type ExplainLevel, explain } from '../audit/index.js';
import type { CallContext, SyscallDef } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { AUTHZ_POLICY, POLICY_ID_RE, PolicyError } from '../policy/engine.js';
import { type Governance, governanceOf, roleOf } from '../policy/governance.js';
import { Fields, mapToObject } from './codec.js';
import type { SyscallEnv } from './env.js';

const NOT_ATTACHED =
  'no policy engine or audit log is attached to this dispatcher (startKernel attaches them)';

function policyError(e: unknown): never {
  if (e instanceof PolicyError) {
    throw new KernelError(
      e.kind === 'invalid' ? 'KERNEL_ERR_POLICY_INVALID' : 'KERNEL_ERR_POLICY_NOT_FOUND',
      e.message,
    );
  }
  throw e;
}

function splitLevel(syscall: string, id: string): { id: string; level: ExplainLevel } {
  const q = id.indexOf('?');
  if (q < 0) return { id, level: 'detailed' };
  const m = /^level=([a-z]+)$/.exec(id.slice(q + 1));
  const level = m?.[1] as ExplainLevel | undefined;
  if (!level || !EXPLAIN_LEVELS.includes(level)) {
    throw new KernelError(
      'KERNEL_ERR_REQUEST_INVALID',
      `${syscall}: the suffix '${id.slice(q)}' must be ?level=${EXPLAIN_LEVELS.join('|')}`,
    );
  }
  return { id: id.slice(0, q), level };
}

function newest(g: Governance, match: (e: AuditEntry) => boolean): AuditEntry | undefined {
  const all = g.audit.entries();
  for (let i = all.length - 1; i >= 0; i--) if (match(all[i]!)) return all[i];
  return undefined;
}

/** Find the entry an ExplainAction request names. */
export function findEntry(g: Governance, traceId: string, actionId: string): AuditEntry | undefined {
  if (actionId !== '') {
    const m = /^(?:audit[-#:])?(\d{1,15})$/.exec(actionId);
    if (m) return g.audit.get(Number(m[1]));
    // A task id (or any id carried as a subject / input): the newest entry about it.
    return newest(g, (e) => e.inputs?.taskId === actionId || e.subject === actionId);
  }
  return newest(g, (e) => e.traceId === traceId || e.inputs?.arbitrationTraceId === traceId);
}

/**
 * Evaluate policy `id` for a syscall on behalf of `ctx` and record the decision in the audit log. The input
 * is the caller's mode, role and id, overridden by `context`. Throws POLICY_INVALID / POLICY_NOT_FOUND.
 */
export function evaluatePolicy(
  gov: Governance,
  id: string,
  query: string,
  context: Record<string, string>,
  ctx: CallContext,
  syscall: string,
): ReturnType<Governance['policy']['evaluate']> {
  const input: Record<string, unknown> = {
    mode: gov.authMode(),
    role: roleOf(ctx.scopes),
    caller: ctx.callerId,
    group: '',
    syscall: '',
    ...context,
  };
  let d: ReturnType<Governance['policy']['evaluate']>;
  try {
    d = gov.policy.evaluate(id, input, query || undefined);
  } catch (e) {
    policyError(e);
  }
  gov.audit.append({
    kind: d.allow ? 'policy-allow' : 'policy-deny',
    actor: String(input.caller),
    action: `${syscall} ${id}${query ? `:${query}` : ''}`,
    outcome: d.allow ? 'allowed' : 'denied',
    cause: d.reason,
    inputs: { ...input, policy: d.policyId, version: d.version, rule: d.rule, requestedBy: ctx.callerId },
    ...(ctx.traceId ? { traceId: ctx.traceId } : {}),
  });
  return d;
}

/**
 * Arbitrate's `policy_id`: the named policy must allow arbitrating this task for this caller (input: the
 * caller, `syscall` Arbitrate, `task_id`, `task_type` and the request's context), or the call is refused
 * with POLICY_DENIED before the arbitration component sees it.
 */
export function requireTaskPolicy(
  env: SyscallEnv,
  policyId: string,
  task: { id: string; taskType: string },
  context: Record<string, string>,
  ctx: CallContext,
): void {
  const gov = governanceOf(env.dispatcher);
  if (!gov)
    throw new KernelError('KERNEL_ERR_SYSCALL_UNAVAILABLE', `Arbitrate with policy_id: ${NOT_ATTACHED}`);
  if (!POLICY_ID_RE.test(policyId)) {
    throw new KernelError(
      'KERNEL_ERR_REQUEST_INVALID',
      `Arbitrate: policy_id '${policyId.slice(0, 80)}' is not a policy id`,
    );
  }
  const d = evaluatePolicy(
    gov,
    policyId,
    '',
    { ...context, syscall: 'Arbitrate', group: 'tasks', task_id: task.id, task_type: task.taskType },
    ctx,
    'Arbitrate',
  );
  if (!d.allow) {
    throw new KernelError(
      'KERNEL_ERR_POLICY_DENIED',
      `Arbitrate: policy '${policyId}' denies it: ${d.reason}`,
    );
  }
}

export function policySyscalls(env: SyscallEnv): SyscallDef<never, unknown>[] {
  const g = () => governanceOf(env.dispatcher);
  const unavailable = () => (g() ? undefined : NOT_ATTACHED);

  const query: SyscallDef<{ policyId: string; query: string; context: Record<string, string> }, unknown> = {
    name: 'QueryPolicy',
    group: 'policy',
    summary: 'Evaluate a query against a policy.',
    unavailable,
    validate(req) {
      const f = new Fields('QueryPolicy', req);
      const policyId = f.str('policy_id', {
        maxBytes: 64,
        pattern: POLICY_ID_RE,
        patternText: 'a policy id (lowercase letters, digits, . _ -)',
      });
      const q = f.str('query', { maxBytes: 256 });
      const context = mapToObject(
        f.map('context', { maxEntries: 64, maxKeyBytes: 128, maxValueBytes: 1024 }),
      );
      for (const [k, v] of Object.entries(context)) {
        // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
        if (/["\\\u0000-\u001f]/.test(v)) {
          throw new KernelError(
            'KERNEL_ERR_REQUEST_INVALID',
            `QueryPolicy: context['${k}'] contains quotes, backslashes or control characters`,
          );
        }
      }
      return { policyId, query: q, context };
    },
    async handle(r, ctx) {
      const d = evaluatePolicy(g()!, r.policyId || AUTHZ_POLICY, r.query, r.context, ctx, 'QueryPolicy');
      return { allowed: d.allow, reason: d.reason };
    },
  };

  const update: SyscallDef<
    { policyId: string; data: Uint8Array; metadata: Record<string, string> },
    unknown
  > = {
    name: 'PolicyUpdate',
    group: 'admin',
    summary: 'Create or replace a policy.',
    unavailable,
    validate(req) {
      const f = new Fields('PolicyUpdate', req);
      const policyId = f.str('policy_id', {
        required: true,
        maxBytes: 64,
        pattern: POLICY_ID_RE,
        patternText: 'a policy id (lowercase letters, digits, . _ -)',
      });
      const data = f.bytes('policy_data', 4 * 1024 * 1024, true);
      if (data.length === 0)
        throw new KernelError('KERNEL_ERR_REQUEST_INVALID', 'PolicyUpdate: policy_data is required');
      return { policyId, data, metadata: mapToObject(f.map('metadata', { maxEntries: 64 })) };
    },
    async handle(r, ctx) {
      const gov = g()!;
      let info: ReturnType<Governance['policy']['update']>;
      try {
        info = gov.policy.update(r.policyId, r.data, r.metadata);
      } catch (e) {
        policyError(e);
      }
      gov.audit.append({
        kind: 'install',
        actor: ctx.callerId,
        subject: `policy:${info.id}`,
        action: 'PolicyUpdate',
        outcome: `installed version ${info.version}`,
        cause: `policy '${info.id}' updated (${info.encoding}, ${info.wasmBytes} bytes of wasm, ${info.digest})`,
        inputs: {
          policy: info.id,
          version: info.version,
          digest: info.digest,
          encoding: info.encoding,
          metadata: info.metadata,
        },
      });
      return { policy_id: info.id, version: info.version };
    },
  };

  const explainAction: SyscallDef<{ traceId: string; actionId: string; level: ExplainLevel }, unknown> = {
    name: 'ExplainAction',
    group: 'observability',
    summary: 'Explain a recorded decision by trace or action id.',
    unavailable,
    validate(req) {
      const f = new Fields('ExplainAction', req);
      const t = splitLevel('ExplainAction', f.str('trace_id', { maxBytes: 256 }));
      const a = splitLevel('ExplainAction', f.str('action_id', { maxBytes: 256 }));
      if (t.id === '' && a.id === '') {
        throw new KernelError(
          'KERNEL_ERR_REQUEST_INVALID',
          'ExplainAction: trace_id or action_id is required',
        );
      }
      const level = f.str('action_id').includes('?') ? a.level : t.level;
      return { traceId: t.id, actionId: a.id, level };
    },
    async handle(r, ctx) {
      const gov = g()!;
      await gov.settled();
      const e = findEntry(gov, r.traceId, r.actionId);
      if (!e) {
        throw new KernelError(
          'KERNEL_ERR_AUDIT_NOT_FOUND',
          `ExplainAction: no audit entry for ${r.actionId ? `action '${r.actionId}'` : `trace '${r.traceId}'`}`,
        );
      }
      // An agent (scoped, not an administrator) may only have the decisions about itself explained.
      const visible =
        roleOf(ctx.scopes) === 'agent'
          ? (x: AuditEntry) => [x.actor, x.subject, x.inputs?.caller].includes(ctx.callerId)
          : undefined;
      if (visible && !visible(e)) {
        throw new KernelError(
          'KERNEL_ERR_AUTH_DENIED',
          `ExplainAction: audit#${e.seq} is not about '${ctx.callerId}'; explaining other agents' decisions needs group:admin`,
        );
      }
      const confidence =
        e.kind === 'arbitration' && e.scores?.confidence !== undefined ? e.scores.confidence : 1;
      return {
        explanation: explain(e, r.level, gov.audit, visible),
        confidence,
        evidence: evidence(e, gov.audit, visible),
      };
    },
  };

  return [query, update, explainAction] as SyscallDef<never, unknown>[];
}
