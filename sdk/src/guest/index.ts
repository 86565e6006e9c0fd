/**
 * Guest-side helpers for driver authors: `import { lifecycle, kernelError } from '@cam-os/sdk/guest'`.
 *
 * This module runs INSIDE the component (SpiderMonkey in wasm, or the dev path's sandbox): no Node, no
 * imports, only ECMAScript plus TextEncoder/TextDecoder. `cam-os driver build` resolves the specifier to
 * this file, so it is bundled into the driver.
 *
 * `lifecycle()` implements the `cam:kernel/lifecycle` contract once, correctly: `init` exactly once (a
 * second call is failed-precondition), unknown config keys refused, `export-state` as versioned JSON (64-bit
 * integers kept as bigint), `import-state` refusing a newer format with `unimplemented`.
 */

export type KernelErrorTag =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'permission-denied'
  | 'failed-precondition'
  | 'resource-exhausted'
  | 'unavailable'
  | 'unimplemented'
  | 'internal';

export type KernelError = { tag: KernelErrorTag; val: string } | { tag: 'deadline-exceeded' };

/** The `kernel-error` to throw from an export that returns `result<_, kernel-error>`. */
export function kernelError(tag: KernelErrorTag, message: string): KernelError {
  return { tag, val: message.slice(0, 500) };
}

export type HealthStatus = 'serving' | 'degraded' | 'not-serving';
export interface HealthReport {
  status: HealthStatus;
  detail: string;
  checks: Array<[string, string]>;
}

export interface LifecycleExports {
  init(config: Array<[string, string]>): void;
  health(): HealthReport;
  exportState(): Uint8Array;
  importState(state: Uint8Array): void;
}

export interface LifecycleOptions<S> {
  /** Config keys this driver accepts; any other key fails init with invalid-argument. Default: any. */
  configKeys?: readonly string[];
  /** Apply the config (as an object). Throw `kernelError('invalid-argument', …)` for a bad value. */
  init?(config: Record<string, string>): void;
  /** Default: serving. */
  health?(): Partial<HealthReport> & { status: HealthStatus };
  /** The in-memory state a replacement needs (JSON-able; bigint and Uint8Array survive). */
  exportState?(): S;
  importState?(state: S, fromVersion: number): void;
  /** Format version of exported state (default 1); import refuses newer versions. */
  stateVersion?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** JSON with bigint (`{"$big":"…"}`) and Uint8Array (`{"$bytes":[…]}`) kept. */
export function encodeJson(value: unknown): Uint8Array {
  return enc.encode(
    JSON.stringify(value, (_k, v: unknown) => {
      if (typeof v === 'bigint') return { $big: v.toString() };
      if (ArrayBuffer.isView(v)) return { $bytes: Array.from(v as Uint8Array) };
      return v;
    }),
  );
}

export function decodeJson<T = unknown>(bytes: Uint8Array): T {
  return JSON.parse(dec.decode(bytes), (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      if (typeof o.$big === 'string' && Object.keys(o).length === 1) return BigInt(o.$big);
      if (Array.isArray(o.$bytes) && Object.keys(o).length === 1) return new Uint8Array(o.$bytes as number[]);
    }
    return v;
  }) as T;
}

export function utf8(text: string): Uint8Array {
  return enc.encode(text);
}
export function fromUtf8(bytes: Uint8Array): string {
  return dec.decode(bytes);
}

/** Build the `lifecycle` export of a driver. */
export function lifecycle<S = undefined>(
  options: LifecycleOptions<S> = {},
): LifecycleExports & { readonly ready: boolean } {
  let ready = false;
  const version = options.stateVersion ?? 1;
  return {
    get ready() {
      return ready;
    },
    init(config) {
      if (ready) throw kernelError('failed-precondition', 'init was already called on this instance');
      const obj: Record<string, string> = {};
      for (const [k, v] of config) {
        if (options.configKeys && !options.configKeys.includes(k)) {
          throw kernelError(
            'invalid-argument',
            `unknown config key '${k}' (known: ${options.configKeys.join(', ') || 'none'})`,
          );
        }
        obj[k] = v;
      }
      options.init?.(obj);
      ready = true;
    },
    health() {
      if (!ready) return { status: 'not-serving', detail: 'init has not run', checks: [] };
      const h = options.health?.() ?? { status: 'serving' as const };
      return { status: h.status, detail: h.detail ?? '', checks: h.checks ?? [] };
    },
    exportState() {
      if (!ready) throw kernelError('failed-precondition', 'export-state before init');
      return encodeJson({ v: version, s: options.exportState ? options.exportState() : null });
    },
    importState(state) {
      if (!ready) throw kernelError('failed-precondition', 'import-state before init');
      let parsed: { v?: unknown; s?: unknown };
      try {
        parsed = decodeJson(state);
      } catch {
        throw kernelError('invalid-argument', 'state is not the JSON this driver exports');
      }
      if (typeof parsed?.v !== 'number') throw kernelError('invalid-argument', 'state has no format version');
      if (parsed.v > version) {
        throw kernelError(
          'unimplemented',
          `state format ${parsed.v} is newer than this build reads (${version})`,
        );
      }
      options.importState?.(parsed.s as S, parsed.v);
    },
  };
}
