// Helpers for tests that need real signed components (this folder's tests, and the loader's and syscalls'
// tests elsewhere). Nothing here is used by the kernel at run time.

import { createHash } from 'node:crypto';
import { type PublisherKeyPair, publisherKeyPairFromSeeds, type SeedSource } from './keys.js';
import { MANIFEST_SCHEMA, type ManifestBody, type SignedManifest } from './manifest.js';
import { signAndAttach } from './sign.js';

/**
 * Deterministic seeds: SHA-256(label || counter). For reproducible tests only — a key from it is as secret as
 * the label.
 */
export function deterministicSeedSource(label: string): SeedSource {
  let counter = 0;
  return (length) => {
    const out = new Uint8Array(length);
    for (let filled = 0; filled < length; filled += 32) {
      const block = createHash('sha256').update(`${label}/${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, length - filled)), filled);
    }
    return out;
  };
}

/** A key pair derived from a label, so tests get the same keys on every run. */
export function testKeyPair(label: string): PublisherKeyPair {
  const seeds = deterministicSeedSource(label);
  return publisherKeyPairFromSeeds(seeds(32) as Uint8Array, seeds(32) as Uint8Array);
}

/** Bytes that look like the start of a wasm component (magic, version 0x0d, layer 1) followed by filler. */
export function fakeComponentBytes(size: number, fill = 0x5a): Uint8Array {
  if (size < 8) throw new Error('a component is at least 8 bytes');
  const bytes = new Uint8Array(size).fill(fill);
  bytes.set([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);
  return bytes;
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function testManifestBody(
  publisher: string,
  componentBytes: Uint8Array,
  overrides: Partial<ManifestBody> = {},
): ManifestBody {
  return {
    schema: MANIFEST_SCHEMA,
    name: 'echo-driver',
    version: '1.2.3',
    publisher,
    component: { digest: sha256Digest(componentBytes), size: componentBytes.byteLength },
    world: 'cam:kernel/driver',
    abiVersion: '0.1.0',
    capabilities: {
      imports: ['cam:kernel/kv@0.1.0', 'wasi:clocks/monotonic-clock@0.2.x'],
      memoryMaxPages: 256,
      deadlineMs: 50,
      concurrency: 4,
    },
    dependencies: [{ name: 'kv-store', range: '^0.3.0' }],
    ...overrides,
  };
}

export interface SignedPackage {
  readonly keyPair: PublisherKeyPair;
  readonly componentBytes: Uint8Array;
  readonly manifest: SignedManifest;
}

/** A component and its manifest, signed with `keyPair`. */
export async function buildSignedPackage(options: {
  keyPair: PublisherKeyPair;
  componentBytes?: Uint8Array;
  overrides?: Partial<ManifestBody>;
}): Promise<SignedPackage> {
  const componentBytes = options.componentBytes ?? fakeComponentBytes(4096);
  const body = testManifestBody(options.keyPair.keyId, componentBytes, options.overrides);
  return { keyPair: options.keyPair, componentBytes, manifest: await signAndAttach(body, options.keyPair) };
}
