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
import { KernelError } from '../errors.js';
import type { HostCallHandler } from '../runtime/instance.js';
import {
  DEFAULT_RESTART,
  Supervisor,
  type SupervisorPolicy,
  type SupervisorStatus,
} from '../runtime/supervisor.js';
import { hasWasiProvider, isWasi } from '../sandbox/wasi.js';
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
}

export interface HostInterface {
  /** Fully qualified interface name, e.g. `cam:kernel/log@0.1.0`. */
  name: string;
  /** Implementations keyed by jco's JS function name; `caller` is the importing component's name. */
  functions: Record<string, (caller: string, ...args: unknown[]) => unknown>;
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
}

const NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;
export const DEFAULT_MEMORY_MAX_PAGES = 1024; // 64 MiB
export const DEFAULT_DEADLINE_MS = 5_000;

export class Kernel {
  readonly transpiler: TranspileCache;
  private readonly components = new Map<string, Loaded>();
  private readonly host = new Map<string, HostInterface>();
  private readonly compiled = new Map<string, Promise<WebAssembly.Module>>();
  private readonly loading = new Set<string>();
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
      this.components.set(spec.name, loaded);
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
    const abi = readAbi(spec);
    const t = await this.transpiler.get(spec.bytes);
    const imports = importRefs(t);
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
    const plan: Record<string, 'wasi' | 'kernel'> = {};
    for (const i of imports) plan[i.key] = isWasi(i.key) ? 'wasi' : 'kernel';
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
    );
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
      const provider = this.components.get(target.slice(10));
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

  private async compile(
    t: TranspiledComponent,
    maxPages: number,
    name: string,
  ): Promise<Record<string, WebAssembly.Module>> {
    const out: Record<string, WebAssembly.Module> = {};
    for (const [file, bytes] of t.coreModules) {
      const key = `${t.digest}/${file}/${maxPages}`;
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
          return WebAssembly.compile(capped as Uint8Array<ArrayBuffer>);
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
    opts: { deadlineMs?: number } = {},
  ): Promise<unknown> {
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
    return c.supervisor.call(exp, jsName(fn), args, opts.deadlineMs);
  }

  /** Find the component exporting an interface (for the syscall dispatcher). */
  providerOf(iface: string): string | undefined {
    for (const c of this.components.values()) {
      if (c.exports.some((e) => e === iface || splitVersion(e).base === splitVersion(iface).base))
        return c.spec.name;
    }
    return undefined;
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
