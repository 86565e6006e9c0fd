/**
 * The kernel: loads components, links their imports (to host interfaces or to other components' exports),
 * supervises them, and routes calls. It implements no policy of its own.
 *
 * Loading is all-or-nothing: every check (format, digest, ABI, grants, link targets, memory cap,
 * instantiation) happens before the component is registered, and a failure leaves no trace behind.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { digestOf, TranspileCache, type TranspiledComponent } from '../component/transpile.js';
import { capMemories, coreImports, customSections, WasmFormatError } from '../component/wasm-binary.js';
import type { DevArtifact } from '../dev/artifact.js';
import { KernelError } from '../errors.js';
import type { HostCallHandler } from '../runtime/instance.js';
import { instrument } from '../runtime/interrupt.js';
import type { BindLocal, LocalHostFunctions } from '../runtime/local.js';
import type { ReplicaOptions } from '../runtime/replica.js';
import {
  type CallOptions,
  DEFAULT_RESTART,
  Supervisor,
  type SupervisorPolicy,
  type SupervisorStatus,
} from '../runtime/supervisor.js';
import type { ImportPlan } from '../runtime/worker.js';
import { buildWasi, hasWasiProvider, isWasi } from '../sandbox/wasi.js';
import { checkGrants, type ImportRef, jsName, splitVersion } from './grants.js';

/** Name of the custom section the SDK stamps with the WIT package version a component was built against. */
export const ABI_SECTION = 'cam-os:abi';
export const SUPPORTED_ABI = ['0.1.0'] as const;

/** What the kernel needs to know to run a component; the signed manifest is mapped onto this. */
export interface LoadSpec {
  name: string;
  version?: string;
  bytes: Uint8Array;
  /** Interfaces the component may import (see grants.ts for the matching rule). */
  imports: string[];
  /** sha-256 the bytes must have (`sha256:<hex>`); checked before anything else runs. */
  digest?: string;
  /** Memory cap in 64 KiB pages for every memory the component defines. */
  memoryMaxPages?: number;
  deadlineMs?: number;
  concurrency?: number;
  queueLimit?: number;
  restart?: Partial<SupervisorPolicy['restart']>;
  /** Environment variables visible through wasi:cli/environment (only if that import is granted). */
  env?: Record<string, string>;
  /** Explicit provider per imported interface when several components export it: iface -> component. */
  links?: Record<string, string>;
  /** Free-form, shown in status (publisher, world, signature state...). */
  labels?: Record<string, string>;
  /** Passed to lifecycle.init when the component exports cam:kernel/lifecycle. */
  config?: Record<string, string>;
  /**
   * Development path (host/src/dev): run this JS artifact in place of a transpiled component; `bytes` are
   * the artifact's bytes. Everything after transpilation (grants, links, workers, swap) is unchanged.
   */
  dev?: DevArtifact;
}

export const LIFECYCLE = 'cam:kernel/lifecycle';
/** Longest time calls may be held at a hot-swap's gate (drain + state handover) before the swap is abandoned. */
export const SWAP_HANDOVER_BUDGET_MS = 3_000;

export interface SwapRecord {
  name: string;
  at: string;
  from: { version: string | undefined; digest: string };
  to: { version: string | undefined; digest: string };
  kind: 'swap' | 'rollback';
  result: 'swapped' | 'rolled-back';
  /** Why a swap was rolled back (failed health check, import-state error...). */
  reason?: string;
  /** Time new calls were held while state moved across (ms). */
  pausedMs?: number;
}

/** What the kernel tells its event observers (the audit log records each one). */
export type KernelEvent =
  | { kind: 'load'; name: string; version: string | undefined; digest: string }
  | { kind: 'unload'; name: string }
  | { kind: 'restart' | 'failed'; name: string; restarts: number; cause: string | undefined }
  | { kind: 'swap'; record: SwapRecord };

export interface HostInterface {
  /** Fully qualified interface name, e.g. `cam:kernel/log@0.1.0`. */
  name: string;
  /** Implementations keyed by jco's JS function name; `caller` is the importing component's name. */
  functions: Record<string, (caller: string, ...args: unknown[]) => unknown>;
  /** Functions the importing component's worker serves itself (runtime/local.ts). */
  local?: LocalHostFunctions;
  /**
   * Functions of `functions` a query replica may call on the kernel thread (runtime/replica.ts): they answer
   * synchronously (never a promise) and change nothing a query's answer could depend on.
   */
  inline?: readonly string[];
}

