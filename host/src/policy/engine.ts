/**
 * The policy engine: OPA policies compiled to WebAssembly, evaluated with @open-policy-agent/opa-wasm.
 *
 * - Policies are kept by id; every PolicyUpdate makes a new version (1, 2, ...) and earlier versions stay
 *   retrievable. The version that answers is swapped in one assignment, so calls in flight finish on the
 *   version they started with and the next call sees the new one (hot reload, nothing dropped).
 * - `authz` is the policy every syscall is authorized through. Until an operator installs one, the
 *   built-in default answers (default-policy.wat + DEFAULT_RULES, compiled at start; see docs/policy.md).
 * - Decisions of `authz` are cached per (mode, role, caller, group, syscall) and version; a hit is a Map
 *   lookup, no allocation beyond the key, no promise.
 * - A module is checked before it is accepted (compiles, only OPA's imports, the ABI exports, ABI version 1,
 *   instantiates, entrypoints readable, evaluates a probe input); a bad one changes nothing.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseWat } from '@bytecodealliance/jco-transpile/wasm-tools';
import * as opaModule from '@open-policy-agent/opa-wasm';
import { innerMap } from '../maps.js';
import { decodePolicyData, PolicyBundleError } from './bundle.js';

export const AUTHZ_POLICY = 'authz';
export const POLICY_ID_RE = /^[a-z][a-z0-9._-]{0,63}$/;
// The package's ESM entry exports the CommonJS module as default; its types describe the named functions.
const opa = ((opaModule as unknown as { default?: typeof opaModule }).default ??
  opaModule) as typeof opaModule;
type LoadedPolicy = opaModule.LoadedPolicy;

const OPA_IMPORTS = new Set([
  'env.memory',
  'env.opa_abort',
  'env.opa_println',
  'env.opa_builtin0',
  'env.opa_builtin1',
  'env.opa_builtin2',
  'env.opa_builtin3',
  'env.opa_builtin4',
]);
const REQUIRED_EXPORTS = [
  'opa_malloc',
  'opa_json_parse',
  'opa_json_dump',
  'opa_heap_ptr_get',
  'opa_heap_ptr_set',
  'builtins',
  'entrypoints',
];
const EVAL_12 = ['opa_eval'];
const EVAL_10 = [
  'eval',
  'opa_eval_ctx_new',
  'opa_eval_ctx_set_input',
  'opa_eval_ctx_set_data',
  'opa_eval_ctx_set_entrypoint',
  'opa_eval_ctx_get_result',
];

export type RuleEffect = 'allow' | 'deny';
/** [effect, mode, role, caller, group, syscall, reason]: the built-in module's rule table format. */
export type PolicyRule = [RuleEffect, string, string, string, string, string, string];

/**
 * The built-in authorization rules (first match wins; no match = deny). Roles: `unrestricted` (no scope
 * restriction: development mode on loopback, in-process callers), `admin` (group:admin or group:*),
 * `agent` (any other authenticated identity). Scopes themselves are still enforced by the handlers.
 */
