/**
 * `cam:kernel/digest@0.1.0`: sha-256 at native speed (a JS guest hashes ~1000x slower in its interpreter).
 * `sha256` has no error channel in the WIT, so a value that is not bytes is a trap, like any value that does
 * not match its type. Size is bounded by the kernel's per-call payload limit before it gets here.
 */
import { createHash } from 'node:crypto';
import type { HostInterface } from '../kernel/kernel.js';
import { distModule } from '../runtime/local.js';

export const DIGEST_INTERFACE = 'cam:kernel/digest@0.1.0';

function sha256(data: unknown): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError('digest.sha256: data must be bytes');
  const d = createHash('sha256').update(data).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

export function digestHostInterface(): HostInterface {
  return {
    name: DIGEST_INTERFACE,
    functions: { sha256: (_component, data) => sha256(data) },
    // Pure: every worker hashes for itself (see runtime/local.ts).
    local: { module: distModule(new URL(import.meta.url)) },
  };
}

/** Worker side (runtime/local.ts). */
export function bindLocal(): Record<string, (...args: unknown[]) => unknown> {
  return { sha256 };
}
