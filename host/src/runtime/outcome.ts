/**
 * What one export call came to, the same way wherever the guest runs (its worker, or the kernel thread for a
 * query replica): a value, a typed guest error, a trap, or a guest exit.
 */
import { GuestExit } from '../sandbox/wasi.js';
import { Msg, type MsgKind } from './channel.js';

export interface Outcome {
  kind: MsgKind;
  value: unknown;
}

export type ExportMap = Record<string, Record<string, (...args: unknown[]) => unknown>>;

/** The ES module jco emits for a component (instantiation: 'async'), as the worker and the replica load it. */
export interface JcoBindings {
  instantiate: (
    getCoreModule: (name: string) => WebAssembly.Module,
    imports: Record<string, unknown>,
    instantiateCore: (m: WebAssembly.Module, i?: WebAssembly.Imports) => WebAssembly.Instance,
  ) => Promise<ExportMap> | ExportMap;
}

/** The first line of what was thrown, short enough for a status message. */
export function describeThrown(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`.split('\n')[0]!.slice(0, 500);
  return String(e).slice(0, 500);
}

/** Call an export; a trap or exit outcome means the instance must not be used again. */
export function invokeExport(exportsMap: ExportMap, iface: string, fn: string, args: unknown[]): Outcome {
  const target = exportsMap[iface]?.[fn];
  if (typeof target !== 'function') {
    return { kind: Msg.TRAP, value: { message: `export ${iface}#${fn} not found`, missing: true } };
  }
  try {
    return { kind: Msg.OK, value: target(...args) };
  } catch (e) {
    if (e instanceof GuestExit) return { kind: Msg.EXIT, value: { code: e.code, message: e.message } };
    if (!(e instanceof Error)) {
      // jco 1.35 throws a `result` export's err payload as is (a string, record or variant — never an
      // Error instance); traps and binding checks throw Errors.
      return { kind: Msg.ERR, value: { payload: e } };
    }
    if (Object.hasOwn(e, 'payload')) {
      // Older jco wraps the payload in a ComponentError.
      return { kind: Msg.ERR, value: { payload: (e as unknown as { payload: unknown }).payload } };
    }
    return { kind: Msg.TRAP, value: { message: describeThrown(e) } };
  }
}

/** Whether an outcome leaves the instance unusable (a trap other than a missing export, or an exit). */
export function poisons(o: Outcome): boolean {
  return o.kind === Msg.EXIT || (o.kind === Msg.TRAP && !(o.value as { missing?: boolean }).missing);
}
