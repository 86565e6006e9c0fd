/**
 * The gRPC gateway: what the SyscallService, the streaming sessions, health and reflection share per
 * kernel — the syscall table installed on the dispatcher, the authenticator (identities, scopes, rate
 * limits), the decision log and the telemetry store. One gateway per dispatcher, so several listeners
 * (e.g. a loopback and a TLS one) can serve the same kernel.
 *
 * Path of a call: transport -> authenticate (once per call or per stream) -> authorize (caller_id match,
 * rate limit) -> dispatcher.dispatch(method name, request, ctx) -> handler -> component.
 */
import type * as grpc from '@grpc/grpc-js';
import { Authenticator, type CallTransport, type Principal } from '../auth/authenticator.js';
import { type AuthConfig, authConfigFrom } from '../auth/config.js';
import { DecisionLog } from '../auth/decisions.js';
import {
  type CallContext,
  DEFAULT_DEADLINE_MS,
  type Dispatcher,
  MAX_DEADLINE_MS,
} from '../dispatcher/dispatcher.js';
import type { KernelContext } from '../server/server.js';
import { type InstallOptions, installSyscalls, type SyscallEnv } from '../syscalls/index.js';
import type { TelemetryStore } from '../syscalls/telemetry.js';
import { KERNEL_VERSION } from '../version.js';
import { TurnGate, unaryCallsPerTurn } from './turn-gate.js';

export interface GatewayOptions {
  /** Defaults to authConfigFrom(config.dataDir). */
  auth?: AuthConfig;
  telemetry?: TelemetryStore;
  /** Replacements for syscall-table entries (see InstallOptions.overrides); they see the kernel context. */
  overrides?: (env: SyscallEnv, ctx: KernelContext) => ReturnType<NonNullable<InstallOptions['overrides']>>;
}

const gateways = new WeakMap<Dispatcher, Gateway>();

export class Gateway {
  readonly auth: AuthConfig;
  readonly authenticator: Authenticator;
  readonly decisions = new DecisionLog();
  readonly env: SyscallEnv;
  /** Paces the start of unary calls so answers leave while later calls run (turn-gate.ts). */
  readonly turns: TurnGate;

  /** The gateway of this kernel, created (and the syscall table installed) on first use. */
  static for(ctx: KernelContext, opts: GatewayOptions = {}): Gateway {
    let g = gateways.get(ctx.dispatcher);
    if (!g) {
      g = new Gateway(ctx, opts);
      gateways.set(ctx.dispatcher, g);
    }
    return g;
  }

  private constructor(
    readonly ctx: KernelContext,
    opts: GatewayOptions,
  ) {
    this.auth = opts.auth ?? authConfigFrom(ctx.config.dataDir);
    this.turns = new TurnGate(unaryCallsPerTurn(ctx.config));
    // Status and HealthCheck report the mode the gateway actually enforces.
    ctx.authMode = this.auth.mode;
    // Access-control decisions (throttling, auth refusals) go to the kernel's audit log.
    this.decisions.attach(ctx.audit);
    this.authenticator = new Authenticator(this.auth, this.decisions);
    this.env = installSyscalls({
      kernel: ctx.kernel,
      dispatcher: ctx.dispatcher,
      dataDir: ctx.config.dataDir,
      telemetry: opts.telemetry,
      overrides: opts.overrides ? (env) => opts.overrides!(env, ctx) : undefined,
      status: () => ({
        authMode: ctx.authMode,
        warnings: ctx.warnings,
        startedAt: ctx.startedAt,
        version: KERNEL_VERSION,
      }),
      onDenied: (c: CallContext, action: string, reason: string) =>
        this.decisions.record({
          kind: 'permission-denied',
          subject: c.callerId,
          peer: c.peer ?? '',
          action,
          reason,
        }),
    });
  }

  /** The caller's principal: synchronous unless a bearer token must be verified (see Authenticator). */
  authenticate(t: CallTransport, action: string): Principal | Promise<Principal> {
    return this.authenticator.authenticate(t, action);
  }

  /**
   * Run one syscall for an authenticated principal. Never throws: a refusal is a rejected promise. (Not
   * `async`, which made one more promise per call; the dispatcher's own promise is returned as it is.)
   */
  invoke(p: Principal, name: string, request: unknown, peer: string, deadlineAt: number): Promise<unknown> {
    let ctx: CallContext;
    try {
      const requested = (request as { caller_id?: unknown } | null)?.caller_id;
      const caller = this.authenticator.authorize(
        p,
        typeof requested === 'string' ? requested : '',
        name,
        peer,
      );
      ctx = { callerId: caller.callerId, scopes: caller.scopes, deadlineAt, peer };
    } catch (e) {
      return Promise.reject(e);
    }
    return this.ctx.dispatcher.dispatch(name, request, ctx);
  }
}

/** The absolute deadline of a call: the client's, capped at the kernel's maximum; a default when none. */
export function deadlineOf(call: { getDeadline(): grpc.Deadline }, now = Date.now()): number {
  const d = call.getDeadline();
  const at = d instanceof Date ? d.getTime() : d;
  if (!Number.isFinite(at)) return now + DEFAULT_DEADLINE_MS;
  return Math.min(at, now + MAX_DEADLINE_MS);
}