export interface ComponentInfo {
  name: string;
  version: string | undefined;
  digest: string;
  abi: string | undefined;
  imports: string[];
  exports: string[];
  memoryMaxPages: number;
  deadlineMs: number;
  concurrency: number;
  loadedAt: string;
  labels: Record<string, string>;
  status: SupervisorStatus;
}

interface Loaded {
  spec: LoadSpec;
  digest: string;
  abi: string | undefined;
  imports: ImportRef[];
  exports: string[];
  links: Map<string, string>;
  supervisor: Supervisor;
  policy: SupervisorPolicy;
  memoryMaxPages: number;
  loadedAt: Date;
}

export interface KernelOptions {
  dataDir: string;
  /** Defaults for components that do not say. */
  defaults?: { memoryMaxPages?: number; deadlineMs?: number; concurrency?: number; queueLimit?: number };
  /** Kernel-side spin budget per call (us); see runtime/channel.ts. */
  spinUs?: number;
  idleSpinUs?: number;
  /**
   * Answer query calls on a replica on the kernel thread (runtime/replica.ts). Default true; false sends
   * every call to the component's worker (the previous behaviour, kept for comparison and diagnosis).
   */
  queryReplicas?: boolean;
}

/**
 * Largest component (sum of its core modules) that gets a query replica: a replica is instantiated on the
 * kernel thread after each write that follows a query, which must stay cheap. The compiled system
 * components are ~60 KB; a componentize-js component is ~12 MB and takes ~5 ms per instantiation.
 */
export const REPLICA_MAX_CORE_BYTES = 4 * 1024 * 1024;
/**
 * Longest a query may hold the kernel thread before it is interrupted and sent to the worker instead (ms).
 * Reads take ~10-50 us; the budget is for runaway guests, and generous because a thread descheduled on a
 * loaded machine counts against it too.
 */
export const REPLICA_BUDGET_MS = 100;

const NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;
export const DEFAULT_MEMORY_MAX_PAGES = 1024; // 64 MiB
export const DEFAULT_DEADLINE_MS = 5_000;

/**
 * The loaded components by name, with the answer to "who exports this interface" kept until the set
 * changes: the dispatcher asks twice per syscall, and scanning every component's exports with version
 * splitting was ~1 us and ~0.8 KB of garbage per call under load. Every change (load, swap, unload, stop)
 * goes through set/delete/clear, which drop the index.
 */
class ComponentTable extends Map<string, Loaded> {
  private readonly providers = new Map<string, string | undefined>();

  override set(name: string, c: Loaded): this {
    this.providers.clear();
    return super.set(name, c);
  }

  override delete(name: string): boolean {
    this.providers.clear();
    return super.delete(name);
  }

  override clear(): void {
    this.providers.clear();
    super.clear();
  }

  /** The first component (in load order) exporting `iface`, any version of it. */
  providerOf(iface: string): string | undefined {
    if (this.providers.has(iface)) return this.providers.get(iface);
    const base = splitVersion(iface).base;
    let found: string | undefined;
    for (const c of this.values()) {
      if (c.exports.some((e) => e === iface || splitVersion(e).base === base)) {
        found = c.spec.name;
        break;
      }
    }
    this.providers.set(iface, found);
    return found;
  }
}

export class Kernel {
  readonly transpiler: TranspileCache;
  private readonly components = new ComponentTable();
  private readonly host = new Map<string, HostInterface>();
  private readonly compiled = new Map<string, Promise<WebAssembly.Module>>();
  private readonly loading = new Set<string>();
  /** Components in the middle of a hot-swap: calls wait on the gate, then go to whichever version is current. */
  private readonly gates = new Map<string, Promise<void>>();
  private readonly previous = new Map<string, LoadSpec[]>();
  private readonly history: SwapRecord[] = [];
  /** Observers of swaps and rollbacks (the audit log subscribes here). */
  onSwap: ((r: SwapRecord) => void) | undefined;
  /** Observers of loads, unloads, restarts, failures and swaps (the audit log subscribes here). */
  readonly events: Array<(e: KernelEvent) => void> = [];
  private stopping = false;

