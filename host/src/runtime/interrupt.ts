/**
 * Deadlines for guest code that runs on the kernel thread (query replicas, runtime/replica.ts): epoch
 * interruption, as wasmtime does it, because a thread cannot be stopped from outside in Node except by
 * terminating a worker.
 *
 * - `instrument()` rewrites a core module (binaryen's `log-execution` pass) so that every function entry,
 *   loop header and return first calls the import `cam-os:interrupt` `log_execution`.
 * - That import is `check`, a 6-instruction wasm function over a shared memory: it traps (`unreachable`)
 *   when the interrupt word names the call running now.
 * - A watchdog worker thread ticks every few milliseconds while inline calls are being made, and writes the
 *   running call's sequence number into the interrupt word once that call is past its deadline.
 *
 * Starting and ending a call are three plain atomic stores: no thread wake-up, no syscall, which is the point
 * (a cross-thread wake-up costs 50-100 us on these VMs; the kernel's read path is ~15 us without one).
 *
 * Why this and not the alternatives (../shared/notes/wasm-toolchain.md): `vm.runInContext` with `timeout`
 * starts a watchdog thread per run (~85 us per call); the worker-thread path pays two wake-ups per call.
 * The check costs a wasm-to-wasm call per loop iteration: measured in bench/memory.bench.ts.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { withoutCustomSections } from '../component/wasm-binary.js';
import { distModule } from './local.js';

/** Int32 slots of the shared page. */
const SEQ = 0; // the inline call running now (0: none)
const INTERRUPT = 1; // the call the watchdog wants stopped
const SLEEPING = 2; // the watchdog sleeps until woken (no inline call for a while)
const WAKE = 3; // bumped (and notified) to wake a sleeping watchdog
const LATEST = 4; // the last call started (how the watchdog knows calls are being made)
/** Float64 slot: the running call's deadline, Date.now() milliseconds. */
const DEADLINE_F64 = 3; // byte 24

export const INTERRUPT_SLOTS = { SEQ, INTERRUPT, SLEEPING, WAKE, LATEST, DEADLINE_F64 } as const;

/**
 * The trap helper, 88 bytes, assembled (binaryen) from:
 *   (module
 *     (import "interrupt" "memory" (memory 1 1 shared))
 *     (func (export "check") (param i32)
 *       (local $i i32)
 *       (local.set $i (i32.atomic.load offset=4 (i32.const 0)))
 *       (if (local.get $i)
 *         (then (if (i32.eq (local.get $i) (i32.atomic.load (i32.const 0))) (then unreachable))))))
 * It traps when the interrupt word names the call running now.
 */
const CHECK_WASM = Buffer.from(
  'AGFzbQEAAAABBQFgAX8AAhYBCWludGVycnVwdAZtZW1vcnkCAwEBAwIBAAcJAQVjaGVjawAACiABHgEBf0EA/hACBCEBIAEEQCABQQD+EAIARgRAAAsLCw==',
  'base64',
);

/** Where instrumented modules import the check from (`log_execution`, binaryen's name for it). */
export const CHECK_MODULE = 'cam-os:interrupt';

/** How often the watchdog looks at the running call while inline calls are being made (ms). */
const TICK_MS = 10;
/** After this long without an inline call, the watchdog sleeps until the next one wakes it (ms). */
const IDLE_MS = 1_000;

export class InterruptError extends Error {
  override name = 'InterruptError';
}

/** Bump when the instrumentation changes, so cached instrumented modules are not reused. */
const INSTRUMENT_VERSION = 1;

/**
 * A core module with an interrupt check at every function entry, loop header and return. The check is the
 * import `cam-os:interrupt` `log_execution(i32)`; `Interrupter.imports()` supplies it.
 *
 * binaryen.js is ~12 MB of JS and wasm and keeps ~150 MB of RSS once loaded, so it runs in a short-lived
 * worker thread, never in the kernel's own heap; with `cacheDir` the result is kept on disk by the module's
 * sha-256 and later starts do not run binaryen at all.
 */
export async function instrument(bytes: Uint8Array, cacheDir?: string): Promise<Uint8Array> {
  const probe = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  if (WebAssembly.Module.imports(probe).some((i) => i.module === CHECK_MODULE)) {
    throw new InterruptError(`module already imports from ${CHECK_MODULE}; it cannot be instrumented`);
  }
  const file = cacheDir
    ? join(
        cacheDir,
        `interrupt-v${INSTRUMENT_VERSION}`,
        `${createHash('sha256').update(bytes).digest('hex')}.wasm`,
      )
    : undefined;
  if (file) {
    const cached = await readFile(file).catch(() => undefined);
    if (cached && WebAssembly.validate(cached)) return cached;
  }
  // Custom sections go: nothing needs them in a replica, and binaryen warns on stderr about name
  // subsections it does not know (wasm-tools writes some).
  const out = await inWorker(withoutCustomSections(bytes));
  if (file) {
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, out);
    await rename(tmp, file);
  }
  return out;
}

