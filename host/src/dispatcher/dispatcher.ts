/**
 * The syscall dispatcher: one table from syscall name to handler. Every syscall — whether it arrives over
 * the CAM-OS gRPC service, a streaming session or the in-process API — goes through `dispatch`, which
 * validates the request, applies the deadline, records metrics and turns every failure into a sanitized
 * KernelError from the catalogue. Handlers route to components; the kernel implements no policy here.
 */
import { KernelError, sanitize } from '../errors.js';
import { LatencyHistogram } from './histogram.js';

export type SyscallGroup = 'tasks' | 'policy' | 'context' | 'security' | 'observability' | 'admin';

export interface CallContext {
  /** The authenticated identity (or, in development mode, the caller_id the request names). */
  callerId: string;
  /** Absolute deadline, ms since epoch. */
  deadlineAt: number;
  /** Scopes granted to the caller (syscall groups, context namespaces); undefined = unrestricted. */
  scopes?: readonly string[];
  traceId?: string;
  /** The transport peer (address) of a call that came over the network, for the decisions it causes. */
  peer?: string;
}

export interface SyscallDef<Req = unknown, Res = unknown> {
  name: string;
  group: SyscallGroup;
  summary: string;
  /** Parse and check a request; throw KERNEL_ERR_REQUEST_INVALID naming the field. */
  validate(req: unknown): Req;
  handle(req: Req, ctx: CallContext): Promise<Res>;
  /**
   * What backs this syscall right now: undefined when it is available, or a sentence naming the missing
   * part (it is then answered UNIMPLEMENTED and reported by HealthCheck — never a fake success).
   */
  unavailable?(): string | undefined;
}

export interface SyscallMetrics {
  name: string;
  group: SyscallGroup;
  calls: number;
  errors: Record<string, number>;
  p50Us: number;
  p99Us: number;
  available: boolean;
  missing: string | undefined;
}

export const MAX_DEADLINE_MS = 300_000;
export const DEFAULT_DEADLINE_MS = 10_000;

export class Dispatcher {
  private readonly table = new Map<string, SyscallDef>();
  private readonly deadlines = new Deadlines();
  private readonly stats = new Map<
    string,
    { calls: number; errors: Record<string, number>; hist: LatencyHistogram }
  >();
  /**
   * Authorization hooks, run after `validate` and before `handle` (the policy engine installs one). They are
   * synchronous so a cached decision costs no promise; a refusal throws a KernelError.
   */
  readonly authorizers: Array<(name: string, group: SyscallGroup, ctx: CallContext) => void> = [];
  /** Observers of every completed call (metrics exporters, the audit log). */
  readonly observers: Array<
    (e: { name: string; ctx: CallContext; durationUs: number; error?: KernelError }) => void
  > = [];

  register<Req, Res>(def: SyscallDef<Req, Res>): void {
    if (this.table.has(def.name)) throw new Error(`syscall ${def.name} registered twice`);
    this.table.set(def.name, def as SyscallDef);
    this.stats.set(def.name, { calls: 0, errors: {}, hist: new LatencyHistogram() });
  }

  has(name: string): boolean {
    return this.table.has(name);
  }

  definition(name: string): SyscallDef | undefined {
    return this.table.get(name);
  }