  constructor(readonly options: KernelOptions) {
    mkdirSync(options.dataDir, { recursive: true });
    this.transpiler = new TranspileCache(join(options.dataDir, 'cache'));
  }

  /** Offer a host interface to components (they still need a grant to import it). */
  provide(iface: HostInterface): void {
    if (!splitVersion(iface.name).version) throw new Error(`host interface ${iface.name} must be versioned`);
    this.host.set(iface.name, iface);
  }

  async load(spec: LoadSpec): Promise<ComponentInfo> {
    if (this.stopping) throw new KernelError('KERNEL_ERR_SHUTTING_DOWN', 'the kernel is shutting down');
    validateSpec(spec);
    if (this.components.has(spec.name) || this.loading.has(spec.name)) {
      throw new KernelError(
        'KERNEL_ERR_COMPONENT_EXISTS',
        `a component named '${spec.name}' is already loaded`,
      );
    }
    this.loading.add(spec.name);
    try {
      const loaded = await this.prepare(spec);
      await loaded.supervisor.start();
      try {
        await this.initLifecycle(loaded);
      } catch (e) {
        await loaded.supervisor.stop();
        throw e;
      }
      this.components.set(spec.name, loaded);
      this.emit({ kind: 'load', name: spec.name, version: spec.version, digest: loaded.digest });
      return this.info(spec.name);
    } finally {
      this.loading.delete(spec.name);
    }
  }

  /** Everything up to (not including) starting instances; shared by load and hot-swap. */
  async prepare(spec: LoadSpec): Promise<Loaded> {
    const digest = digestOf(spec.bytes);
    if (spec.digest && spec.digest !== digest) {
      throw new KernelError(
        'KERNEL_ERR_DIGEST_MISMATCH',
        `component '${spec.name}' has digest ${digest} but ${spec.digest} was pinned`,
      );
    }
    const abi = spec.dev ? checkAbi(spec.name, spec.dev.abi) : readAbi(spec);
    const t = spec.dev ? devTranspiled(digest, spec.dev) : await this.transpiler.get(spec.bytes);
    const imports = spec.dev
      ? spec.dev.imports.map((q) => ({ key: splitVersion(q).base, qualified: q }))
      : importRefs(t);
    checkGrants(spec.name, imports, spec.imports);
    const links = this.resolveLinks(spec, imports);
    const memoryMaxPages =
      spec.memoryMaxPages ?? this.options.defaults?.memoryMaxPages ?? DEFAULT_MEMORY_MAX_PAGES;
    const modules = await this.compile(t, memoryMaxPages, spec.name);
    const policy: SupervisorPolicy = {
      concurrency: spec.concurrency ?? this.options.defaults?.concurrency ?? 1,
      queueLimit: spec.queueLimit ?? this.options.defaults?.queueLimit ?? 1024,
      deadlineMs: spec.deadlineMs ?? this.options.defaults?.deadlineMs ?? DEFAULT_DEADLINE_MS,
      restart: { ...DEFAULT_RESTART, ...spec.restart },
    };
    const lifecycle = t.exports.find((e) => splitVersion(e).base === LIFECYCLE);
    const plan: Record<string, ImportPlan> = {};
    for (const i of imports) {
      const link = links.get(i.key);
      const local = link?.startsWith('host:') ? this.host.get(link.slice(5))?.local : undefined;
      plan[i.key] = isWasi(i.key)
        ? 'wasi'
        : local
          ? { module: local.module, data: local.data, caller: spec.name }
          : 'kernel';
    }
    const replica = this.replicaFor(spec, t, imports, links, memoryMaxPages);
    const supervisor = new Supervisor(
      spec.name,
      {
        name: spec.name,
        jsPath: t.jsPath,
        modules,
        plan,
        wasi: { env: spec.env ?? {} },
        hostCall: this.hostCallFor(spec.name, links),
        spinUs: this.options.spinUs,
        idleSpinUs: this.options.idleSpinUs,
      },
      policy,
      lifecycle
        ? (call) => call(lifecycle, 'init', [Object.entries(spec.config ?? {})]).then(() => undefined)
        : undefined,
      replica,
    );
    let lastFault: string | undefined;
    supervisor.onEvent = (ev) => {
      if (ev.kind === 'fault') lastFault = ev.fault ? `${ev.fault.kind}: ${ev.fault.message}` : undefined;
      else this.emit({ kind: ev.kind, name: spec.name, restarts: ev.restarts, cause: lastFault });
    };
    return {
      spec,
      digest,
      abi,
      imports,
      exports: t.exports,
      links,
      supervisor,
      policy,
      memoryMaxPages,
      loadedAt: new Date(),
    };
  }

