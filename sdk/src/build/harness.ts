/**
 * A real kernel for testing components: a `Kernel` with the four cam:kernel host interfaces over an
 * embedded (LMDB) KvStore in a temporary directory, a clock the test controls, and the log lines kept in
 * memory. Components are loaded from built `.wasm` files through `Kernel.load` (which calls `init`), so a
 * test exercises exactly the bytes that ship, the way the kernel runs them.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  hostInterfaces,
  type LogLevel,
  type LogLine,
  ManualClock,
} from '@cam-os/host/host-interfaces/index.js';
import { type ComponentInfo, Kernel, type LoadSpec } from '@cam-os/host/kernel/kernel.js';
import { type KvStore, openKv } from '@cam-os/host/kv/index.js';

export interface HarnessOptions {
  /** Start of the virtual clock, unix ms. Default: now. */
  startTimeMs?: number;
  /** Default `trace`: tests see everything. */
  logMinLevel?: LogLevel;
  /** Wraps the store the components see, e.g. to inject storage failures. */
  wrapKv?: (kv: KvStore) => KvStore;
}

export interface HarnessLoad {
  name: string;
  /** Path of a built component. */
  wasmPath: string;
  /** Interfaces to grant; normally the build's `imports`. */
  imports: string[];
  /** Passed to `lifecycle.init` (the kernel calls it on load). */
  config?: Record<string, string>;
  memoryMaxPages?: number;
  deadlineMs?: number;
}

export class ComponentHarness {
  readonly logs: LogLine[] = [];

  private constructor(
    readonly kernel: Kernel,
    readonly kv: KvStore,
    readonly clock: ManualClock,
    readonly dataDir: string,
  ) {}

  static async start(options: HarnessOptions = {}): Promise<ComponentHarness> {
    const dataDir = await mkdtemp(join(tmpdir(), 'cam-os-harness-'));
    const kv = await openKv({ backend: 'embedded', path: join(dataDir, 'kv') });
    const clock = new ManualClock(options.startTimeMs ?? Date.now());
    const kernel = new Kernel({ dataDir: join(dataDir, 'kernel') });
    const harness = new ComponentHarness(kernel, kv, clock, dataDir);
    for (const iface of hostInterfaces({
      kv: options.wrapKv ? options.wrapKv(kv) : kv,
      clock: { now: clock.now },
      log: {
        sink: (line) => harness.logs.push(JSON.parse(line) as LogLine),
        minLevel: options.logMinLevel ?? 'trace',
      },
    })) {
      kernel.provide(iface);
    }
    return harness;
  }

  async load(spec: HarnessLoad): Promise<ComponentInfo> {
    const load: LoadSpec = {
      name: spec.name,
      bytes: await readFile(spec.wasmPath),
      imports: spec.imports,
      memoryMaxPages: spec.memoryMaxPages ?? 2048,
      deadlineMs: spec.deadlineMs ?? 30_000,
      config: spec.config ?? {},
    };
    return this.kernel.load(load);
  }

  call<T = unknown>(component: string, iface: string, fn: string, ...args: unknown[]): Promise<T> {
    return this.kernel.call(component, iface, fn, args) as Promise<T>;
  }

  async stop(): Promise<void> {
    await this.kernel.stop();
    await this.kv.close();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
