/**
 * The syscall table: the 20 CAM-OS SyscallService methods registered on the dispatcher under their gRPC
 * method names, each in a scope group. Every transport (unary gRPC, streaming sessions, in-process)
 * dispatches by these names.
 */

import { permissionDenied } from '../auth/errors.js';
import { allowsGroup } from '../auth/scopes.js';
import type { CallContext, Dispatcher, SyscallDef } from '../dispatcher/dispatcher.js';
import type { Kernel } from '../kernel/kernel.js';
import { Backend, SnapshotIds } from './backend.js';
import { contextSyscalls } from './context.js';
import type { KernelStatus, SyscallEnv, TableEntry } from './env.js';
import { observabilitySyscalls } from './observability.js';
import { pendingSyscalls } from './pending.js';
import { taskSyscalls } from './tasks.js';
import { TelemetryStore } from './telemetry.js';

export { Backend, SERVICE_INTERFACES, SnapshotIds } from './backend.js';
export type { KernelStatus, SyscallEnv } from './env.js';
export { healthReport, TUNING_PROFILES } from './observability.js';
export { TelemetryStore } from './telemetry.js';

/** The SyscallService methods in proto order. */
export const SYSCALL_NAMES = [
  'Arbitrate',
  'CommitTask',
  'TaskRollback',
  'AgentRegister',
  'QueryPolicy',
  'PolicyUpdate',
  'ContextRead',
  'ContextWrite',
  'ContextSnapshot',
  'ContextRestore',
  'SnapshotContext',
  'ContextVersionList',
  'TmpSign',
  'VerifyManifest',
  'EstablishSecureChannel',
  'ExplainAction',
  'EmitTrace',
  'EmitMetric',
  'SystemTuning',
  'HealthCheck',
] as const;
export type SyscallName = (typeof SYSCALL_NAMES)[number];

export interface InstallOptions {
  kernel: Kernel;
  dispatcher: Dispatcher;
  dataDir: string;
  status(): KernelStatus;
  onDenied?(ctx: CallContext, action: string, reason: string): void;
  telemetry?: TelemetryStore;
  /**
   * Definitions that replace the table's entries of the same name (e.g. the security syscalls once the
   * trust anchors are wired). They get the same group-scope check. A name outside the 20 is refused.
   */
  overrides?(env: SyscallEnv): SyscallDef<never, unknown>[];
}

/** Build the handlers and register all 20 on the dispatcher. Returns the environment they share. */
export function installSyscalls(opts: InstallOptions): SyscallEnv {
  const env: SyscallEnv = {
    kernel: opts.kernel,
    dispatcher: opts.dispatcher,
    telemetry: opts.telemetry ?? new TelemetryStore(),
    snapshots: new SnapshotIds(opts.dataDir),
    backends: {
      scheduler: new Backend(opts.kernel, 'scheduler'),
      arbitration: new Backend(opts.kernel, 'arbitration'),
      memory: new Backend(opts.kernel, 'memory'),
    },
    status: opts.status,
    onDenied: opts.onDenied ?? (() => {}),
  };
  const defs: TableEntry[] = [
    ...taskSyscalls(env),
    ...pendingSyscalls(env),
    ...contextSyscalls(env),
    ...observabilitySyscalls(env),
  ];
  const byName = new Map(defs.map((d) => [d.name, d]));
  for (const o of opts.overrides?.(env) ?? []) {
    if (!(SYSCALL_NAMES as readonly string[]).includes(o.name)) {
      throw new Error(`syscall override ${o.name} is not a SyscallService method`);
    }
    byName.set(o.name, o as TableEntry);
  }
  for (const name of SYSCALL_NAMES) {
    const def = byName.get(name);
    if (!def) throw new Error(`syscall table has no handler for ${name}`);
    opts.dispatcher.register(withGroupCheck(env, def));
  }
  return env;
}

/** The group-scope check, in front of every handler so every transport gets it. */
function withGroupCheck(env: SyscallEnv, def: TableEntry): SyscallDef<unknown, unknown> {
  const d = def as unknown as SyscallDef<unknown, unknown> & { openToAll?: boolean };
  if (d.openToAll) return d;
  return {
    ...d,
    handle(req, ctx) {
      if (!allowsGroup(ctx.scopes, d.group)) {
        const reason = `${d.name}: '${ctx.callerId}' has no scope for the ${d.group} syscalls (needs group:${d.group})`;
        env.onDenied(ctx, d.name, reason);
        return Promise.reject(permissionDenied(reason));
      }
      return d.handle(req, ctx);
    },
  };
}
