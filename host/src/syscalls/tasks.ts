/**
 * Task syscalls (Arbitrate, CommitTask, TaskRollback, AgentRegister) -> the component exporting
 * cam:kernel/arbitration. The caller passed to the component is the authenticated identity, never a
 * request field.
 */

import { permissionDenied } from '../auth/errors.js';
import { allowsGroup } from '../auth/scopes.js';
import type { SyscallDef } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { Fields, mapToObject, msToWireSeconds, type StringMap, taskFromWire, type WitTask } from './codec.js';
import type { SyscallEnv } from './env.js';
import { requireTaskPolicy } from './policy.js';

interface ArbitrationResult {
  taskId: string;
  assignedAgent: string;
  provider: string;
  confidence: number;
  reasoning: string;
  metadata: StringMap;
  traceId: string;
  timestampMs: bigint;
}

export function taskSyscalls(env: SyscallEnv): SyscallDef<never, unknown>[] {
  const arbitration = env.backends.arbitration;
  const memory = env.backends.memory;
  const unavailable = () => arbitration.missing();

  const arbitrate: SyscallDef<{ task: WitTask; policyId: string; context: StringMap }, unknown> = {
    name: 'Arbitrate',
    group: 'tasks',
    summary: 'Choose the agent that should run a task.',
    unavailable,
    validate(req) {
      const f = new Fields('Arbitrate', req);
      return {
        task: taskFromWire(f, 'task'),
        policyId: f.str('policy_id', { maxBytes: 256 }),
        context: f.map('context', { maxEntries: 256 }),
      };
    },
    async handle(r, ctx) {
      // The caller named a policy: it must allow this arbitration (going ahead without it would skip a check
      // the caller asked for).
      if (r.policyId !== '') requireTaskPolicy(env, r.policyId, r.task, Object.fromEntries(r.context), ctx);
      const res = (await arbitration.call(
        'arbitrate',
        [
          {
            task: r.task,
            policyId: r.policyId === '' ? undefined : r.policyId,
            context: r.context,
            caller: { id: ctx.callerId, tpmIdentity: undefined },
          },
        ],
        ctx,
      )) as ArbitrationResult;
      return {
        result: {
          task_id: res.taskId,
          assigned_agent: res.assignedAgent,
          provider: res.provider,
          confidence: res.confidence,
          reasoning: res.reasoning,
          metadata: mapToObject(res.metadata),
          trace_id: res.traceId,
          timestamp: msToWireSeconds(res.timestampMs),
          tmp_proof: null,
        },
      };
    },
  };

  const commit: SyscallDef<{ task: WitTask; agentId: string }, unknown> = {
    name: 'CommitTask',
    group: 'tasks',
    summary: 'Record that an agent runs a task.',
    unavailable,
    validate(req) {
      const f = new Fields('CommitTask', req);
      return { task: taskFromWire(f, 'task'), agentId: f.str('agent_id', { required: true, maxBytes: 256 }) };
    },
    async handle(r, ctx) {
      const commitId = (await arbitration.call('commit', [r.task, r.agentId], ctx)) as string;
      return { task_id: r.task.id, commit_id: commitId };
    },
  };

  const rollback: SyscallDef<{ taskId: string; reason: string }, unknown> = {
    name: 'TaskRollback',
    group: 'tasks',
    summary: "Undo the commit of a task, recording why, and undo the task's tagged context writes.",
    unavailable,
    validate(req) {
      const f = new Fields('TaskRollback', req);
      return {
        taskId: f.str('task_id', { required: true, maxBytes: 256 }),
        reason: f.str('reason', { maxBytes: 4096 }),
      };
    },
    async handle(r, ctx) {
      // The commit goes first; then the task's tagged context writes are undone (memory.revert-task is
      // idempotent). If the revert fails the call fails, and calling TaskRollback again finishes it: the
      // arbitration then answers not-found, but a revert that still had work to do counts as success.
      try {
        await arbitration.call('rollback', [r.taskId, r.reason], ctx);
      } catch (e) {
        if (!(e instanceof KernelError && e.status === 'NOT_FOUND') || memory.missing()) throw e;
        const res = (await memory.call('revert-task', [r.taskId], ctx)) as { reverted: bigint };
        if (Number(res.reverted) === 0) throw e;
        return { task_id: r.taskId };
      }
      if (!memory.missing()) {
        try {
          await memory.call('revert-task', [r.taskId], ctx);
        } catch (e) {
          const err = e instanceof KernelError ? e : undefined;
          throw new KernelError(
            err?.code ?? 'KERNEL_ERR_INTERNAL',
            `task '${r.taskId}' was rolled back but undoing its context writes failed (${err?.message ?? 'internal error'}); call TaskRollback again to finish`,
            undefined,
            err?.status ?? 'INTERNAL',
          );
        }
      }
      return { task_id: r.taskId };
    },
  };

  const register: SyscallDef<{ agentId: string; capabilities: string[]; metadata: StringMap }, unknown> = {
    name: 'AgentRegister',
    group: 'tasks',
    summary: 'Register an agent or update its capabilities and metadata.',
    unavailable,
    validate(req) {
      const f = new Fields('AgentRegister', req);
      return {
        agentId: f.str('agent_id', { required: true, maxBytes: 256 }),
        capabilities: f.strings('capabilities', { maxItems: 256, maxBytes: 256 }),
        metadata: f.map('metadata', { maxEntries: 256 }),
      };
    },
    async handle(r, ctx) {
      // An authenticated agent registers itself; registering others is an operator (admin) action.
      if (ctx.scopes !== undefined && r.agentId !== ctx.callerId && !allowsGroup(ctx.scopes, 'admin')) {
        const reason = `AgentRegister: '${ctx.callerId}' may only register itself, not '${r.agentId}' (needs group:admin)`;
        env.onDenied(ctx, 'AgentRegister', reason);
        throw permissionDenied(reason);
      }
      const agent = (await arbitration.call(
        'register-agent',
        [{ agentId: r.agentId, capabilities: r.capabilities, metadata: r.metadata, tpmIdentity: undefined }],
        ctx,
      )) as { id: string };
      return { agent_id: agent.id };
    },
  };

  return [arbitrate, commit, rollback, register] as SyscallDef<never, unknown>[];
}