export const DEFAULT_RULES: PolicyRule[] = [
  [
    'allow',
    '*',
    'unrestricted',
    '*',
    '*',
    '*',
    'callers without scope restrictions (development mode on loopback, in-process) may call every syscall',
  ],
  ['allow', '*', 'admin', '*', '*', '*', 'administrators (group:admin) may call every syscall'],
  ['deny', '*', 'agent', '*', 'admin', 'PolicyUpdate', 'only administrators may change policies'],
  [
    'allow',
    'authenticated',
    'agent',
    '*',
    '*',
    '*',
    'authenticated agents may call the syscalls their scopes grant',
  ],
];

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what it looks for
const UNSAFE_FIELD = /["\\\u0000-\u001f]/;
const FIELD_RE = /^[A-Za-z0-9_.:*@/-]{0,256}$/;

export class PolicyError extends Error {
  constructor(
    readonly kind: 'invalid' | 'not-found',
    message: string,
  ) {
    super(message);
  }
}

export interface PolicyInput {
  mode: string;
  role: string;
  caller: string;
  group: string;
  syscall: string;
  [k: string]: unknown;
}

export interface PolicyDecision {
  allow: boolean;
  reason: string;
  /** The rule that decided (built-in module), -1 when none matched or the module does not say. */
  rule: number;
  policyId: string;
  version: number;
}

export interface PolicyVersionInfo {
  id: string;
  version: number;
  digest: string;
  createdAt: number;
  source: 'built-in' | 'update';
  encoding: 'built-in' | 'bundle' | 'wasm' | 'data';
  entrypoints: string[];
  wasmBytes: number;
  metadata: Record<string, string>;
  data: Record<string, unknown>;
}

interface Loaded {
  info: PolicyVersionInfo;
  wasm: Uint8Array;
  policy: LoadedPolicy;
  rules: PolicyRule[] | undefined;
}

let defaultWasm: Promise<Uint8Array> | undefined;

/** The built-in module, compiled from default-policy.wat (once per process). */
export function defaultPolicyWasm(): Promise<Uint8Array> {
  defaultWasm ??= (async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const wat = readFileSync(join(here, '..', '..', 'src', 'policy', 'default-policy.wat'), 'utf8');
    return parseWat(wat);
  })();
  return defaultWasm;
}

