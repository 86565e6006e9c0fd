/**
 * A real kernel for testing components: a `Kernel` with the four cam:kernel host interfaces over an
 * embedded (LMDB) KvStore in a temporary directory, a clock the test controls, and the log lines kept in
 * memory. Components are loaded from built `.wasm` files through `Kernel.load` (which calls `init`), so a
 * test exercises exactly the bytes that ship, the way the kernel runs them.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DevBuild } from '@cam-os/host/dev/artifact.js';
import {
  hostInterfaces,
  type LogLevel,
  type LogLine,
  ManualClock,
} from '@cam-os/host/host-interfaces/index.js';
import { type ComponentInfo, Kernel, type LoadSpec, type SwapRecord } from '@cam-os/host/kernel/kernel.js';
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

/** A development-path version (see build/dev.ts) instead of a built component. */
export interface HarnessDevLoad extends Omit<HarnessLoad, 'wasmPath' | 'imports'> {
  artifact: DevBuild;
  /** Default: what the artifact imports. */
  imports?: string[];
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

  /** Load a dev artifact: the same kernel path as `load`, with the guest JS in place of a component. */
  loadDev(spec: HarnessDevLoad): Promise<ComponentInfo> {
    return this.kernel.load(this.devSpec(spec));
  }

  /** Hot-swap a loaded component for a new build or dev artifact (state moves via export/import-state). */
  async swap(name: string, next: HarnessLoad | HarnessDevLoad): Promise<SwapRecord> {
    const spec: LoadSpec =
      'artifact' in next
        ? this.devSpec(next)
        : {
            name,
            bytes: await readFile(next.wasmPath),
            imports: next.imports,
            memoryMaxPages: next.memoryMaxPages ?? 2048,
            deadlineMs: next.deadlineMs ?? 30_000,
            config: next.config ?? {},
          };
    const { name: _n, ...rest } = spec;
    return this.kernel.swap(name, rest);
  }

  private devSpec(spec: HarnessDevLoad): LoadSpec {
    return {
      name: spec.name,
      bytes: spec.artifact.bytes,
      imports: spec.imports ?? spec.artifact.imports,
      memoryMaxPages: spec.memoryMaxPages ?? 2048,
      deadlineMs: spec.deadlineMs ?? 30_000,
      config: spec.config ?? {},
      dev: {
        jsPath: spec.artifact.jsPath,
        imports: spec.artifact.imports,
        exports: spec.artifact.exports,
        abi: spec.artifact.abi,
      },
      labels: { trust: 'UNVERIFIED (dev path)' },
    };
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
