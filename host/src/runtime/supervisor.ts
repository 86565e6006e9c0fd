/**
 * Supervises one loaded component: a pool of instances (bounded concurrency), a bounded call queue,
 * and recovery. A trap or guest exit poisons one instance, which is re-instantiated in its worker after
 * an exponential backoff; a deadline kill replaces the worker. More restarts than the budget allows
 * inside its window mark the component failed: calls are refused until it is reloaded.
 */
import { fromGuestError, KernelError } from '../errors.js';
import { Msg } from './channel.js';
import {
  type BatchOutcome,
  Instance,
  type InstanceFault,
  type InstanceOptions,
  mustYield,
} from './instance.js';
import { Interrupter } from './interrupt.js';
import { Replica, type ReplicaOptions } from './replica.js';

/** Most calls sent to an instance in one batch (bounds the latency a batch adds to its first call). */
const MAX_BATCH = 32;

export interface RestartPolicy {
  /** Restarts allowed inside `windowMs` before the component is marked failed. */
  maxRestarts: number;
  windowMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export interface SupervisorPolicy {
  /** Instances serving calls in parallel (each in its own worker). */
  concurrency: number;
  /** Calls allowed to wait for a free instance before RESOURCE_EXHAUSTED. */
  queueLimit: number;
  /** Default per-call deadline (ms). */
  deadlineMs: number;
  restart: RestartPolicy;
}

export const DEFAULT_RESTART: RestartPolicy = {
  maxRestarts: 5,
  windowMs: 60_000,
  initialBackoffMs: 50,
  maxBackoffMs: 5_000,
};

export type ComponentHealth = 'starting' | 'healthy' | 'degraded' | 'failed' | 'stopped';

export interface SupervisorStatus {
  health: ComponentHealth;
  instances: { total: number; ready: number; busy: number; recovering: number };
  restarts: number;
  calls: number;
  /** Calls that reached an instance in a batch with others (queued while every instance was busy). */
  batchedCalls: number;
  /**
   * Lost wake-ups: answers the kernel found by polling while it slept, after they sat 3 ms or more with no
   * wake-up posted for them (see Instance.receive).
   */
  pollRescues: number;
  failedCalls: number;
  queued: number;
  lastError: { kind: InstanceFault['kind']; message: string; at: string } | undefined;
  lastInstantiateMs: number;
  /** The query replica on the kernel thread (runtime/replica.ts). */
  replica: ReplicaStatus;
}

export interface ReplicaStatus {
  /** `off`: not used for this component (see `reason`); `stale`: rebuilt at the next query. */
  state: 'off' | 'ready' | 'building' | 'stale';
  reason?: string;
  /** Queries the replica answered. */
  calls: number;
  /** Queries it handed to the primary (refused import, interrupt, trap), and the last reason. */
  fallbacks: number;
  lastFallback?: string;
  /** Replicas built (one after each write that followed a query, at most). */
  builds: number;
  lastInstantiateMs: number;
}

/** What the kernel tells the supervisor about a call. */
export interface CallOptions {
  /**
   * The call only reads (the syscall layer knows which exports of its service interfaces do): it may be
   * answered by the query replica, and finishing it does not make the replica stale.
   */
  query?: boolean;
}

/**
 * After a query missed on the replica (interrupted, refused an import, trapped), that export goes to the
 * primary for a while: 1 s after the first miss, doubling with each further one up to a minute, forgotten
 * after the replica answers it again. An interrupt can be the machine's fault (a descheduled thread), not
 * the query's, so one miss must not cost much; a query that always misses must not rebuild replicas forever.
 */
const REPLICA_COOLDOWN_MS = 1_000;
const REPLICA_COOLDOWN_MAX_MS = 60_000;
/**
 * Least time between two replica builds, adaptive. Under writes mixed with reads a replica goes stale soon
 * after it is built, and each build is a new wasm instance (instantiation, init, and garbage until the old
 * one is collected: +130 MB RSS and 17% slower in a 1-write-3-reads loop when rebuilt every 25 ms). So a
 * replica that answered fewer than REPLICA_WORTH queries before going stale doubles the interval (up to
 * REPLICA_REBUILD_MAX_MS), one that answered more resets it; meanwhile queries go to the worker, as they
 * did before replicas.
 */
const REPLICA_REBUILD_MIN_MS = 25;
const REPLICA_REBUILD_MAX_MS = 2_000;
const REPLICA_WORTH = 32;

interface Pending {
  iface: string;
  fn: string;
  args: unknown[];
  deadlineAt: number;
  query: boolean;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout | undefined;
}

export class Supervisor {
  private readonly idle: Instance[] = [];
  private readonly all = new Set<Instance>();
  private readonly queue: Pending[] = [];
  private recovering = 0;
  private restartTimes: number[] = [];
  private consecutiveFaults = 0;
  private health: ComponentHealth = 'starting';
  private restarts = 0;
  private calls = 0;
  private batchedCalls = 0;
  private failedCalls = 0;
  private lastError: SupervisorStatus['lastError'];
  private lastInstantiateMs = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Bumped whenever a non-query call finishes on the primary (or it restarts): replicas older are stale. */
  private generation = 0;
  private replica: { r: Replica; generation: number } | undefined;
  private replicaBuild: Promise<void> | undefined;
  private replicaBuiltAt = Number.NEGATIVE_INFINITY;
  private replicaInterval = REPLICA_REBUILD_MIN_MS;
  /** Queries the current (or last) replica answered. */
  private replicaAnswered = 0;
  private replicaOff: string | undefined;
  private readonly replicaStats: Omit<ReplicaStatus, 'state' | 'reason'> = {
    calls: 0,
    fallbacks: 0,
    builds: 0,
    lastInstantiateMs: 0,
  };
  /** Exports sent to the primary until `until`, after `misses` misses in a row on the replica. */
  private readonly replicaCooldown = new Map<string, { until: number; misses: number }>();
  /** Listeners told about every restart/failure (the audit log subscribes here). */
  onEvent:
    | ((e: { kind: 'restart' | 'failed' | 'fault'; fault?: InstanceFault; restarts: number }) => void)
    | undefined;

