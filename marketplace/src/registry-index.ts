/**
 * The registry index, `cam-os/registry-index@1`: one static JSON file listing every package, version,
 * package digest and size, publisher key and yanked flag. Package files live beside it at a path derived
 * from name and version (never read from the index, so an index cannot point a client outside the
 * registry). Nothing in the index is trusted on its own: each download must match the entry's digest and
 * size, and the signed manifest inside must name the same package and version.
 */

import { canonicalJson } from '@cam-os/host/trust/canonical.js';
import { concatBytes, fromBase64Strict, toBase64, utf8 } from '@cam-os/host/trust/encoding.js';
import type { PublisherKeyPair } from '@cam-os/host/trust/keys.js';
import { loadMlDsa65 } from '@cam-os/host/trust/liboqs.js';
import { isKebabName, isKeyId } from '@cam-os/host/trust/manifest.js';
import { isSemver, isValidRange } from '@cam-os/host/trust/semver.js';
import { hybridSignSync, hybridVerifySync } from '@cam-os/host/trust/sign.js';
import type { TrustKeyLookup } from '@cam-os/host/trust/trust-store.js';
import { marketError } from './errors.js';

export const INDEX_FORMAT = 'cam-os/registry-index@1';
export const INDEX_FILE = 'index.json';
export const MAX_INDEX_BYTES = 16 * 1024 * 1024;

export interface IndexVersion {
  /** Digest of the package file. */
  digest: string;
  size: number;
  /** Key id of the publisher that signed the manifest. */
  publisher: string;
  imports: string[];
  dependencies: Array<{ name: string; range: string }>;
  yanked: boolean;
  publishedAt: string;
}

export interface IndexPackage {
  description: string;
  versions: Record<string, IndexVersion>;
}

export interface IndexSignature {
  /** Key id of the registry key (a publisher-format key the operator trusts with `cam-os trust add`). */
  keyId: string;
  mlDsa65: string;
  ed25519: string;
}

export interface RegistryIndex {
  format: typeof INDEX_FORMAT;
  updatedAt: string;
  /**
   * Signed registries only: raised by one on every change. A client remembers the highest serial it saw
   * per registry, so an index rolled back to an older signed state is refused.
   */
  serial?: number;
  /** Signed registries only: ML-DSA-65 + Ed25519 over the index without this field. */
  signature?: IndexSignature;
  /** Public keys of the publishers, for display and for `cam-os trust add` — never trusted automatically. */
  publishers: Record<string, { mlDsa65: string; ed25519: string }>;
  packages: Record<string, IndexPackage>;
}

export function emptyIndex(): RegistryIndex {
  return { format: INDEX_FORMAT, updatedAt: new Date(0).toISOString(), publishers: {}, packages: {} };
}