function checkRules(data: Record<string, unknown>): PolicyRule[] | undefined {
  if (!('rules' in data)) return undefined;
  const rules = data.rules;
  if (!Array.isArray(rules)) throw new PolicyError('invalid', 'data.rules must be a list');
  if (rules.length > 10_000) throw new PolicyError('invalid', 'data.rules has more than 10,000 rules');
  rules.forEach((r, i) => {
    if (!Array.isArray(r) || r.length !== 7 || !r.every((x) => typeof x === 'string')) {
      throw new PolicyError(
        'invalid',
        `data.rules[${i}] must be 7 strings [effect, mode, role, caller, group, syscall, reason]`,
      );
    }
    if (r[0] !== 'allow' && r[0] !== 'deny')
      throw new PolicyError('invalid', `data.rules[${i}][0] must be 'allow' or 'deny'`);
    for (let k = 1; k <= 5; k++) {
      if (!FIELD_RE.test(r[k] as string))
        throw new PolicyError('invalid', `data.rules[${i}][${k}] has characters a pattern may not use`);
    }
    if (/["\\]/.test(r[6] as string))
      throw new PolicyError('invalid', `data.rules[${i}][6] (reason) may not contain quotes or backslashes`);
  });
  return rules as PolicyRule[];
}

/** Check a module against OPA's wasm ABI and load it; throws PolicyError('invalid') naming the problem. */
export function loadModule(
  wasm: Uint8Array,
  data: Record<string, unknown>,
): { policy: LoadedPolicy; entrypoints: string[] } {
  let mod: WebAssembly.Module;
  try {
    mod = new WebAssembly.Module(new Uint8Array(wasm));
  } catch (e) {
    throw new PolicyError(
      'invalid',
      `policy.wasm is not a valid WebAssembly module: ${(e as Error).message}`,
    );
  }
  for (const i of WebAssembly.Module.imports(mod)) {
    const key = `${i.module}.${i.name}`;
    if (!OPA_IMPORTS.has(key)) {
      throw new PolicyError('invalid', `policy.wasm imports ${key}, which is not part of OPA's wasm ABI`);
    }
  }
  const exports = new Set(WebAssembly.Module.exports(mod).map((e) => e.name));
  for (const name of REQUIRED_EXPORTS) {
    if (!exports.has(name))
      throw new PolicyError('invalid', `policy.wasm does not export ${name} (OPA wasm ABI 1.x)`);
  }
  if (!exports.has('opa_wasm_abi_version'))
    throw new PolicyError('invalid', 'policy.wasm does not export opa_wasm_abi_version');
  if (!EVAL_12.every((n) => exports.has(n)) && !EVAL_10.every((n) => exports.has(n))) {
    throw new PolicyError(
      'invalid',
      'policy.wasm exports neither opa_eval (ABI 1.2) nor eval with the opa_eval_ctx_* functions (ABI 1.0)',
    );
  }
  let policy: LoadedPolicy;
  try {
    policy = opa.loadPolicySync(mod, { initial: 5, maximum: 1024 });
    policy.setData(data);
  } catch (e) {
    throw new PolicyError('invalid', `policy.wasm could not be instantiated: ${errText(e)}`);
  }
  const eps = policy.entrypoints as unknown;
  if (!eps || typeof eps !== 'object' || Object.keys(eps).length === 0) {
    throw new PolicyError('invalid', 'policy.wasm declares no entrypoints');
  }
  try {
    const rs = policy.evaluate({
      mode: 'development',
      role: 'unrestricted',
      caller: 'probe',
      group: 'policy',
      syscall: 'QueryPolicy',
    });
    if (!Array.isArray(rs)) throw new Error('the result set is not a list');
  } catch (e) {
    throw new PolicyError('invalid', `policy.wasm fails on a probe evaluation: ${errText(e)}`);
  }
  return { policy, entrypoints: Object.keys(eps as object) };
}

function errText(e: unknown): string {
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && 'message' in e) return String((e as { message: unknown }).message);
  return String(e);
}

export interface PolicyEngineOptions {
  /**
   * Where installed versions are kept (`<dir>/<id>/v<N>.wasm` + `v<N>.json`) and reloaded from at start;
   * in memory only when absent.
   */
  dir?: string;
  /** Told about stored versions that no longer load (they and later versions of that id are skipped). */
  warn?: (message: string) => void;
  /** Decisions cached per policy version (default 10,000 entries; the cache is cleared when full). */
  cacheSize?: number;
  now?: () => number;
}

export class PolicyEngine {
  private readonly versions = new Map<string, Loaded[]>();
  private readonly active = new Map<string, Loaded>();
  private cache: DecisionCache;
  private authz!: Loaded;
  private readonly now: () => number;
  private builtin!: Uint8Array;
  cacheHits = 0;
  cacheMisses = 0;

  private readonly dir: string | undefined;

  private constructor(opts: PolicyEngineOptions) {
    this.cache = new DecisionCache(opts.cacheSize ?? 10_000);
    this.now = opts.now ?? Date.now;
    this.dir = opts.dir;
  }

  static async open(opts: PolicyEngineOptions = {}): Promise<PolicyEngine> {
    const e = new PolicyEngine(opts);
    e.builtin = await defaultPolicyWasm();
    e.install(AUTHZ_POLICY, e.builtin, { rules: DEFAULT_RULES }, 'built-in', 'built-in', {
      description: 'CAM-OS built-in authorization policy',
    });
    if (opts.dir) e.reload(opts.dir, opts.warn ?? ((m) => process.emitWarning(m)));
    return e;
  }

  /** Reinstall the stored versions, in order, without writing them again. */
  private reload(dir: string, warn: (m: string) => void): void {
    if (!existsSync(dir)) return;
    for (const id of readdirSync(dir).sort()) {
      if (!POLICY_ID_RE.test(id)) continue;
      const versions = readdirSync(join(dir, id))
        .map((f) => /^v(\d+)\.json$/.exec(f)?.[1])
        .filter((v): v is string => v !== undefined)
        .map(Number)
        .sort((a, b) => a - b);
      for (const v of versions) {
        try {
          const info = JSON.parse(readFileSync(join(dir, id, `v${v}.json`), 'utf8')) as PolicyVersionInfo;
          const wasm = new Uint8Array(readFileSync(join(dir, id, `v${v}.wasm`)));
          const expected = (this.versions.get(id)?.length ?? 0) + 1;
          if (v !== expected) throw new Error(`expected version ${expected} next`);
          const l = this.install(id, wasm, info.data, 'update', info.encoding, info.metadata, false);
          l.info.createdAt = info.createdAt;
        } catch (e) {
          warn(
            `stored policy '${id}' v${v} was not reloaded (it and later versions are skipped): ${(e as Error).message}`,
          );
          break;
        }
      }
    }
  }

  private install(
    id: string,
    wasm: Uint8Array,
    data: Record<string, unknown>,
    source: PolicyVersionInfo['source'],
    encoding: PolicyVersionInfo['encoding'],
    metadata: Record<string, string>,
    persist = source === 'update',
  ): Loaded {
    const rules = checkRules(data);
    const { policy, entrypoints } = loadModule(wasm, data);
    const list = this.versions.get(id) ?? [];
    const info: PolicyVersionInfo = {
      id,
      version: list.length + 1,
      digest: `sha256:${createHash('sha256').update(wasm).update(JSON.stringify(data)).digest('hex')}`,
      createdAt: this.now(),
      source,
      encoding,
      entrypoints,
      wasmBytes: wasm.byteLength,
      metadata,
      data,
    };
    const loaded: Loaded = { info, wasm, policy, rules };
    if (persist && this.dir) {
      const d = join(this.dir, id);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `v${info.version}.wasm`), wasm);
      writeFileSync(join(d, `v${info.version}.json`), `${JSON.stringify(info, null, 2)}\n`);
    }
    list.push(loaded);
    this.versions.set(id, list);
    this.active.set(id, loaded);
    if (id === AUTHZ_POLICY) {
      this.authz = loaded;
      this.cache.clear();
    }
    return loaded;
  }

  /**
   * PolicyUpdate: decode `bytes` (see bundle.ts), check, and make it the new version of `id`.
   * A JSON data object keeps the current module of `id` (the built-in module for a new id).
   */
  update(id: string, bytes: Uint8Array, metadata: Record<string, string> = {}): PolicyVersionInfo {
    if (!POLICY_ID_RE.test(id)) {
      throw new PolicyError('invalid', `policy id '${id}' must match ${POLICY_ID_RE.source}`);
    }
    let decoded: ReturnType<typeof decodePolicyData>;
    try {
      decoded = decodePolicyData(bytes);
    } catch (e) {
      if (e instanceof PolicyBundleError) throw new PolicyError('invalid', e.message);
      throw e;
    }
    const current = this.active.get(id);
    const wasm = decoded.wasm ?? current?.wasm ?? this.builtin;
    const data = decoded.data ?? (decoded.wasm ? {} : (current?.info.data ?? {}));
    return this.install(id, wasm, data, 'update', decoded.encoding, metadata).info;
  }

  /** Make an earlier version current again (as a new version, so the history only grows). */
  revert(id: string, version: number): PolicyVersionInfo {
    const v = this.versions.get(id)?.[version - 1];
    if (!v) throw new PolicyError('not-found', `policy '${id}' has no version ${version}`);
    return this.install(id, v.wasm, v.info.data, 'update', v.info.encoding, {
      ...v.info.metadata,
      revertedFrom: String(version),
    }).info;
  }

  list(): PolicyVersionInfo[] {
    return [...this.active.values()].map((l) => l.info);
  }

  versionsOf(id: string): PolicyVersionInfo[] {
    return (this.versions.get(id) ?? []).map((l) => l.info);
  }

  get(id: string, version?: number): PolicyVersionInfo | undefined {
    if (version === undefined || version === 0) return this.active.get(id)?.info;
    return this.versions.get(id)?.[version - 1]?.info;
  }

  /** Evaluate one policy (its current version) on an input; `entrypoint` defaults to the first. */
  evaluate(id: string, input: Record<string, unknown>, entrypoint?: string): PolicyDecision {
    const l = this.active.get(id);
    if (!l)
      throw new PolicyError(
        'not-found',
        `no policy named '${id}' is installed (installed: ${[...this.active.keys()].join(', ')})`,
      );
    return this.run(l, input, entrypoint);
  }

  private run(l: Loaded, input: Record<string, unknown>, entrypoint?: string): PolicyDecision {
    if (entrypoint !== undefined && entrypoint !== '' && !l.info.entrypoints.includes(entrypoint)) {
      throw new PolicyError(
        'invalid',
        `policy '${l.info.id}' has no entrypoint '${entrypoint}' (it has: ${l.info.entrypoints.join(', ')})`,
      );
    }
    let rs: unknown;
    try {
      rs = l.policy.evaluate(input, entrypoint || 0);
    } catch (e) {
      // A trapping policy denies: failing open would let a broken policy grant everything.
      return {
        allow: false,
        reason: `policy '${l.info.id}' v${l.info.version} failed: ${errText(e)}`,
        rule: -1,
        policyId: l.info.id,
        version: l.info.version,
      };
    }
    return this.interpret(l, rs);
  }

  private interpret(l: Loaded, rs: unknown): PolicyDecision {
    const base = { policyId: l.info.id, version: l.info.version };
    if (!Array.isArray(rs) || rs.length === 0) {
      return {
        ...base,
        allow: false,
        rule: -1,
        reason: `policy '${l.info.id}' v${l.info.version} gives no result for this input (undefined: denied)`,
      };
    }
    const r = (rs[0] as { result?: unknown }).result;
    if (typeof r === 'boolean')
      return {
        ...base,
        allow: r,
        rule: -1,
        reason: `policy '${l.info.id}' v${l.info.version} returned ${r}`,
      };
    if (r && typeof r === 'object' && typeof (r as { allow?: unknown }).allow === 'boolean') {
      const o = r as { allow: boolean; reason?: unknown; rule?: unknown };
      const rule = typeof o.rule === 'number' ? o.rule : -1;
      let reason = typeof o.reason === 'string' ? o.reason : undefined;
      if (!reason && l.rules) {
        reason =
          rule >= 0 && l.rules[rule]
            ? `rule ${rule} of policy '${l.info.id}' v${l.info.version}: ${l.rules[rule][6]}`
            : `no rule of policy '${l.info.id}' v${l.info.version} matches (denied by default)`;
      }
      return {
        ...base,
        allow: o.allow,
        rule,
        reason: reason ?? `policy '${l.info.id}' v${l.info.version} returned allow=${o.allow}`,
      };
    }
    return {
      ...base,
      allow: false,
      rule: -1,
      reason: `policy '${l.info.id}' v${l.info.version} returned a result without a boolean 'allow' (denied)`,
    };
  }

  /**
   * Authorize one syscall through the `authz` policy. Cached: a repeat of the same (mode, role, caller,
   * group, syscall) on the same policy version is a Map lookup.
   */
  authorize(mode: string, role: string, caller: string, group: string, syscall: string): PolicyDecision {
    const hit = this.cache.get(mode, role, caller, group, syscall);
    if (hit !== undefined) {
      this.cacheHits++;
      return hit;
    }
    this.cacheMisses++;
    const d = UNSAFE_FIELD.test(caller)
      ? {
          allow: false,
          rule: -1,
          reason: `caller id contains quotes, backslashes or control characters, which no policy rule can match (denied)`,
          policyId: this.authz.info.id,
          version: this.authz.info.version,
        }
      : this.run(this.authz, { mode, role, caller, group, syscall });
    this.cache.set(mode, role, caller, group, syscall, d);
    return d;
  }

  /** Drop cached decisions (benchmarks measure the cold path with it). */
  clearCache(): void {
    this.cache.clear();
  }
}

type Level<T> = Map<string, T>;

/**
 * Authorization decisions by (mode, role, caller, group, syscall), as nested maps: a lookup on every syscall
 * builds no key string (joining the five parts cost a string per call). Emptied whole when it reaches its
 * capacity or the policy changes.
 */
class DecisionCache {
  private root: Level<Level<Level<Level<Level<PolicyDecision>>>>> = new Map();
  private size = 0;

  constructor(private readonly capacity: number) {}

  get(
    mode: string,
    role: string,
    caller: string,
    group: string,
    syscall: string,
  ): PolicyDecision | undefined {
    return this.root.get(mode)?.get(role)?.get(caller)?.get(group)?.get(syscall);
  }

  set(mode: string, role: string, caller: string, group: string, syscall: string, d: PolicyDecision): void {
    if (this.size >= this.capacity) this.clear();
    const leaf = innerMap(innerMap(innerMap(innerMap(this.root, mode), role), caller), group);
    if (!leaf.has(syscall)) this.size++;
    leaf.set(syscall, d);
  }

  clear(): void {
    this.root = new Map();
    this.size = 0;
  }
}