  constructor(
    readonly name: string,
    private readonly instanceOptions: InstanceOptions,
    readonly policy: SupervisorPolicy,
    /**
     * Run on every fresh instance before it serves — at start and after every restart — so a restarted
     * instance gets the same configuration (lifecycle.init) as the first one.
     */
    private readonly prepareInstance?: (
      call: (iface: string, fn: string, args: unknown[]) => Promise<unknown>,
    ) => Promise<void>,
    /** The query replica, or why there is none for this component. */
    private readonly replicaOptions?: ReplicaOptions | { off: string },
  ) {
    this.replicaOff =
      replicaOptions === undefined
        ? 'not configured'
        : 'off' in replicaOptions
          ? replicaOptions.off
          : undefined;
  }

  private async prepare(inst: Instance): Promise<void> {
    if (!this.prepareInstance) return;
    await this.prepareInstance((iface, fn, args) =>
      inst.call(iface, fn, args, Date.now() + this.policy.deadlineMs),
    );
  }

  async start(): Promise<void> {
    const started = await Promise.allSettled(
      Array.from({ length: this.policy.concurrency }, async () => {
        const inst = await Instance.start(this.instanceOptions);
        try {
          await this.prepare(inst);
        } catch (e) {
          await inst.terminate();
          throw e;
        }
        return inst;
      }),
    );
    const failure = started.find((r) => r.status === 'rejected');
    if (failure) {
      await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.terminate() : undefined)));
      throw failure.reason;
    }
    for (const r of started) {
      const inst = (r as PromiseFulfilledResult<Instance>).value;
      this.lastInstantiateMs = inst.lastInstantiateMs;
      this.all.add(inst);
      this.idle.push(inst);
    }
    this.health = 'healthy';
    // The first replica (instrumenting the modules, compiling them) is made now, in the background, rather
    // than when the first query arrives: seen as a 130-165 ms stall a few seconds after start otherwise.
    this.buildReplica();
  }

  call(
    iface: string,
    fn: string,
    args: unknown[],
    deadlineMs = this.policy.deadlineMs,
    opts: CallOptions = {},
  ): Promise<unknown> {
    if (this.health === 'failed') {
      return Promise.reject(
        new KernelError(
          'KERNEL_ERR_COMPONENT_FAILED',
          `component '${this.name}' is failed after ${this.restarts} restarts (last error: ${this.lastError?.message ?? 'none'}); reload it`,
        ),
      );
    }
    if (this.health === 'stopped') {
      return Promise.reject(
        new KernelError('KERNEL_ERR_COMPONENT_NOT_FOUND', `component '${this.name}' is stopped`),
      );
    }
    this.calls++;
    const deadlineAt = Date.now() + deadlineMs;
    const query = opts.query === true;
    if (query && this.replicaOff === undefined) {
      const answered = this.callReplica(iface, fn, args, deadlineAt);
      if (answered) return answered;
    }
    const inst = this.idle.pop();
    if (inst) return this.run(inst, iface, fn, args, deadlineAt, query);
    if (this.queue.length >= this.policy.queueLimit) {
      this.failedCalls++;
      return Promise.reject(
        new KernelError(
          'KERNEL_ERR_CALL_QUEUE_FULL',
          `component '${this.name}' has ${this.queue.length} calls waiting (limit ${this.policy.queueLimit})`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.enqueue({ iface, fn, args, deadlineAt, query, resolve, reject, timer: undefined });
    });
  }

  /**
   * Answer a query on the replica when there is a current one; undefined sends the call to the primary
   * (no replica yet or a stale one — a build starts —, the export cooling down, or the replica missed).
   */
  private callReplica(
    iface: string,
    fn: string,
    args: unknown[],
    deadlineAt: number,
  ): Promise<unknown> | undefined {
    if (this.health !== 'healthy') return undefined;
    const current = this.replica;
    if (!current || current.generation !== this.generation) {
      this.replica = undefined;
      this.buildReplica();
      return undefined;
    }
    // Nearly always empty: the key is only built when some export is cooling down.
    const key = this.replicaCooldown.size > 0 ? `${iface}#${fn}` : '';
    const cooling = key ? this.replicaCooldown.get(key) : undefined;
    if (cooling && Date.now() < cooling.until) return undefined;
    const o = current.r.call(iface, fn, args, deadlineAt);
    if ('miss' in o) {
      this.replica = undefined;
      this.replicaStats.fallbacks++;
      this.replicaStats.lastFallback = `${o.miss}: ${o.message}`;
      const misses = (cooling?.misses ?? 0) + 1;
      const wait = Math.min(REPLICA_COOLDOWN_MAX_MS, REPLICA_COOLDOWN_MS * 2 ** (misses - 1));
      this.replicaCooldown.set(`${iface}#${fn}`, { until: Date.now() + wait, misses });
      return undefined;
    }
    if (cooling) this.replicaCooldown.delete(key);
    this.replicaStats.calls++;
    this.replicaAnswered++;
    const settle = (): Promise<unknown> =>
      o.kind === Msg.OK
        ? Promise.resolve(o.value)
        : Promise.reject(fromGuestError(this.name, (o.value as { payload: unknown }).payload));
    // Answered synchronously: a caller looping on queries must still let the event loop turn (instance.ts).
    // (The rejection is made only when it is handed over, so it is never briefly unhandled.)
    return mustYield() ? new Promise((r) => setImmediate(() => r(settle()))) : settle();
  }

  /** Build a replica for the current generation in the background (one build at a time). */
  private buildReplica(): void {
    const opts = this.replicaOptions;
    if (this.replicaBuild || !opts || 'off' in opts) return;
    const now = performance.now();
    if (now - this.replicaBuiltAt < this.replicaInterval) return;
    if (this.replicaBuiltAt > Number.NEGATIVE_INFINITY) {
      this.replicaInterval =
        this.replicaAnswered >= REPLICA_WORTH
          ? REPLICA_REBUILD_MIN_MS
          : Math.min(REPLICA_REBUILD_MAX_MS, this.replicaInterval * 2);
    }
    this.replicaBuiltAt = now;
    this.replicaAnswered = 0;
    const generation = this.generation;
    this.replicaBuild = Interrupter.get()
      .then((it) => Replica.build(opts, it, this.prepareInstance))
      .then(
        (r) => {
          this.replicaStats.builds++;
          this.replicaStats.lastInstantiateMs = r.instantiateMs;
          if (this.health !== 'stopped') this.replica = { r, generation };
        },
        (e: unknown) => {
          // A component whose replica cannot even start (an init that writes, say) is served by the primary.
          this.replicaOff = `replica failed to start: ${e instanceof Error ? e.message : String(e)}`;
        },
      )
      .finally(() => {
        this.replicaBuild = undefined;
      });
  }

  /** A call that may have changed what queries see finished on the primary. */
  private changed(query: boolean): void {
    if (!query) this.generation++;
  }

  /** Queue a call for the next free instance (at the front: a call a batch did not get to). */
  private enqueue(p: Pending, front = false): void {
    p.timer = setTimeout(
      () => {
        const i = this.queue.indexOf(p);
        if (i >= 0) this.queue.splice(i, 1);
        this.failedCalls++;
        p.reject(
          new KernelError(
            'KERNEL_ERR_CALL_DEADLINE',
            `component '${this.name}': ${p.iface}#${p.fn} waited for a free instance past its deadline`,
          ),
        );
      },
      Math.max(0, p.deadlineAt - Date.now()),
    );
    if (front) this.queue.unshift(p);
    else this.queue.push(p);
  }

  private async run(
    inst: Instance,
    iface: string,
    fn: string,
    args: unknown[],
    deadlineAt: number,
    query: boolean,
  ): Promise<unknown> {
    try {
      const v = await inst.call(iface, fn, args, deadlineAt);
      this.changed(query);
      this.consecutiveFaults = 0;
      this.release(inst);
      return v;
    } catch (e) {
      this.changed(query);
      if (inst.state === 'ready') {
        this.release(inst); // typed guest error: the instance is fine
      } else {
        this.failedCalls++;
        this.recover(inst);
      }
      throw e;
    }
  }

  private release(inst: Instance): void {
    if (this.queue.length > 1) {
      const batch = this.queue.splice(0, MAX_BATCH);
      for (const p of batch) clearTimeout(p.timer);
      this.batchedCalls += batch.length;
      void this.runBatch(inst, batch);
      return;
    }
    const next = this.queue.shift();
    if (next) {
      clearTimeout(next.timer);
      this.run(inst, next.iface, next.fn, next.args, next.deadlineAt, next.query).then(
        next.resolve,
        next.reject,
      );
    } else {
      this.idle.push(inst);
    }
  }

  /**
   * Calls that queued up while every instance was busy go to the next free one as one batch: one round
   * trip and one wake-up of each thread for all of them, which is what a busy component's throughput is
   * bound by (the guest runs them in order, exactly as it would one by one).
   */
  private async runBatch(inst: Instance, batch: Pending[]): Promise<void> {
    let outcomes: BatchOutcome[];
    try {
      outcomes = await inst.callMany(batch);
    } catch {
      // The batch does not fit the channel (or cannot be cloned): run the first call alone, queue the rest.
      for (let i = batch.length - 1; i >= 1; i--) this.enqueue(batch[i]!, true);
      const p = batch[0]!;
      this.run(inst, p.iface, p.fn, p.args, p.deadlineAt, p.query).then(p.resolve, p.reject);
      return;
    }
    if (batch.some((p) => !p.query)) this.changed(false);
    const notRun: Pending[] = [];
    outcomes.forEach((o, i) => {
      const p = batch[i]!;
      if (o.ok) p.resolve(o.value);
      else if ('notRun' in o) notRun.push(p);
      else p.reject(o.error);
    });
    for (let i = notRun.length - 1; i >= 0; i--) this.enqueue(notRun[i]!, true);
    if (inst.state === 'ready') {
      this.consecutiveFaults = 0;
      this.release(inst);
    } else {
      this.failedCalls++;
      this.recover(inst);
    }
  }

  private recover(inst: Instance): void {
    const fault = inst.fault ?? { kind: 'crash', message: 'unknown fault' };
    this.lastError = { ...fault, at: new Date().toISOString() };
    this.onEvent?.({ kind: 'fault', fault, restarts: this.restarts });
    if (this.health === 'stopped') {
      void inst.terminate();
      this.all.delete(inst);
      return;
    }
    const now = Date.now();
    this.restartTimes = this.restartTimes.filter((t) => now - t < this.policy.restart.windowMs);
    if (this.restartTimes.length >= this.policy.restart.maxRestarts) {
      this.markFailed();
      void inst.terminate();
      this.all.delete(inst);
      return;
    }
    this.restartTimes.push(now);
    this.consecutiveFaults++;
    const { initialBackoffMs, maxBackoffMs } = this.policy.restart;
    const backoff = Math.min(maxBackoffMs, initialBackoffMs * 2 ** (this.consecutiveFaults - 1));
    this.recovering++;
    this.health = 'degraded';
    const t = setTimeout(() => {
      this.timers.delete(t);
      void this.restart(inst);
    }, backoff);
    this.timers.add(t);
  }

  private async restart(inst: Instance): Promise<void> {
    let fresh: Instance | undefined;
    try {
      if (inst.state === 'poisoned') {
        await inst.reinit();
        fresh = inst;
      } else {
        this.all.delete(inst);
        void inst.terminate();
        fresh = await Instance.start(this.instanceOptions);
        this.all.add(fresh);
      }
      await this.prepare(fresh);
      this.changed(false);
      this.restarts++;
      this.lastInstantiateMs = fresh.lastInstantiateMs;
      this.onEvent?.({ kind: 'restart', restarts: this.restarts });
    } catch {
      this.recovering--;
      if (this.health !== 'stopped' && this.health !== 'failed') this.recover(fresh ?? inst);
      return;
    }
    this.recovering--;
    if (this.health === 'stopped' || this.health === 'failed') {
      void fresh.terminate();
      this.all.delete(fresh);
      return;
    }
    if (this.recovering === 0) this.health = 'healthy';
    this.release(fresh);
  }

  private markFailed(): void {
    this.health = 'failed';
    this.onEvent?.({ kind: 'failed', restarts: this.restarts });
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.recovering = 0;
    const err = new KernelError(
      'KERNEL_ERR_COMPONENT_FAILED',
      `component '${this.name}' exceeded its restart budget (${this.policy.restart.maxRestarts} in ${this.policy.restart.windowMs} ms)`,
    );
    for (const p of this.queue.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    for (const i of this.idle.splice(0)) void i.terminate();
  }

  /** Resolves once no call is running or queued (used by hot-swap after new calls stop arriving). */
  async drain(): Promise<void> {
    for (;;) {
      let busy = this.queue.length;
      for (const i of this.all) if (i.state === 'busy') busy++;
      if (busy === 0) return;
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  status(): SupervisorStatus {
    let ready = 0;
    let busy = 0;
    for (const i of this.all) {
      if (i.state === 'ready') ready++;
      else if (i.state === 'busy') busy++;
    }
    return {
      health: this.health,
      instances: { total: this.all.size, ready, busy, recovering: this.recovering },
      restarts: this.restarts,
      calls: this.calls,
      batchedCalls: this.batchedCalls,
      pollRescues: [...this.all].reduce((n, i) => n + i.pollRescues, 0),
      failedCalls: this.failedCalls,
      queued: this.queue.length,
      lastError: this.lastError,
      lastInstantiateMs: this.lastInstantiateMs,
      replica: {
        state:
          this.replicaOff !== undefined
            ? 'off'
            : this.replicaBuild
              ? 'building'
              : this.replica && this.replica.generation === this.generation
                ? 'ready'
                : 'stale',
        ...(this.replicaOff !== undefined ? { reason: this.replicaOff } : {}),
        ...this.replicaStats,
      },
    };
  }

  async stop(): Promise<void> {
    this.health = 'stopped';
    this.replica = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const err = new KernelError('KERNEL_ERR_COMPONENT_NOT_FOUND', `component '${this.name}' was unloaded`);
    for (const p of this.queue.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.idle.length = 0;
    await Promise.all([...this.all].map((i) => i.terminate()));
    this.all.clear();
  }
}