/** Path of a package file inside a registry, relative to its root. */
export function packagePath(name: string, version: string): string {
  if (!isKebabName(name) || !isSemver(version) || version.includes('/'))
    throw marketError('invalid-argument', `'${name}@${version}' is not a package name and version`);
  return `packages/${name}/${name}-${version}.campkg`;
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

function bad(where: string, what: string): never {
  throw marketError('malformed-index', `${where} ${what}`);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses and strictly checks an index document. */
export function parseIndex(bytes: Uint8Array | string): RegistryIndex {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
  if (size > MAX_INDEX_BYTES) bad('index', `is ${size} bytes, at most ${MAX_INDEX_BYTES} are allowed`);
  let doc: unknown;
  try {
    doc = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    bad('index', `is not JSON (${(e as Error).message})`);
  }
  if (!isObj(doc) || doc.format !== INDEX_FORMAT)
    bad('index', `must be an object with format '${INDEX_FORMAT}'`);
  if (typeof doc.updatedAt !== 'string') bad('index.updatedAt', 'must be a string');
  if (doc.serial !== undefined && (!Number.isSafeInteger(doc.serial) || (doc.serial as number) < 1))
    bad('index.serial', 'must be a positive integer');
  if (doc.signature !== undefined) {
    const sig = doc.signature;
    if (
      !isObj(sig) ||
      typeof sig.keyId !== 'string' ||
      !isKeyId(sig.keyId) ||
      typeof sig.mlDsa65 !== 'string' ||
      typeof sig.ed25519 !== 'string'
    )
      bad('index.signature', 'must be { keyId, mlDsa65, ed25519 }');
    if (doc.serial === undefined) bad('index.serial', 'is required in a signed index');
  }
  const extra = Object.keys(doc).filter(
    (k) => !['format', 'updatedAt', 'serial', 'signature', 'publishers', 'packages'].includes(k),
  );
  if (extra.length) bad(`index.${extra[0]}`, 'is not a known field');
  if (!isObj(doc.publishers)) bad('index.publishers', 'must be an object');
  for (const [id, k] of Object.entries(doc.publishers)) {
    if (!isKeyId(id)) bad(`index.publishers['${id}']`, 'is not a key id');
    if (
      !isObj(k) ||
      typeof k.mlDsa65 !== 'string' ||
      typeof k.ed25519 !== 'string' ||
      !fromBase64Strict(k.mlDsa65) ||
      !fromBase64Strict(k.ed25519)
    )
      bad(`index.publishers['${id}']`, 'must hold base64 mlDsa65 and ed25519 public keys');
  }
  if (!isObj(doc.packages)) bad('index.packages', 'must be an object');
  for (const [name, p] of Object.entries(doc.packages)) {
    const at = `index.packages['${name}']`;
    if (!isKebabName(name)) bad(at, 'is not a kebab-case package name');
    if (!isObj(p) || typeof p.description !== 'string' || !isObj(p.versions))
      bad(at, 'must be { description, versions }');
    for (const [version, v] of Object.entries(p.versions)) {
      const vat = `${at}.versions['${version}']`;
      if (!isSemver(version)) bad(vat, 'is not a SemVer version');
      if (!isObj(v)) bad(vat, 'must be an object');
      if (typeof v.digest !== 'string' || !DIGEST_RE.test(v.digest))
        bad(`${vat}.digest`, 'must be sha256:<64 hex>');
      if (!Number.isSafeInteger(v.size) || (v.size as number) <= 0)
        bad(`${vat}.size`, 'must be a positive integer');
      if (typeof v.publisher !== 'string' || !isKeyId(v.publisher))
        bad(`${vat}.publisher`, 'must be a key id');
      if (!Array.isArray(v.imports) || v.imports.some((i) => typeof i !== 'string'))
        bad(`${vat}.imports`, 'must be a list of interface names');
      if (
        !Array.isArray(v.dependencies) ||
        v.dependencies.some(
          (d) =>
            !isObj(d) ||
            typeof d.name !== 'string' ||
            !isKebabName(d.name) ||
            typeof d.range !== 'string' ||
            !isValidRange(d.range),
        )
      )
        bad(`${vat}.dependencies`, 'must be a list of { name, range }');
      if (typeof v.yanked !== 'boolean') bad(`${vat}.yanked`, 'must be true or false');
      if (typeof v.publishedAt !== 'string') bad(`${vat}.publishedAt`, 'must be a string');
    }
  }
  return doc as unknown as RegistryIndex;
}

export function serializeIndex(index: RegistryIndex): string {
  return `${JSON.stringify(index, null, 2)}\n`;
}

/** Prefix of the signed index message: the format id and a NUL, so no other signed document can pass for it. */
export const INDEX_SIGNATURE_DOMAIN = 'cam-os/registry-index@1\0';

function indexMessage(index: RegistryIndex): Uint8Array {
  const { signature: _s, ...body } = index;
  return concatBytes(utf8(INDEX_SIGNATURE_DOMAIN), utf8(canonicalJson(body)));
}

/** Signs the index with the registry key, raising its serial. Returns a new index object. */
export async function signIndex(index: RegistryIndex, key: PublisherKeyPair): Promise<RegistryIndex> {
  await loadMlDsa65();
  const { signature: _old, ...body } = index;
  const next: RegistryIndex = { ...body, serial: (index.serial ?? 0) + 1 };
  const sig = hybridSignSync(indexMessage(next), key);
  return {
    ...next,
    signature: { keyId: key.keyId, mlDsa65: toBase64(sig.mlDsa65), ed25519: toBase64(sig.ed25519) },
  };
}

/**
 * Checks a signed index against the trust store: the registry key must be trusted and both signature halves
 * must verify. Throws MarketplaceError (unknown-key, bad-signature).
 */
export async function verifyIndexSignature(index: RegistryIndex, trust: TrustKeyLookup): Promise<void> {
  const sig = index.signature;
  if (!sig) throw marketError('bad-signature', 'the registry index is not signed');
  const found = trust.lookup(sig.keyId);
  if (found.status !== 'trusted')
    throw marketError(
      'unknown-key',
      `the registry index is signed by key ${sig.keyId}, which is ${found.status === 'revoked' ? 'revoked' : 'not in the trust store'}`,
    );
  await loadMlDsa65();
  const check = hybridVerifySync(
    indexMessage(index),
    {
      mlDsa65: fromBase64Strict(sig.mlDsa65) ?? new Uint8Array(0),
      ed25519: fromBase64Strict(sig.ed25519) ?? new Uint8Array(0),
    },
    found.key,
  );
  if (!check.ok)
    throw marketError(
      'bad-signature',
      `the registry index signature does not verify (${[!check.mlDsa65.ok && 'ML-DSA-65', !check.ed25519.ok && 'Ed25519'].filter(Boolean).join(' and ')})`,
    );
}