function inWorker(bytes: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const w = new Worker(sibling('./instrument-worker.js'), {
      workerData: { bytes, module: CHECK_MODULE },
      name: 'instrument',
      env: {},
    });
    let settled = false;
    w.once('message', (m: { ok?: Uint8Array; error?: string }) => {
      settled = true;
      if (m.ok) resolve(m.ok);
      else reject(new InterruptError(`cannot instrument the module: ${m.error}`));
    });
    w.once('error', (e) => {
      settled = true;
      reject(new InterruptError(`cannot instrument the module: ${e.message}`));
    });
    w.once('exit', (code) => {
      if (!settled) reject(new InterruptError(`the instrumenting thread exited with code ${code}`));
    });
  });
}

/** The path of a compiled (host/dist) module beside this one: under vitest the sources run from host/src. */
function sibling(rel: string): string {
  return fileURLToPath(distModule(new URL(rel, import.meta.url)));
}

/**
 * One per kernel process: the shared page, the check function and the watchdog thread. Inline calls are
 * strictly nested-free (the kernel thread runs one at a time), so one "running call" slot is enough.
 */
export class Interrupter {
  private static shared: Promise<Interrupter> | undefined;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private seq = 0;
  private watchdog: Worker | undefined;
  /** Calls stopped by the watchdog since start. */
  interrupts = 0;

  private constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly check: (id: number) => void,
  ) {
    this.i32 = new Int32Array(memory.buffer);
    this.f64 = new Float64Array(memory.buffer);
  }

  /** The process-wide interrupter (its watchdog thread starts with the first call of `get`). */
  static get(): Promise<Interrupter> {
    Interrupter.shared ??= Interrupter.create();
    Interrupter.shared.catch(() => {
      Interrupter.shared = undefined;
    });
    return Interrupter.shared;
  }

  private static async create(): Promise<Interrupter> {
    const bin = CHECK_WASM;
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bin as Uint8Array<ArrayBuffer>), {
      interrupt: { memory },
    });
    const it = new Interrupter(memory, inst.exports.check as (id: number) => void);
    it.start();
    return it;
  }

  private start(): void {
    const w = new Worker(sibling('./interrupt-watchdog.js'), {
      workerData: { memory: this.memory, tickMs: TICK_MS, idleMs: IDLE_MS },
      name: 'interrupt-watchdog',
      env: {},
    });
    // The watchdog must not keep the process alive, and a kernel whose watchdog died must not run guest
    // code on its own thread: `run` refuses once it is gone.
    w.unref();
    w.on('error', () => {
      this.watchdog = undefined;
    });
    w.on('exit', () => {
      this.watchdog = undefined;
    });
    this.watchdog = w;
  }

  /** The import module an instrumented module needs (added to what its bindings pass it). */
  imports(): { [CHECK_MODULE]: { log_execution: (id: number) => void } } {
    return { [CHECK_MODULE]: { log_execution: this.check } };
  }

  get alive(): boolean {
    return this.watchdog !== undefined;
  }

  /**
   * Run `f` (synchronous guest code) with a deadline. Returns what `f` returns; throws what it throws, except
   * that a trap caused by the watchdog is reported as an InterruptError.
   */
  run<T>(deadlineAt: number, f: () => T): T {
    if (!this.watchdog) throw new InterruptError('the interrupt watchdog is not running');
    if (Atomics.load(this.i32, SEQ) !== 0) throw new InterruptError('inline calls cannot nest');
    this.seq = this.seq >= 0x7fff_fffe ? 1 : this.seq + 1;
    const seq = this.seq;
    this.f64[DEADLINE_F64] = deadlineAt;
    Atomics.store(this.i32, SEQ, seq);
    Atomics.store(this.i32, LATEST, seq);
    if (Atomics.load(this.i32, SLEEPING) === 1) {
      Atomics.add(this.i32, WAKE, 1);
      Atomics.notify(this.i32, WAKE);
    }
    let out: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      out = { ok: true, value: f() };
    } catch (e) {
      out = { ok: false, error: e };
    }
    Atomics.store(this.i32, SEQ, 0);
    // Checked whether `f` threw or not: it may have turned the trap into a value of its own (an outcome).
    if (Atomics.load(this.i32, INTERRUPT) === seq) {
      this.interrupts++;
      throw new InterruptError('the call passed its deadline on the kernel thread and was interrupted');
    }
    if (!out.ok) throw out.error;
    return out.value;
  }

  /** Stop the watchdog (tests; the process-wide instance lives as long as the process). */
  static async shutdown(): Promise<void> {
    const p = Interrupter.shared;
    Interrupter.shared = undefined;
    const it = await p?.catch(() => undefined);
    await it?.watchdog?.terminate();
  }
}
