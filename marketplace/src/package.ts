/**
 * Building and verifying driver packages. Verification reuses the kernel's one component verifier
 * (host/src/trust/verifier.ts) for the manifest's ML-DSA-65 + Ed25519 signatures and the pinned component
 * digest, then checks the sigstore bundle against the same trusted key and the operator's capability policy.
 */

import { canonicalJson } from '@cam-os/host/trust/canonical.js';
import { exportPublicKey, importPublicKey, type PublisherKeyPair } from '@cam-os/host/trust/keys.js';
import type { ManifestDependency, SignedManifest } from '@cam-os/host/trust/manifest.js';
import type { TrustedKey, TrustKeyLookup } from '@cam-os/host/trust/trust-store.js';
import { checkPolicy, type VerifyPolicy, verifyComponent } from '@cam-os/host/trust/verifier.js';
import { marketError } from './errors.js';
import { PACKAGE_FILES, type PackageFileEntry, packFiles, sha256, unpack } from './package-format.js';
import { createBundle, type PinnedLog, verifyBundle } from './sigstore.js';

export const STATEMENT_TYPE = 'cam-os/package-statement@1';

/** What the sigstore bundle signs: who, what, and the digest of every file but the bundle itself. */
export function packageStatement(
  manifest: { name: string; version: string; publisher: string },
  entries: readonly PackageFileEntry[],
): Uint8Array {
  const files = entries
    .filter((e) => e.path !== PACKAGE_FILES.sigstore)
    .map(({ path, size, digest }) => ({ path, size, digest }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const text = canonicalJson({
    _type: STATEMENT_TYPE,
    name: manifest.name,
    version: manifest.version,
    publisher: manifest.publisher,
    files,
  });
  return Buffer.from(text, 'utf8');
}

export interface BuildPackageInput {
  componentBytes: Uint8Array;
  /** Signed with `keyPair` (signAndAttach). */
  manifest: SignedManifest;
  keyPair: PublisherKeyPair;
  readme: string | Uint8Array;
  license: string | Uint8Array;
  /** Extra documentation, paths relative to docs/. */
  docs?: Record<string, string | Uint8Array>;
}

const bytesOf = (v: string | Uint8Array) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);

export function buildPackage(input: BuildPackageInput): Uint8Array {
  const { manifest, keyPair } = input;
  if (manifest.publisher !== keyPair.keyId)
    throw marketError(
      'invalid-argument',
      `manifest publisher ${manifest.publisher} is not the key ${keyPair.keyId}`,
    );
  const files = new Map<string, Uint8Array>([
    [PACKAGE_FILES.component, input.componentBytes],
    [PACKAGE_FILES.manifest, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)],
    [PACKAGE_FILES.publisher, Buffer.from(`${JSON.stringify(exportPublicKey(keyPair), null, 2)}\n`)],
    [PACKAGE_FILES.readme, bytesOf(input.readme)],
    [PACKAGE_FILES.license, bytesOf(input.license)],
  ]);
  for (const [p, v] of Object.entries(input.docs ?? {})) files.set(`docs/${p}`, bytesOf(v));
  const entries = [...files].map(([path, b]) => ({ path, size: b.byteLength, digest: sha256(b) }));
  const bundle = createBundle(packageStatement(manifest, entries), keyPair);
  files.set(PACKAGE_FILES.sigstore, Buffer.from(`${JSON.stringify(bundle, null, 2)}\n`));
  return packFiles(files);
}

export interface VerifiedPackage {
  readonly manifest: SignedManifest;
  readonly manifestJson: string;
  readonly componentBytes: Uint8Array;
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** The package file as verified. */
  readonly rawBytes: Uint8Array;
  /** Digest and size of the package file. */
  readonly digest: string;
  readonly size: number;
  readonly publisher: TrustedKey;
  readonly tlogEntries: number;
  readonly imports: readonly string[];
  readonly dependencies: readonly ManifestDependency[];
}

export interface VerifyPackageOptions {
  trustStore: TrustKeyLookup;
  /** The operator's capability policy (allowedImports and limits). */
  policy: VerifyPolicy;
  pinnedLogs?: readonly PinnedLog[];
  maxBytes?: number;
  /** What the index says this package is: a package for anything else is refused (index-mismatch). */
  expected?: { name: string; version: string };
  onStep?: (step: string) => void;
}

/** Everything but the operator's consent: container, signatures, digest, publisher trust, sigstore, policy. */
export async function verifyPackage(bytes: Uint8Array, opts: VerifyPackageOptions): Promise<VerifiedPackage> {
  const step = opts.onStep ?? (() => {});
  step('container');
  const pkg = unpack(bytes, { maxBytes: opts.maxBytes });
  const manifestBytes = pkg.files.get(PACKAGE_FILES.manifest)!;
  const componentBytes = pkg.files.get(PACKAGE_FILES.component)!;
  step('manifest signatures (ML-DSA-65 + Ed25519) and component digest');
  // Policy is checked separately below, so that a package for the wrong name is reported as such first.
  const r = await verifyComponent({
    componentBytes,
    manifest: manifestBytes,
    trustStore: opts.trustStore,
    policy: { allowedImports: ['*'] },
  });
  if (!r.ok) {
    switch (r.code) {
      case 'unknown-publisher':
      case 'revoked-key':
        throw marketError(
          'unknown-key',
          `${r.message}; add the publisher with \`cam-os trust add\` if you trust it`,
        );
      case 'digest-mismatch':
        throw marketError('bad-digest', r.message);
      case 'bad-signature':
      case 'unsigned':
        throw marketError('bad-signature', r.message);
      default:
        throw marketError('malformed-package', `manifest.json: ${r.message}`);
    }
  }
  const manifest = r.manifest;
  if (opts.expected && (manifest.name !== opts.expected.name || manifest.version !== opts.expected.version))
    throw marketError(
      'index-mismatch',
      `the index entry ${opts.expected.name}@${opts.expected.version} points at a package signed as ${manifest.name}@${manifest.version}`,
    );
  let shipped: ReturnType<typeof importPublicKey>;
  try {
    shipped = importPublicKey(
      JSON.parse(Buffer.from(pkg.files.get(PACKAGE_FILES.publisher)!).toString('utf8')),
    );
  } catch (e) {
    throw marketError('malformed-package', `publisher.json: ${(e as Error).message}`);
  }
  if (shipped.keyId !== manifest.publisher)
    throw marketError(
      'bad-signature',
      `publisher.json holds key ${shipped.keyId}, but the manifest is signed by ${manifest.publisher}`,
    );
  step('sigstore bundle');
  const statement = packageStatement(manifest, pkg.entries);
  const check = verifyBundle(
    pkg.files.get(PACKAGE_FILES.sigstore)!,
    statement,
    manifest.publisher,
    r.publisher.ed25519,
    opts.pinnedLogs ?? [],
  );
  step('capability policy');
  const refusal = checkPolicy(manifest, opts.policy);
  if (refusal) throw marketError('capability-refused', refusal.message);
  return {
    manifest,
    manifestJson: Buffer.from(manifestBytes).toString('utf8'),
    componentBytes,
    files: pkg.files,
    rawBytes: bytes,
    digest: pkg.digest,
    size: pkg.size,
    publisher: r.publisher,
    tlogEntries: check.tlogEntries,
    imports: manifest.capabilities.imports,
    dependencies: manifest.dependencies ?? [],
  };
}
