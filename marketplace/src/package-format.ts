/**
 * The package container, `cam-os/package@1`: one file holding a driver's component, its signed manifest,
 * the publisher's public key, a sigstore bundle, README and LICENSE.
 *
 *   magic  "CAMPKG\0\1"                      8 bytes
 *   header length                            u32 big-endian, at most 64 KiB
 *   header                                   UTF-8 JSON { format, files: [{ path, size, digest }] }
 *   file bodies, in header order, nothing after the last one
 *
 * Reading never trusts the header: sizes must add up exactly, every body is hashed against its digest, and
 * every path is checked before anything could ever be written under it.
 */
import { createHash } from 'node:crypto';
import { marketError } from './errors.js';

export const PACKAGE_FORMAT = 'cam-os/package@1';
export const PACKAGE_MAGIC = Buffer.from([0x43, 0x41, 0x4d, 0x50, 0x4b, 0x47, 0x00, 0x01]);
export const MAX_HEADER_BYTES = 64 * 1024;
/** Default ceiling for a whole package (a componentize-js driver is ~12 MB). */
export const DEFAULT_MAX_PACKAGE_BYTES = 64 * 1024 * 1024;
export const MAX_FILES = 64;
const MAX_PATH = 200;

/** Files every package has. */
export const PACKAGE_FILES = {
  component: 'component.wasm',
  manifest: 'manifest.json',
  publisher: 'publisher.json',
  sigstore: 'sigstore.json',
  readme: 'README.md',
  license: 'LICENSE',
} as const;
const REQUIRED = Object.values(PACKAGE_FILES) as string[];
/** Besides the required files, only documentation under docs/ may be shipped. */
const EXTRA_PREFIX = 'docs/';

export interface PackageFileEntry {
  readonly path: string;
  readonly size: number;
  /** `sha256:` + 64 hex digits. */
  readonly digest: string;
}

export interface UnpackedPackage {
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly entries: readonly PackageFileEntry[];
  /** Digest of the whole package file. */
  readonly digest: string;
  readonly size: number;
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Why a path inside a package is unsafe, or undefined when it is a plain relative path. */
export function unsafePathReason(path: string): string | undefined {
  if (typeof path !== 'string' || path.length === 0) return 'is empty';
  if (path.length > MAX_PATH) return `is longer than ${MAX_PATH} characters`;
  if (/[\p{Cc}]/u.test(path)) return 'contains control characters';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'is absolute';
  if (/^[A-Za-z]:/.test(path)) return 'names a drive';
  for (const seg of path.split('/')) {
    if (seg === '..') return "climbs out with '..'";
    if (seg === '' || seg === '.') return 'has an empty or "." segment';
  }
  return undefined;
}

/** Builds a package file from its files (the required ones plus optional docs/…). */
export function packFiles(files: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const paths = [...files.keys()];
  for (const p of paths) {
    const why = unsafePathReason(p);
    if (why) throw marketError('path-traversal', `file path '${p}' ${why}`);
    if (!REQUIRED.includes(p) && !p.startsWith(EXTRA_PREFIX))
      throw marketError(
        'malformed-package',
        `file '${p}' is not allowed (only ${REQUIRED.join(', ')} and docs/…)`,
      );
  }
  for (const r of REQUIRED) if (!files.has(r)) throw marketError('malformed-package', `a package needs ${r}`);
  const ordered = [...REQUIRED, ...paths.filter((p) => !REQUIRED.includes(p)).sort()];
  const entries: PackageFileEntry[] = ordered.map((path) => {
    const b = files.get(path)!;
    return { path, size: b.byteLength, digest: sha256(b) };
  });
  const header = Buffer.from(JSON.stringify({ format: PACKAGE_FORMAT, files: entries }), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(header.length);
  return Buffer.concat([PACKAGE_MAGIC, len, header, ...ordered.map((p) => Buffer.from(files.get(p)!))]);
}

/** Parses and checks a package container. Throws MarketplaceError (malformed-package, path-traversal, too-large, bad-digest). */
export function unpack(bytes: Uint8Array, opts: { maxBytes?: number } = {}): UnpackedPackage {
  const max = opts.maxBytes ?? DEFAULT_MAX_PACKAGE_BYTES;
  if (bytes.byteLength > max)
    throw marketError('too-large', `package is ${bytes.byteLength} bytes, the limit is ${max}`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 12 || !buf.subarray(0, 8).equals(PACKAGE_MAGIC))
    throw marketError('malformed-package', `not a ${PACKAGE_FORMAT} file (bad magic)`);
  const headerLen = buf.readUInt32BE(8);
  if (headerLen > MAX_HEADER_BYTES || 12 + headerLen > buf.length)
    throw marketError('malformed-package', `header length ${headerLen} is out of bounds`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(12, 12 + headerLen)));
  } catch (e) {
    throw marketError('malformed-package', `header is not UTF-8 JSON (${(e as Error).message})`);
  }
  const h = header as { format?: unknown; files?: unknown };
  if (typeof h !== 'object' || h === null || h.format !== PACKAGE_FORMAT || !Array.isArray(h.files))
    throw marketError('malformed-package', `header must be { format: '${PACKAGE_FORMAT}', files: [...] }`);
  if (h.files.length > MAX_FILES)
    throw marketError('malformed-package', `${h.files.length} files, at most ${MAX_FILES} are allowed`);
  const entries: PackageFileEntry[] = [];
  const files = new Map<string, Uint8Array>();
  let offset = 12 + headerLen;
  for (const [i, raw] of h.files.entries()) {
    const e = raw as Record<string, unknown>;
    if (typeof e !== 'object' || e === null || typeof e.path !== 'string')
      throw marketError('malformed-package', `files[${i}] needs a path`);
    const why = unsafePathReason(e.path);
    if (why) throw marketError('path-traversal', `file path '${e.path}' ${why}`);
    if (!REQUIRED.includes(e.path) && !e.path.startsWith(EXTRA_PREFIX))
      throw marketError('malformed-package', `file '${e.path}' is not allowed in a package`);
    if (files.has(e.path)) throw marketError('malformed-package', `file '${e.path}' is listed twice`);
    if (!Number.isSafeInteger(e.size) || (e.size as number) < 0)
      throw marketError('malformed-package', `files[${i}].size must be a non-negative integer`);
    if (typeof e.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(e.digest))
      throw marketError('malformed-package', `files[${i}].digest must be sha256:<64 hex>`);
    const size = e.size as number;
    if (offset + size > buf.length)
      throw marketError('malformed-package', `file '${e.path}' runs past the end of the package`);
    const body = buf.subarray(offset, offset + size);
    offset += size;
    const digest = sha256(body);
    if (digest !== e.digest)
      throw marketError(
        'bad-digest',
        `file '${e.path}' has digest ${digest}, the package header says ${e.digest}`,
      );
    files.set(e.path, body);
    entries.push({ path: e.path, size, digest });
  }
  if (offset !== buf.length)
    throw marketError('malformed-package', `${buf.length - offset} unexpected bytes after the last file`);
  for (const r of REQUIRED) if (!files.has(r)) throw marketError('malformed-package', `package has no ${r}`);
  return { files, entries, digest: sha256(bytes), size: bytes.byteLength };
}
