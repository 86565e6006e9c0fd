/**
 * Worker-thread side of one component instance. The worker owns the instance, serves calls from the
 * channel one at a time, and blocks (Atomics.wait) while the kernel answers a host import — so a guest
 * sees synchronous imports even when the kernel serves them asynchronously (Redis, another component).
 *
 * Anything the guest does wrong (trap, bad value, exit) poisons only this instance: it is reported as
 * TRAP/EXIT and the instance is dropped until the kernel sends REINIT.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { buildWasi, GuestExit, type WasiContext } from '../sandbox/wasi.js';
import {
  Channel,
  CTL_MAIN_SLEEPING,
  CTL_REQ_SEQ,
  CTL_RESP_AT,
  CTL_RESP_SEQ,
  CTL_WOKEN_SEQ,
  Msg,
  TIME_MASK,
} from './channel.js';
import type { BindLocal } from './local.js';
import {
  describeThrown,
  type ExportMap,
  invokeExport,
  type JcoBindings,
  type Outcome,
  poisons,
} from './outcome.js';

export interface WorkerInit {
  sab: SharedArrayBuffer;
  resultsSab: SharedArrayBuffer;
  jsPath: string;
  modules: Record<string, WebAssembly.Module>;
  /** Unversioned import interface -> who serves it. */
  plan: Record<string, ImportPlan>;
  wasi: WasiContext;
  /** How long the worker spins for the next request before sleeping in Atomics.wait (microseconds). */
  idleSpinUs: number;
}

/**
 * Who serves an import: the sandbox's WASI, the kernel thread (a host call over the channel), or functions
 * this worker loads itself (runtime/local.ts) with the kernel serving whatever they leave out.
 */
export type ImportPlan = 'wasi' | 'kernel' | { module: string; data: unknown; caller: string };

const init = workerData as WorkerInit;
const ch = new Channel(init.sab, init.resultsSab);
let reqSeen = ch.load(CTL_REQ_SEQ);
let exportsMap: ExportMap | undefined;

/** Post a message to the kernel and wake it if it stopped spinning. */
function publish(): void {
  Atomics.store(ch.ctl, CTL_RESP_AT, Date.now() & TIME_MASK);
  const seq = ch.bump(CTL_RESP_SEQ);
  if (Atomics.exchange(ch.ctl, CTL_MAIN_SLEEPING, 0) === 1) {
    parentPort!.postMessage(0);
    Atomics.store(ch.ctl, CTL_WOKEN_SEQ, seq);
  }
}

/**
 * Wait for the kernel's next message: spin briefly when calls have been arriving back to back, then
 * sleep in Atomics.wait. The spin budget adapts like the kernel's (see AdaptiveSpin in instance.ts): a
 * spin that ends in sleep anyway halves it, so an idle or contended worker stops burning a shared core.
 */
let idleSpin = init.idleSpinUs;
function awaitRequest(): void {
  if (Atomics.load(ch.ctl, CTL_REQ_SEQ) === reqSeen && idleSpin > 0) {
    const until = performance.now() + idleSpin / 1000;
    while (Atomics.load(ch.ctl, CTL_REQ_SEQ) === reqSeen && performance.now() < until) {}
    const hit = Atomics.load(ch.ctl, CTL_REQ_SEQ) !== reqSeen;
    idleSpin = hit ? Math.min(init.idleSpinUs, idleSpin * 2) : idleSpin >= 4 ? idleSpin / 2 : 0;
  } else if (idleSpin === 0 && init.idleSpinUs > 0 && Math.random() < 1 / 64) {
    idleSpin = init.idleSpinUs; // probe again now and then
  }
  while (Atomics.load(ch.ctl, CTL_REQ_SEQ) === reqSeen) Atomics.wait(ch.ctl, CTL_REQ_SEQ, reqSeen);
  reqSeen = Atomics.load(ch.ctl, CTL_REQ_SEQ);
}

class HostError extends Error {
  constructor(
    message: string,
    readonly payload?: unknown,
  ) {
    super(message);
    // jco reads an own `payload` property to lower a `result` error into the guest.
    if (payload === undefined) delete (this as { payload?: unknown }).payload;
  }
}

function hostCall(iface: string, fn: string, args: unknown[]): unknown {
  ch.write(Msg.HOSTCALL, { iface, fn, args });
  publish();
  awaitRequest();
  const { kind, value } = ch.read();
  if (kind === Msg.HOST_OK) return value;
  if (kind === Msg.HOST_ERR) {
    const v = value as { message: string; payload?: unknown };
    throw new HostError(v.message, v.payload);
  }
  throw new Error(`kernel answered a host call with message kind ${kind}`);
}

