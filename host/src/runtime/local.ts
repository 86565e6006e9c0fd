/**
 * Worker-local host functions. A host interface may name a module whose `bindLocal(data, caller)` returns
 * synchronous implementations of some of its functions; a component's worker imports it and serves those
 * calls itself, without the round trip to the kernel thread (which, under load, is busy with gRPC and made
 * every guest->host call wait 100-300 us). Functions it does not return still go to the kernel. A local
 * function must behave exactly like the kernel-thread one for the same caller: same checks, same errors.
 */

/** What a host interface declares: the module to import in the worker and the data passed to bindLocal. */
export interface LocalHostFunctions {
  /** file: URL of a compiled ES module exporting `bindLocal`. */
  module: string;
  /** Structured-cloneable configuration (e.g. a store path). */
  data?: unknown;
}

export type BindLocal = (
  data: unknown,
  caller: string,
) =>
  | Record<string, (...args: unknown[]) => unknown>
  | Promise<Record<string, (...args: unknown[]) => unknown>>;

/**
 * The compiled (host/dist) URL of a module beside the caller. Under vitest the kernel runs from host/src,
 * but a worker can only import compiled JavaScript.
 */
export function distModule(url: URL): string {
  if (!url.href.includes('/host/src/')) return url.href;
  return url.href.replace('/host/src/', '/host/dist/').replace(/\.ts$/, '.js');
}