  /**
   * The query replica of a component (runtime/replica.ts), or why it has none. Its imports are what can run
   * on the kernel thread without waiting or changing anything: WASI except poll, the host's worker-local
   * functions and its declared inline functions. Everything else refuses, which sends the query to the
   * component's worker.
   */
  private replicaFor(
    spec: LoadSpec,
    t: TranspiledComponent,
    imports: ImportRef[],
    links: Map<string, string>,
    maxPages: number,
  ): ReplicaOptions | { off: string } {
    if (this.options.queryReplicas === false) return { off: 'disabled in the kernel configuration' };
    if (spec.dev) return { off: 'development build (no core modules to instrument)' };
    const size = [...t.coreModules.values()].reduce((n, b) => n + b.byteLength, 0);
    if (size > REPLICA_MAX_CORE_BYTES) {
      return {
        off: `core modules are ${(size / 1024 / 1024).toFixed(1)} MiB; replicas are kept for components up to ${REPLICA_MAX_CORE_BYTES / 1024 / 1024} MiB`,
      };
    }
    const blocking = imports.find((i) => i.key === 'wasi:io/poll');
    if (blocking) return { off: `imports ${blocking.qualified}, which can block the kernel thread` };
    const caller = spec.name;
    return {
      name: spec.name,
      jsPath: t.jsPath,
      budgetMs: Math.min(REPLICA_BUDGET_MS, spec.deadlineMs ?? REPLICA_BUDGET_MS),
      modules: () => this.compile(t, maxPages, spec.name, true),
      imports: async (refuse) => {
        const out: Record<string, unknown> = {};
        for (const i of imports) {
          if (isWasi(i.key)) {
            out[i.key] = buildWasi(i.key, { env: spec.env ?? {} });
            continue;
          }
          const link = links.get(i.key);
          const host = link?.startsWith('host:') ? this.host.get(link.slice(5)) : undefined;
          const local: Record<string, unknown> = host?.local
            ? await ((await import(host.local.module)) as { bindLocal: BindLocal }).bindLocal(
                host.local.data,
                caller,
              )
            : {};
          const inline = new Set(host?.inline ?? []);
          out[i.key] = new Proxy(local, {
            get: (target, prop) => {
              if (typeof prop !== 'string' || prop === 'then') return undefined;
              if (Object.hasOwn(target, prop)) return target[prop];
              if (host && inline.has(prop)) {
                const f = host.functions[prop]!;
                return (...args: unknown[]) => {
                  const v = f(caller, ...args);
                  if (v instanceof Promise) {
                    throw new Error(
                      `kernel bug: ${host.name}#${prop} is declared inline but answered a promise`,
                    );
                  }
                  return v;
                };
              }
              return () => refuse(`${i.qualified}#${prop}`);
            },
          });
        }
        return out;
      },
    };
  }

  /** Decide who serves each non-WASI import: a host interface or exactly one loaded component. */
  private resolveLinks(spec: LoadSpec, imports: ImportRef[]): Map<string, string> {
    const links = new Map<string, string>();
    for (const imp of imports) {
      if (isWasi(imp.key)) {
        if (!hasWasiProvider(imp.key)) {
          throw new KernelError(
            'KERNEL_ERR_IMPORT_UNAVAILABLE',
            `component '${spec.name}' imports ${imp.qualified}, which this kernel does not offer to components`,
            { component: spec.name, import: imp.qualified },
          );
        }
        continue;
      }
      const explicit = spec.links?.[imp.qualified] ?? spec.links?.[imp.key];
      if (explicit) {
        const target = this.components.get(explicit);
        if (!target?.exports.some((e) => sameInterface(e, imp))) {
          throw new KernelError(
            'KERNEL_ERR_IMPORT_UNAVAILABLE',
            `component '${spec.name}' links ${imp.qualified} to '${explicit}', which does not export it`,
          );
        }
        links.set(imp.key, `component:${explicit}`);
        continue;
      }
      const hostIface = [...this.host.keys()].find((h) => sameInterface(h, imp));
      if (hostIface) {
        links.set(imp.key, `host:${hostIface}`);
        continue;
      }
      const providers = [...this.components.values()].filter(
        (c) => c.spec.name !== spec.name && c.exports.some((e) => sameInterface(e, imp)),
      );
      if (providers.length === 1) {
        links.set(imp.key, `component:${providers[0]!.spec.name}`);
        continue;
      }
      throw new KernelError(
        'KERNEL_ERR_IMPORT_UNAVAILABLE',
        providers.length === 0
          ? `component '${spec.name}' imports ${imp.qualified}, which neither the kernel nor a loaded component provides`
          : `component '${spec.name}' imports ${imp.qualified}, exported by ${providers.map((p) => p.spec.name).join(' and ')}; name one in the manifest's links`,
        { component: spec.name, import: imp.qualified },
      );
    }
    return links;
  }