function forwarder(iface: string): Record<string, unknown> {
  const cache = new Map<string, (...args: unknown[]) => unknown>();
  return new Proxy(
    {},
    {
      get(_t, prop) {
        if (typeof prop !== 'string') return undefined;
        let f = cache.get(prop);
        if (!f) {
          f = (...args: unknown[]) => hostCall(iface, prop, args);
          cache.set(prop, f);
        }
        return f;
      },
    },
  );
}

/** Worker-local functions of a host interface, with the kernel serving the rest (runtime/local.ts). */
async function localImports(
  iface: string,
  plan: { module: string; data: unknown; caller: string },
): Promise<Record<string, unknown>> {
  const mod = (await import(plan.module)) as { bindLocal?: BindLocal };
  if (typeof mod.bindLocal !== 'function') throw new Error(`${plan.module} does not export bindLocal`);
  const local = await mod.bindLocal(plan.data, plan.caller);
  const remote = forwarder(iface);
  // No `then`: an async function's result that answers `then` (as the forwarder would) gets awaited.
  return new Proxy(local, {
    get: (t, prop) =>
      typeof prop === 'string' && Object.hasOwn(t, prop)
        ? t[prop]
        : prop === 'then'
          ? undefined
          : Reflect.get(remote, prop),
  });
}

async function instantiate(): Promise<number> {
  const mod = (await import(pathToFileURL(init.jsPath).href)) as JcoBindings;
  const imports: Record<string, unknown> = {};
  for (const [iface, who] of Object.entries(init.plan)) {
    if (who === 'wasi') imports[iface] = buildWasi(iface, init.wasi);
    else if (who === 'kernel') imports[iface] = forwarder(iface);
    else imports[iface] = await localImports(iface, who);
  }
  const t0 = performance.now();
  const getCore = (name: string) => {
    const m = init.modules[name];
    if (!m) throw new Error(`transpiled component asked for unknown core module ${name}`);
    return m;
  };
  // Synchronous core instantiation: the async form costs a thread hop per core module.
  exportsMap = await mod.instantiate(getCore, imports, (m, i) => new WebAssembly.Instance(m, i));
  return performance.now() - t0;
}

function invoke(iface: string, fn: string, args: unknown[]): Outcome {
  if (!exportsMap) return { kind: Msg.TRAP, value: { message: 'instance is poisoned; awaiting REINIT' } };
  const o = invokeExport(exportsMap, iface, fn, args);
  if (poisons(o)) exportsMap = undefined;
  return o;
}

/**
 * A batch (Msg.CALLS): the calls run in order, as they would one by one. Each outcome is appended to the
 * results buffer before the next call starts (so the kernel can deliver it even if it must stop this worker
 * during a later call). A call whose deadline passed before its turn is not run. A trap or exit ends the
 * batch: the calls after it have not run, and the kernel queues them again for the restarted instance.
 */
function serveBatch(calls: Array<{ iface: string; fn: string; args: unknown[]; deadlineAt: number }>): void {
  ch.resetResults();
  for (const c of calls) {
    const o: Outcome =
      Date.now() >= c.deadlineAt ? { kind: Msg.LATE, value: undefined } : invoke(c.iface, c.fn, c.args);
    if (poisons(o)) {
      ch.write(Msg.RESULTS, { fault: o });
      return;
    }
    if (!ch.appendResult(o)) {
      ch.write(Msg.RESULTS, { overflow: o });
      return;
    }
  }
  ch.write(Msg.RESULTS, {});
}

async function main(): Promise<void> {
  try {
    const ms = await instantiate();
    ch.write(Msg.READY, { instantiateMs: ms });
  } catch (e) {
    ch.write(e instanceof GuestExit ? Msg.EXIT : Msg.TRAP, {
      message: describeThrown(e),
      phase: 'instantiate',
    });
  }
  publish();
  for (;;) {
    awaitRequest();
    const { kind, value } = ch.read();
    if (kind === Msg.CALL) {
      const { iface, fn, args } = value as { iface: string; fn: string; args: unknown[] };
      const o = invoke(iface, fn, args);
      ch.write(o.kind, o.value);
    } else if (kind === Msg.CALLS) {
      serveBatch(value as Parameters<typeof serveBatch>[0]);
    } else if (kind === Msg.REINIT) {
      try {
        const ms = await instantiate();
        ch.write(Msg.READY, { instantiateMs: ms });
      } catch (e) {
        exportsMap = undefined;
        ch.write(e instanceof GuestExit ? Msg.EXIT : Msg.TRAP, {
          message: describeThrown(e),
          phase: 'instantiate',
        });
      }
    } else {
      ch.write(Msg.TRAP, { message: `worker received unexpected message kind ${kind}` });
    }
    publish();
  }
}

void main();
