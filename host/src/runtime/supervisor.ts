/**
 * Supervises one loaded component: a pool of instances (bounded concurrency), a bounded call queue,
 * and recovery. A trap or guest exit poisons one instance, which is re-instantiated in its worker after
 * an exponential backoff; a deadline kill replaces the worker. More restarts than the budget allows
 * inside its window mark the component failed: calls are refused until it is reloaded.
 */
import { KernelError } from '../errors.js';
import { type BatchOutcome, Instance, type InstanceFault, type InstanceOptions } from './instance.js';

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
  /** Answers the kernel found by polling while it slept, not by the worker's wake-up (see Instance.receive). */
  pollRescues: number;
  failedCalls: number;
  queued: number;
  lastError: { kind: InstanceFault['kind']; message: string; at: string } | undefined;
  lastInstantiateMs: number;
}

interface Pending {
  iface: string;
  fn: string;
  args: unknown[];
  deadlineAt: number;
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
  ) {}

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
  }

  call(iface: string, fn: string, args: unknown[], deadlineMs = this.policy.deadlineMs): Promise<unknown> {
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
    const inst = this.idle.pop();
    if (inst) return this.run(inst, iface, fn, args, deadlineAt);
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
      this.enqueue({ iface, fn, args, deadlineAt, resolve, reject, timer: undefined });
    });
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
  ): Promise<unknown> {
    try {
      const v = await inst.call(iface, fn, args, deadlineAt);
      this.consecutiveFaults = 0;
      this.release(inst);
      return v;
    } catch (e) {
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
      this.run(inst, next.iface, next.fn, next.args, next.deadlineAt).then(next.resolve, next.reject);
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
      this.run(inst, p.iface, p.fn, p.args, p.deadlineAt).then(p.resolve, p.reject);
      return;
    }
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
    };
  }

  async stop(): Promise<void> {
    this.health = 'stopped';
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