  private hostCallFor(caller: string, links: Map<string, string>): HostCallHandler {
    return (iface, fn, args) => {
      const target = links.get(iface);
      if (!target) throw new Error(`import ${iface} is not linked`);
      if (target.startsWith('host:')) {
        const impl = this.host.get(target.slice(5))?.functions[fn];
        if (!impl) throw new Error(`host interface ${target.slice(5)} has no function ${fn}`);
        return impl(caller, ...args);
      }
      const providerName = target.slice(10);
      const gate = this.gates.get(providerName);
      if (gate) return gate.then(() => this.hostCallFor(caller, links)(iface, fn, args));
      const provider = this.components.get(providerName);
      if (!provider) {
        throw new KernelError(
          'KERNEL_ERR_COMPONENT_NOT_FOUND',
          `component '${target.slice(10)}' is no longer loaded`,
        );
      }
      const exportName = provider.exports.find((e) => splitVersion(e).base === iface)!;
      return provider.supervisor.call(exportName, fn, args).catch((e: unknown) => {
        // A typed error from the provider goes to the importer as its result error, unchanged.
        if (e instanceof KernelError && e.code === 'KERNEL_ERR_GUEST_ERROR') {
          throw Object.assign(new Error(e.message), { payload: guestPayload(e) });
        }
        throw e;
      });
    };
  }

  /** Compile a component's core modules (memory-capped; `interruptible`: instrumented for a replica). */
  private async compile(
    t: TranspiledComponent,
    maxPages: number,
    name: string,
    interruptible = false,
  ): Promise<Record<string, WebAssembly.Module>> {
    const out: Record<string, WebAssembly.Module> = {};
    for (const [file, bytes] of t.coreModules) {
      const key = `${t.digest}/${file}/${maxPages}${interruptible ? '/interruptible' : ''}`;
      let p = this.compiled.get(key);
      if (!p) {
        p = (async () => {
          let capped: Uint8Array;
          try {
            capped = capMemories(bytes, maxPages);
          } catch (e) {
            if (e instanceof WasmFormatError) {
              throw new KernelError('KERNEL_ERR_COMPONENT_INVALID', `component '${name}': ${e.message}`);
            }
            throw e;
          }
          const code = interruptible ? await instrument(capped, join(this.options.dataDir, 'cache')) : capped;
          return WebAssembly.compile(code as Uint8Array<ArrayBuffer>);
        })();
        this.compiled.set(key, p);
        p.catch(() => this.compiled.delete(key));
      }
      out[file] = await p;
    }
    return out;
  }

  /** Call an export: `iface` is a qualified export name (or unversioned), `fn` the WIT or JS name. */
  call(
    component: string,
    iface: string,
    fn: string,
    args: unknown[],
    opts: { deadlineMs?: number } & CallOptions = {},
  ): Promise<unknown> {
    const gate = this.gates.get(component);
    if (gate) return gate.then(() => this.call(component, iface, fn, args, opts));
    const c = this.components.get(component);
    if (!c)
      return Promise.reject(
        new KernelError('KERNEL_ERR_COMPONENT_NOT_FOUND', `no component named '${component}' is loaded`),
      );
    const exp = c.exports.find((e) => e === iface || splitVersion(e).base === iface);
    if (!exp) {
      return Promise.reject(
        new KernelError('KERNEL_ERR_EXPORT_MISSING', `component '${component}' does not export ${iface}`),
      );
    }
    return c.supervisor.call(exp, jsName(fn), args, opts.deadlineMs, { query: opts.query });
  }

