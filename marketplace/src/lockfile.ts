/**
 * The installed set: `<data-dir>/marketplace/lock.json` plus one directory per installed version,
 * `<data-dir>/marketplace/packages/<name>/<version>/` (the package file as downloaded and its files).
 * The lockfile is replaced atomically (temp file + fsync + rename) and is the only record of what is
 * installed; a directory the lockfile does not name is never loaded.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@cam-os/host/trust/atomic-file.js';
import { isKebabName } from '@cam-os/host/trust/manifest.js';
import { isSemver } from '@cam-os/host/trust/semver.js';
import { marketError } from './errors.js';

export const LOCK_FORMAT = 'cam-os/marketplace-lock@1';
export const LOCK_FILE = 'lock.json';
/** Earlier versions kept on disk (and in the lockfile) for rollback. */
export const KEEP_PREVIOUS = 3;

export interface LockedVersion {
  version: string;
  /** Digest of the package file. */
  digest: string;
  componentDigest: string;
  publisher: string;
  imports: string[];
  dependencies: Array<{ name: string; range: string }>;
  registry: string;
  installedAt: string;
}

export interface LockedPackage extends LockedVersion {
  /** Installed on request (true) or as a dependency of another package (false). */
  requested: boolean;
  /** Earlier installed versions, oldest first, kept for rollback. */
  previous: LockedVersion[];
}

export interface Lockfile {
  format: typeof LOCK_FORMAT;
  /** Registry used last, the default for the next command. */
  registry?: string;
  packages: Record<string, LockedPackage>;
  /** Signed registries: the key that signs each one's index and the highest serial seen. */
  registries?: Record<string, { keyId: string; serial: number }>;
  /** Highest version of each package ever seen in a registry index: an index offering less is stale. */
  highestSeen: Record<string, string>;
}

export function marketplaceDir(dataDir: string): string {
  return join(dataDir, 'marketplace');
}

export function versionDir(dataDir: string, name: string, version: string): string {
  return join(marketplaceDir(dataDir), 'packages', name, version);
}

export async function readLockfile(dataDir: string): Promise<Lockfile> {
  const path = join(marketplaceDir(dataDir), LOCK_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      return { format: LOCK_FORMAT, packages: {}, highestSeen: {} };
    throw e;
  }
  let doc: Lockfile;
  try {
    doc = JSON.parse(text) as Lockfile;
  } catch (e) {
    throw marketError('invalid-argument', `${path} is not JSON (${(e as Error).message}); fix or remove it`);
  }
  if (doc?.format !== LOCK_FORMAT || typeof doc.packages !== 'object' || typeof doc.highestSeen !== 'object')
    throw marketError('invalid-argument', `${path} is not a ${LOCK_FORMAT} file`);
  for (const [loc, r] of Object.entries(doc.registries ?? {})) {
    if (typeof r?.keyId !== 'string' || !Number.isSafeInteger(r.serial))
      throw marketError('invalid-argument', `${path}: registries['${loc}'] must be { keyId, serial }`);
  }
  for (const [name, p] of Object.entries(doc.packages)) {
    if (
      !isKebabName(name) ||
      !isSemver(p.version) ||
      !Array.isArray(p.previous) ||
      p.previous.some((v) => !isSemver(v.version))
    )
      throw marketError('invalid-argument', `${path}: entry '${name}' is malformed`);
  }
  return doc;
}

export async function writeLockfile(dataDir: string, lock: Lockfile): Promise<void> {
  await writeFileAtomic(join(marketplaceDir(dataDir), LOCK_FILE), `${JSON.stringify(lock, null, 2)}\n`);
}
