/**
 * A query replica: a second instance of a component, on the kernel thread, that answers the calls the kernel
 * marks as queries (ContextRead's `read`, ...) without the round trip to the component's worker. On these
 * 2-core VMs each cross-thread wake-up costs 50-100 us; the whole read is ~15 us on the kernel thread.
 *
 * What keeps it correct (the supervisor enforces all of it, see Supervisor.callQuery):
 * - **Same answers as the primary.** A replica is discarded as soon as any non-query call has finished on the
 *   primary after the replica was built, so whatever the guest caches in memory (the memory component's head
 *   cache) is never older than the last write. A query may therefore see state only through its imports.
 * - **No side effects.** A replica only gets imports that answer synchronously without changing anything the
 *   primary could see: WASI (no poll, which would block), the host's worker-local functions (kv reads,
 *   clock, digest) and host functions declared inline-safe (log). Any other import refuses before it runs;
 *   the call is then run on the primary instead, as if the replica did not exist.
 * - **Deadlines.** Guest code on the kernel thread is instrumented with interrupt checks (runtime/interrupt.ts)
 *   and stopped after a short budget; the call then also goes to the primary, which has the full deadline.
 * - **Anything unexpected** (a trap, an exit, an interrupt, a refused import) drops the replica and the
 *   primary answers. Only a value or a typed guest error is ever answered by the replica.
 */
import { pathToFileURL } from 'node:url';
import { Msg } from './channel.js';
import { InterruptError, type Interrupter } from './interrupt.js';
import { type ExportMap, invokeExport, type JcoBindings, type Outcome } from './outcome.js';

/** Thrown by an import the replica may not call. */
export class ReplicaRefused extends Error {
  override name = 'ReplicaRefused';
}

export interface ReplicaOptions {
  name: string;
  /** The component's jco bindings (the same file its workers load). */
  jsPath: string;
  /** The component's core modules, instrumented for interruption (interrupt.ts) and compiled. */
  modules: () => Promise<Record<string, WebAssembly.Module>>;
  /** Import objects for an instance on the kernel thread; `refuse` is what forbidden functions call. */
  imports: (refuse: (what: string) => never) => Promise<Record<string, unknown>>;
  /** Longest a query may run on the kernel thread before it is stopped and sent to the primary (ms). */
  budgetMs: number;
}

/** Why a replica could not answer; the supervisor then runs the call on the primary. */
export type ReplicaMiss = { miss: 'refused' | 'interrupted' | 'trap'; message: string };

export class Replica {
  private constructor(
    private readonly exports: ExportMap,
    private readonly interrupter: Interrupter,
    private readonly budgetMs: number,
    /** The first import the running call was refused (reset before each call). */
    private readonly refused: { what: string | undefined },
    readonly instantiateMs: number,
  ) {}

  /** Instantiate on the kernel thread; `prepare` runs on it like on every fresh worker instance (init). */
  static async build(
    opts: ReplicaOptions,
    interrupter: Interrupter,
    prepare?: (call: (iface: string, fn: string, args: unknown[]) => Promise<unknown>) => Promise<void>,
  ): Promise<Replica> {
    const modules = await opts.modules();
    const refused: { what: string | undefined } = { what: undefined };
    const imports = await opts.imports((what) => {
      refused.what ??= what;
      throw new ReplicaRefused(`${what} is not available to a query replica`);
    });
    const mod = (await import(pathToFileURL(opts.jsPath).href)) as JcoBindings;
    const check = interrupter.imports();
    const t0 = performance.now();
    const exportsMap = await mod.instantiate(
      (name) => {
        const m = modules[name];
        if (!m) throw new Error(`transpiled component asked for unknown core module ${name}`);
        return m;
      },
      imports,
      (m, i) => new WebAssembly.Instance(m, { ...i, ...check }),
    );
    const r = new Replica(exportsMap, interrupter, opts.budgetMs, refused, performance.now() - t0);
    if (prepare) {
      await prepare(async (iface, fn, args) => {
        const o = r.call(iface, fn, args, Date.now() + opts.budgetMs);
        if ('miss' in o) throw new Error(`${iface}#${fn} on the replica: ${o.message}`);
        if (o.kind !== Msg.OK) throw new Error(`${iface}#${fn} on the replica failed`);
        return o.value;
      });
    }
    return r;
  }

  /** Run one call on the kernel thread: its outcome (a value or typed error), or why the primary must answer. */
  call(iface: string, fn: string, args: unknown[], deadlineAt: number): Outcome | ReplicaMiss {
    this.refused.what = undefined;
    let o: Outcome;
    try {
      o = this.interrupter.run(Math.min(deadlineAt, Date.now() + this.budgetMs), () =>
        invokeExport(this.exports, iface, fn, args),
      );
    } catch (e) {
      if (e instanceof InterruptError) return { miss: 'interrupted', message: e.message };
      throw e;
    }
    if (this.refused.what !== undefined) {
      return { miss: 'refused', message: `${iface}#${fn} called ${this.refused.what}` };
    }
    if (o.kind === Msg.OK || o.kind === Msg.ERR) return o;
    const v = o.value as { message?: string };
    return { miss: 'trap', message: `${iface}#${fn}: ${v.message ?? 'guest exit'}` };
  }
}