  /** Find the component exporting an interface (for the syscall dispatcher). */
  providerOf(iface: string): string | undefined {
    return this.components.providerOf(iface);
  }

  /** Health check after start (lifecycle.init already ran on every instance, see prepare()). */
  private async initLifecycle(c: Loaded): Promise<void> {
    const life = c.exports.find((e) => splitVersion(e).base === LIFECYCLE);
    if (!life) return;
    const report = (await c.supervisor.call(life, 'health', [])) as { status?: string; detail?: string };
    if (report?.status !== 'serving') {
      throw new KernelError(
        'KERNEL_ERR_COMPONENT_FAILED',
        `component '${c.spec.name}' reports ${report?.status ?? 'no status'} after init: ${report?.detail ?? ''}`,
      );
    }
  }

  /**
   * Hot-swap: replace a running component by another build implementing the same exports.
   * The new version is loaded, initialised and health-checked beside the old one while the old keeps
   * serving. Then new calls are held at a gate, in-flight calls on the old version finish, its state moves
   * across (lifecycle export-state -> import-state), and the gate opens onto the new version. Any failure
   * before the switch stops the new version and reopens the gate onto the old one: callers never see it.
   */
  async swap(
    name: string,
    next: Omit<LoadSpec, 'name'>,
    kind: SwapRecord['kind'] = 'swap',
  ): Promise<SwapRecord> {
    if (this.stopping) throw new KernelError('KERNEL_ERR_SHUTTING_DOWN', 'the kernel is shutting down');
    const old = this.components.get(name);
    if (!old)
      throw new KernelError('KERNEL_ERR_COMPONENT_NOT_FOUND', `no component named '${name}' is loaded`);
    if (this.gates.has(name) || this.loading.has(name)) {
      throw new KernelError('KERNEL_ERR_COMPONENT_EXISTS', `component '${name}' is already being swapped`);
    }
    const spec: LoadSpec = { ...next, name };
    validateSpec(spec);
    this.loading.add(name);
    const record = (
      result: SwapRecord['result'],
      fresh: { digest: string; version?: string },
      extra: Partial<SwapRecord> = {},
    ) => {
      const r: SwapRecord = {
        name,
        at: new Date().toISOString(),
        from: { version: old.spec.version, digest: old.digest },
        to: { version: fresh.version, digest: fresh.digest },
        kind,
        result,
        ...extra,
      };
      this.history.push(r);
      if (this.history.length > 1000) this.history.shift();
      this.onSwap?.(r);
      this.emit({ kind: 'swap', record: r });
      return r;
    };
    let fresh: Loaded | undefined;
    try {
      fresh = await this.prepare(spec);
      const missing = old.exports.filter((e) => !fresh!.exports.includes(e));
      if (missing.length > 0) {
        throw new KernelError(
          'KERNEL_ERR_EXPORT_MISSING',
          `the new build of '${name}' does not export ${missing.join(', ')}, which the running version does`,
        );
      }
      await fresh.supervisor.start();
      await this.initLifecycle(fresh);
    } catch (e) {
      await fresh?.supervisor.stop();
      this.loading.delete(name);
      const reason = e instanceof Error ? e.message : String(e);
      record(
        'rolled-back',
        { digest: fresh?.digest ?? digestOf(spec.bytes), version: spec.version },
        { reason },
      );
      throw e;
    }
    // Hold new calls, let in-flight ones finish on the old version, move the state, switch.
    let open!: () => void;
    this.gates.set(name, new Promise<void>((r) => (open = r)));
    const paused = performance.now();
    const newVersion = fresh;
    const handover = async () => {
      await old.supervisor.drain();
      const oldLife = old.exports.find((e) => splitVersion(e).base === LIFECYCLE);
      const newLife = newVersion.exports.find((e) => splitVersion(e).base === LIFECYCLE);
      if (oldLife && newLife) {
        const state = await old.supervisor.call(oldLife, 'exportState', []);
        await newVersion.supervisor.call(newLife, 'importState', [state]);
        const report = (await newVersion.supervisor.call(newLife, 'health', [])) as {
          status?: string;
          detail?: string;
        };
        if (report?.status !== 'serving') {
          throw new KernelError(
            'KERNEL_ERR_COMPONENT_FAILED',
            `new version reports ${report?.status} after import-state: ${report?.detail ?? ''}`,
          );
        }
      }
    };
    // Calls wait at the gate during the handover, so it is bounded: past the budget the swap is abandoned
    // and the gate reopens onto the old version (callers see latency, never a failure caused by the swap).
    let budgetTimer: NodeJS.Timeout | undefined;
    const budget = new Promise<never>((_, reject) => {
      budgetTimer = setTimeout(
        () =>
          reject(
            new KernelError(
              'KERNEL_ERR_CALL_DEADLINE',
              `handover to the new build of '${name}' took longer than ${SWAP_HANDOVER_BUDGET_MS} ms; swap abandoned`,
            ),
          ),
        SWAP_HANDOVER_BUDGET_MS,
      );
    });
    try {
      const running = handover();
      // If the budget wins, the abandoned handover still settles later (against a stopped new version).
      running.catch(() => {});
      await Promise.race([running, budget]);
      // Importers linked to the old version resolve providers by name, so they follow the switch.
      this.components.set(name, fresh);
    } catch (e) {
      clearTimeout(budgetTimer);
      this.gates.delete(name);
      open();
      this.loading.delete(name);
      await fresh.supervisor.stop();
      record(
        'rolled-back',
        { digest: fresh.digest, version: fresh.spec.version },
        { reason: e instanceof Error ? e.message : String(e) },
      );
      throw e;
    }
    clearTimeout(budgetTimer);
    const pausedMs = performance.now() - paused;
    this.gates.delete(name);
    open();
    this.loading.delete(name);
    const stack = this.previous.get(name) ?? [];
    if (kind === 'swap') stack.push(old.spec);
    this.previous.set(name, stack.slice(-10));
    void old.supervisor.stop();
    return record(
      'swapped',
      { digest: fresh.digest, version: fresh.spec.version },
      { pausedMs: Math.round(pausedMs * 1000) / 1000 },
    );
  }

