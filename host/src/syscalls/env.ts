/** What every syscall handler may use; built once per kernel by installSyscalls. */

import { permissionDenied } from '../auth/errors.js';
import { allowsNamespace } from '../auth/scopes.js';
import type { CallContext, Dispatcher, SyscallDef } from '../dispatcher/dispatcher.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Backend, ServiceName, SnapshotIds } from './backend.js';
import type { TelemetryStore } from './telemetry.js';

export interface KernelStatus {
  authMode: string;
  warnings: readonly string[];
  startedAt: number;
  version: string;
}

export interface SyscallEnv {
  kernel: Kernel;
  dispatcher: Dispatcher;
  telemetry: TelemetryStore;
  snapshots: SnapshotIds;
  backends: Record<ServiceName, Backend>;
  status(): KernelStatus;
  /** Record a scope refusal (the auth layer's decision log). */
  onDenied(ctx: CallContext, action: string, reason: string): void;
}

/** A syscall definition plus whether it skips the group-scope check (liveness must always answer). */
export type TableEntry = SyscallDef<never, unknown> & { openToAll?: boolean };

export function requireNamespace(
  env: SyscallEnv,
  ctx: CallContext,
  syscall: string,
  namespace: string,
): void {
  if (allowsNamespace(ctx.scopes, namespace)) return;
  const reason = `${syscall}: '${ctx.callerId}' has no scope for namespace '${namespace}' (needs ns:${namespace})`;
  env.onDenied(ctx, syscall, reason);
  throw permissionDenied(reason);
}
