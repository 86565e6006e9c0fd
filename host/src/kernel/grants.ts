/**
 * The one place that decides whether a component may import an interface (cf. Zed's capability_granter).
 * A grant names an interface with or without its version: `cam:kernel/kv@0.1.0` allows exactly that
 * version, `cam:kernel/kv` any version. A refusal names the import and what was granted.
 */
import { KernelError } from '../errors.js';
import { memoized } from '../maps.js';

export interface ImportRef {
  /** jco's key: `pkg:ns/iface` (no version). */
  key: string;
  /** Fully qualified when the binary says so: `pkg:ns/iface@1.2.3`. */
  qualified: string;
}

export function splitVersion(name: string): { base: string; version: string | undefined } {
  const at = name.lastIndexOf('@');
  return at > 0
    ? { base: name.slice(0, at), version: name.slice(at + 1) }
    : { base: name, version: undefined };
}

export function isGranted(ref: ImportRef, grants: readonly string[]): boolean {
  const { base, version } = splitVersion(ref.qualified);
  return grants.some((g) => {
    const grant = splitVersion(g);
    return grant.base === base && (grant.version === undefined || grant.version === version);
  });
}

export function checkGrants(
  component: string,
  imports: readonly ImportRef[],
  grants: readonly string[],
): void {
  const denied = imports.filter((i) => !isGranted(i, grants));
  if (denied.length > 0) {
    const names = denied.map((d) => d.qualified).join(', ');
    throw new KernelError(
      'KERNEL_ERR_IMPORT_DENIED',
      `component '${component}' imports ${names} but its manifest does not grant ${denied.length === 1 ? 'it' : 'them'} (granted: ${grants.length ? grants.join(', ') : 'nothing'})`,
      { component, denied: denied.map((d) => d.qualified) },
    );
  }
}

/**
 * kebab-case WIT function name -> the lowerCamelCase name jco gives it in JS. Memoised (a regex replace with a
 * callback on every component call was ~2 us of a ContextRead).
 */
export const jsName = memoized(
  (witName) => witName.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase()),
  4096,
);