  /** Swap back to the version that ran before the last swap. */
  async rollback(name: string): Promise<SwapRecord> {
    const stack = this.previous.get(name);
    const prev = stack?.pop();
    if (!prev)
      throw new KernelError(
        'KERNEL_ERR_REQUEST_INVALID',
        `component '${name}' has no previous version to roll back to`,
      );
    try {
      return await this.swap(name, prev, 'rollback');
    } catch (e) {
      stack!.push(prev);
      throw e;
    }
  }

  swapHistory(name?: string): SwapRecord[] {
    return this.history.filter((h) => name === undefined || h.name === name);
  }

  async unload(name: string): Promise<void> {
    const c = this.components.get(name);
    if (!c) throw new KernelError('KERNEL_ERR_COMPONENT_NOT_FOUND', `no component named '${name}' is loaded`);
    const dependents = [...this.components.values()].filter((d) =>
      [...d.links.values()].includes(`component:${name}`),
    );
    if (dependents.length > 0) {
      throw new KernelError(
        'KERNEL_ERR_REQUEST_INVALID',
        `component '${name}' is imported by ${dependents.map((d) => d.spec.name).join(', ')}; unload those first`,
      );
    }
    this.components.delete(name);
    await c.supervisor.stop();
    this.emit({ kind: 'unload', name });
  }

  private emit(e: KernelEvent): void {
    for (const o of this.events) {
      try {
        o(e);
      } catch (err) {
        process.emitWarning(`kernel event observer failed: ${(err as Error).message}`);
      }
    }
  }

  list(): ComponentInfo[] {
    return [...this.components.keys()].map((n) => this.info(n));
  }

  info(name: string): ComponentInfo {
    const c = this.components.get(name);
    if (!c) throw new KernelError('KERNEL_ERR_COMPONENT_NOT_FOUND', `no component named '${name}' is loaded`);
    return {
      name,
      version: c.spec.version,
      digest: c.digest,
      abi: c.abi,
      imports: c.imports.map((i) => i.qualified),
      exports: c.exports,
      memoryMaxPages: c.memoryMaxPages,
      deadlineMs: c.policy.deadlineMs,
      concurrency: c.policy.concurrency,
      loadedAt: c.loadedAt.toISOString(),
      labels: c.spec.labels ?? {},
      status: c.supervisor.status(),
    };
  }