  /**
   * Run syscall `name`. Never throws: every failure is a rejected promise with a sanitized KernelError. Written
   * without `async`/`await` so a call makes one promise of its own and one deadline timer (with promise hooks
   * on, as they are while tracing, each await cost hook calls and allocations on every syscall).
   */
  dispatch(name: string, request: unknown, ctx: CallContext): Promise<unknown> {
    const def = this.table.get(name);
    if (!def) {
      return Promise.reject(new KernelError('KERNEL_ERR_SYSCALL_UNKNOWN', `no syscall named '${name}'`));
    }
    const stat = this.stats.get(name)!;
    const start = process.hrtime.bigint();
    stat.calls++;
    let running: Promise<unknown>;
    try {
      const missing = def.unavailable?.();
      if (missing)
        throw new KernelError('KERNEL_ERR_SYSCALL_UNAVAILABLE', `${name} is unavailable: ${missing}`);
      if (ctx.deadlineAt <= Date.now()) {
        throw new KernelError(
          'KERNEL_ERR_CALL_DEADLINE',
          `${name}: the deadline passed before the call started`,
        );
      }
      const req = def.validate(request);
      for (const a of this.authorizers) a(name, def.group, ctx);
      running = def.handle(req, ctx);
    } catch (e) {
      return Promise.reject(this.failed(name, stat, start, ctx, e));
    }
    // Whichever comes first settles the call: the handler (its deadline still pending) or the deadline.
    return new Promise((resolve, reject) => {
      const deadline = this.deadlines.add(ctx.deadlineAt, () => {
        const e = new KernelError('KERNEL_ERR_CALL_DEADLINE', `${name} did not finish before its deadline`);
        reject(this.failed(name, stat, start, ctx, e));
      });
      running.then(
        (v) => {
          if (!this.deadlines.delete(deadline)) return;
          const us = Number(process.hrtime.bigint() - start) / 1000;
          stat.hist.record(us);
          for (const o of this.observers) o({ name, ctx, durationUs: us });
          resolve(v);
        },
        (e: unknown) => {
          if (!this.deadlines.delete(deadline)) return;
          reject(this.failed(name, stat, start, ctx, e));
        },
      );
    });
  }

  /** Count and report a failed call; the sanitized error to reject with. */
  private failed(
    name: string,
    stat: { errors: Record<string, number>; hist: LatencyHistogram },
    start: bigint,
    ctx: CallContext,
    e: unknown,
  ): KernelError {
    const err = sanitize(e);
    stat.errors[err.code] = (stat.errors[err.code] ?? 0) + 1;
    const us = Number(process.hrtime.bigint() - start) / 1000;
    stat.hist.record(us);
    for (const o of this.observers) o({ name, ctx, durationUs: us, error: err });
    return err;
  }

  metrics(): SyscallMetrics[] {
    return [...this.table.values()].map((def) => {
      const s = this.stats.get(def.name)!;
      const missing = def.unavailable?.();
      return {
        name: def.name,
        group: def.group,
        calls: s.calls,
        errors: { ...s.errors },
        p50Us: s.hist.quantile(0.5),
        p99Us: s.hist.quantile(0.99),
        available: missing === undefined,
        missing,
      };
    });
  }
}

interface PendingDeadline {
  at: number;
  expire: () => void;
}

/**
 * The deadlines of the calls in flight behind one timer, armed for the earliest. A timer per call cost a
 * Timeout, its async-hook init (AsyncLocalStorage is on while tracing) and two timer-list updates on every
 * syscall; calls nearly always finish long before their deadline. When the timer fires it expires what is
 * due and re-arms for the earliest deadline left. With no call in flight it is unref'd rather than cleared,
 * so it neither keeps the process alive nor has to be re-made for the next call.
 */
class Deadlines {
  private readonly pending = new Set<PendingDeadline>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;

  add(deadlineAt: number, expire: () => void): PendingDeadline {
    // A deadline that is not a number expires at once, as a timer given one did (Node fires it after 1 ms).
    const at = Number.isFinite(deadlineAt) ? deadlineAt : Date.now();
    const d = { at, expire };
    if (this.pending.size === 0) this.timer?.ref();
    this.pending.add(d);
    if (at < this.armedFor) this.arm(at);
    return d;
  }

  /** Take `d` off (its call finished); false if it had already expired. */
  delete(d: PendingDeadline): boolean {
    if (!this.pending.delete(d)) return false;
    if (this.pending.size === 0) this.timer?.unref();
    return true;
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - Date.now()));
    if (this.pending.size === 0) this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const d of this.pending) {
      if (d.at <= now) {
        this.pending.delete(d);
        d.expire();
      } else if (d.at < next) next = d.at;
    }
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
  }
}

/** Clamp a client-supplied timeout into the kernel's range. */
export function deadlineFrom(timeoutMs: number | undefined, now = Date.now()): number {
  const ms =
    timeoutMs === undefined || !Number.isFinite(timeoutMs) || timeoutMs <= 0
      ? DEFAULT_DEADLINE_MS
      : timeoutMs;
  return now + Math.min(ms, MAX_DEADLINE_MS);
}