  has(name: string): boolean {
    return this.components.has(name);
  }

  supervisorOf(name: string): Supervisor | undefined {
    return this.components.get(name)?.supervisor;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const all = [...this.components.values()];
    this.components.clear();
    await Promise.all(all.map((c) => c.supervisor.stop()));
  }
}

function sameInterface(exportOrHost: string, imp: ImportRef): boolean {
  const a = splitVersion(exportOrHost);
  const b = splitVersion(imp.qualified);
  return a.base === b.base && (b.version === undefined || a.version === b.version);
}

function guestPayload(e: KernelError): unknown {
  const tag = e.detail?.tag;
  return typeof tag === 'string' ? { tag, val: e.message } : e.message;
}

function validateSpec(spec: LoadSpec): void {
  const bad = (msg: string) => new KernelError('KERNEL_ERR_MANIFEST_INVALID', msg);
  if (typeof spec.name !== 'string' || !NAME_RE.test(spec.name)) {
    throw bad(
      `component name '${String(spec.name)}' must be 1-63 chars of a-z, 0-9 and '-', starting with a letter`,
    );
  }
  if (!(spec.bytes instanceof Uint8Array) || spec.bytes.length === 0) throw bad('component bytes are empty');
  if (!Array.isArray(spec.imports) || spec.imports.some((i) => typeof i !== 'string' || !i.includes('/'))) {
    throw bad('imports must be a list of interface names like "cam:kernel/kv@0.1.0"');
  }
  const positive = (v: number | undefined, what: string, max: number) => {
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > max))
      throw bad(`${what} must be an integer from 1 to ${max}`);
  };
  positive(spec.memoryMaxPages, 'memoryMaxPages', 65536);
  positive(spec.deadlineMs, 'deadlineMs', 3_600_000);
  positive(spec.concurrency, 'concurrency', 64);
  positive(spec.queueLimit, 'queueLimit', 100_000);
  if (spec.env && Object.values(spec.env).some((v) => typeof v !== 'string'))
    throw bad('env values must be strings');
}

function readAbi(spec: LoadSpec): string | undefined {
  let section: Uint8Array | undefined;
  try {
    section = customSections(spec.bytes).get(ABI_SECTION);
  } catch (e) {
    throw new KernelError(
      'KERNEL_ERR_COMPONENT_INVALID',
      `component '${spec.name}': ${(e as Error).message}`,
    );
  }
  if (!section) return undefined;
  const abi = Buffer.from(section).toString('utf8');
  if (!(SUPPORTED_ABI as readonly string[]).includes(abi)) {
    throw new KernelError(
      'KERNEL_ERR_COMPONENT_ABI',
      `component '${spec.name}' was built against cam:kernel@${abi}; this kernel supports ${SUPPORTED_ABI.join(', ')} — rebuild it with a matching SDK`,
    );
  }
  return abi;
}

function checkAbi(name: string, abi: string): string {
  if (!(SUPPORTED_ABI as readonly string[]).includes(abi)) {
    throw new KernelError(
      'KERNEL_ERR_COMPONENT_ABI',
      `component '${name}' was built against cam:kernel@${abi}; this kernel supports ${SUPPORTED_ABI.join(', ')} — rebuild it with a matching SDK`,
    );
  }
  return abi;
}

/** A dev artifact seen as a transpiled component with no core modules (see host/src/dev/artifact.ts). */
function devTranspiled(digest: string, dev: DevArtifact): TranspiledComponent {
  return {
    digest,
    jsPath: dev.jsPath,
    coreModules: new Map(),
    imports: dev.imports.map((q) => splitVersion(q).base),
    exports: dev.exports,
    cached: true,
  };
}

/** The component's imports with versions, recovered from its core modules' import names. */
function importRefs(t: TranspiledComponent): ImportRef[] {
  const qualified = new Map<string, string>();
  for (const bytes of t.coreModules.values()) {
    for (const { module } of coreImports(bytes)) {
      const m = /^([a-z][\w-]*:[\w-]+\/[\w-]+)(@[\w.+-]+)?$/.exec(module);
      if (m?.[1] && m[2]) qualified.set(m[1], m[1] + m[2]);
    }
  }
  return t.imports.map((key) => ({ key, qualified: qualified.get(key) ?? key }));
}
