/**
 * Registries: a directory (read and written directly, works offline) or any HTTP server holding the same
 * layout (`cam-os marketplace serve` is one; publishing to it is authenticated with a bearer token).
 *
 *   <root>/index.json                              the index (registry-index.ts)
 *   <root>/packages/<name>/<name>-<version>.campkg  package files
 */
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '@cam-os/host/trust/atomic-file.js';
import { toBase64 } from '@cam-os/host/trust/encoding.js';
import { importPublicKey, type PublisherKeyPair } from '@cam-os/host/trust/keys.js';
import type { TrustLookup } from '@cam-os/host/trust/trust-store.js';
import { verifyComponent } from '@cam-os/host/trust/verifier.js';
import { MarketplaceError, marketError } from './errors.js';
import { packageStatement } from './package.js';
import { DEFAULT_MAX_PACKAGE_BYTES, PACKAGE_FILES, sha256, unpack } from './package-format.js';
import {
  emptyIndex,
  INDEX_FILE,
  type IndexVersion,
  MAX_INDEX_BYTES,
  packagePath,
  parseIndex,
  type RegistryIndex,
  serializeIndex,
  signIndex,
} from './registry-index.js';
import { verifyBundle } from './sigstore.js';

export interface DownloadProgress {
  received: number;
  total: number;
}

export interface Registry {
  /** Directory path or URL, as given. */
  readonly location: string;
  index(): Promise<RegistryIndex>;
  /** Downloads a package file and checks it against the entry's size and digest (and `maxBytes`). */
  fetchPackage(
    name: string,
    version: string,
    entry: IndexVersion,
    opts?: { maxBytes?: number; onProgress?: (p: DownloadProgress) => void },
  ): Promise<Uint8Array>;
  /** `token`: bearer token for HTTP; `key`: the registry signing key for a signed directory registry. */
  publish(bytes: Uint8Array, opts?: RegistryWriteOptions): Promise<PublishResult>;
  setYanked(name: string, version: string, yanked: boolean, opts?: RegistryWriteOptions): Promise<void>;
}

export interface RegistryWriteOptions {
  token?: string;
  key?: PublisherKeyPair;
  maxBytes?: number;
}

export interface PublishResult {
  name: string;
  version: string;
  digest: string;
  size: number;
  /** False when the identical package was already published. */
  created: boolean;
}

export function openRegistry(location: string): Registry {
  if (/^https?:\/\//i.test(location)) return new HttpRegistry(location);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location))
    throw marketError('invalid-argument', `registry '${location}' must be a directory or an http(s) URL`);
  return new DirectoryRegistry(location);
}

function checkDownload(name: string, version: string, entry: IndexVersion, maxBytes: number): void {
  if (entry.size > maxBytes)
    throw marketError(
      'too-large',
      `${name}@${version} is ${entry.size} bytes in the index, the limit is ${maxBytes}`,
    );
}

function checkDigest(name: string, version: string, entry: IndexVersion, bytes: Uint8Array): void {
  const digest = sha256(bytes);
  if (bytes.byteLength !== entry.size || digest !== entry.digest)
    throw marketError(
      'bad-digest',
      `${name}@${version}: downloaded ${bytes.byteLength} bytes with ${digest}; the index says ${entry.size} bytes, ${entry.digest}`,
    );
}

export class DirectoryRegistry implements Registry {
  readonly root: string;
  constructor(readonly location: string) {
    this.root = resolve(location);
  }

  async index(): Promise<RegistryIndex> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.root, INDEX_FILE));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        try {
          if ((await stat(this.root)).isDirectory()) return emptyIndex();
        } catch {}
      }
      throw marketError(
        'registry-unreachable',
        `cannot read ${join(this.root, INDEX_FILE)}: ${(e as Error).message}`,
      );
    }
    return parseIndex(bytes);
  }

  async fetchPackage(
    name: string,
    version: string,
    entry: IndexVersion,
    opts: { maxBytes?: number; onProgress?: (p: DownloadProgress) => void } = {},
  ): Promise<Uint8Array> {
    const max = opts.maxBytes ?? DEFAULT_MAX_PACKAGE_BYTES;
    checkDownload(name, version, entry, max);
    const file = join(this.root, packagePath(name, version));
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(file, 'r');
    } catch (e) {
      throw marketError(
        'not-found',
        `${name}@${version} is in the index but ${file} cannot be read: ${(e as Error).message}`,
      );
    }
    try {
      const { size } = await handle.stat();
      if (size > entry.size || size > max)
        throw marketError(
          'too-large',
          `${file} is ${size} bytes; the index says ${entry.size}, the limit is ${max}`,
        );
      const bytes = Buffer.alloc(size);
      let off = 0;
      while (off < size) {
        const { bytesRead } = await handle.read(bytes, off, Math.min(1 << 20, size - off), off);
        if (bytesRead === 0) break;
        off += bytesRead;
        opts.onProgress?.({ received: off, total: entry.size });
      }
      checkDigest(name, version, entry, bytes.subarray(0, off));
      return bytes.subarray(0, off);
    } finally {
      await handle.close();
    }
  }

  publish(bytes: Uint8Array, opts: RegistryWriteOptions = {}): Promise<PublishResult> {
    return publishToDirectory(this.root, bytes, opts);
  }

  setYanked(name: string, version: string, yanked: boolean, opts: RegistryWriteOptions = {}): Promise<void> {
    return yankInDirectory(this.root, name, version, yanked, opts);
  }
}

export class HttpRegistry implements Registry {
  readonly base: string;
  constructor(readonly location: string) {
    this.base = location.endsWith('/') ? location : `${location}/`;
  }

  async #get(path: string): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.base));
    } catch (e) {
      throw marketError('registry-unreachable', `cannot reach ${this.base}: ${(e as Error).message}`);
    }
    return res;
  }

  async index(): Promise<RegistryIndex> {
    const res = await this.#get(INDEX_FILE);
    if (!res.ok)
      throw marketError('registry-unreachable', `${this.base}${INDEX_FILE} answered HTTP ${res.status}`);
    const chunks: Uint8Array[] = [];
    let n = 0;
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        n += value.byteLength;
        if (n > MAX_INDEX_BYTES) {
          await reader.cancel().catch(() => {});
          throw marketError('malformed-index', `index is larger than ${MAX_INDEX_BYTES} bytes`);
        }
        chunks.push(value);
      }
    }
    return parseIndex(Buffer.concat(chunks));
  }

  async fetchPackage(
    name: string,
    version: string,
    entry: IndexVersion,
    opts: { maxBytes?: number; onProgress?: (p: DownloadProgress) => void } = {},
  ): Promise<Uint8Array> {
    const max = opts.maxBytes ?? DEFAULT_MAX_PACKAGE_BYTES;
    checkDownload(name, version, entry, max);
    const res = await this.#get(packagePath(name, version));
    if (res.status === 404)
      throw marketError(
        'not-found',
        `${name}@${version} is in the index but the registry has no package file`,
      );
    if (!res.ok || !res.body)
      throw marketError('registry-unreachable', `package download answered HTTP ${res.status}`);
    const limit = Math.min(entry.size, max);
    const chunks: Uint8Array[] = [];
    let received = 0;
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
      if (received > limit) {
        await reader.cancel().catch(() => {});
        throw marketError(
          'too-large',
          `${name}@${version}: the registry sent more than ${limit} bytes (index size ${entry.size}, limit ${max})`,
        );
      }
      chunks.push(value);
      opts.onProgress?.({ received, total: entry.size });
    }
    const bytes = Buffer.concat(chunks);
    checkDigest(name, version, entry, bytes);
    return bytes;
  }

  async publish(bytes: Uint8Array, opts: RegistryWriteOptions = {}): Promise<PublishResult> {
    return (await this.#post('publish', bytes, 'application/octet-stream', opts.token)) as PublishResult;
  }

  async setYanked(
    name: string,
    version: string,
    yanked: boolean,
    opts: RegistryWriteOptions = {},
  ): Promise<void> {
    await this.#post(
      'yank',
      Buffer.from(JSON.stringify({ name, version, yanked })),
      'application/json',
      opts.token,
    );
  }

  async #post(path: string, body: Uint8Array, type: string, token: string | undefined): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.base), {
        method: 'POST',
        headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: new Uint8Array(body) as Uint8Array<ArrayBuffer>,
      });
    } catch (e) {
      throw marketError('registry-unreachable', `cannot reach ${this.base}: ${(e as Error).message}`);
    }
    const text = await res.text();
    let json: { code?: string; error?: string } & Record<string, unknown>;
    try {
      json = JSON.parse(text);
    } catch {
      throw marketError(
        'registry-unreachable',
        `${this.base}${path} answered HTTP ${res.status}: ${text.slice(0, 200)}`,
      );
    }
    if (!res.ok) {
      const code = (json.code ?? 'registry-unreachable') as MarketplaceError['code'];
      throw new MarketplaceError(
        code,
        String(json.error ?? `HTTP ${res.status}`).replace(/^MARKET_ERR_\w+: /, ''),
      );
    }
    return json;
  }
}

/**
 * Checks that a package is internally consistent before a registry accepts it: container, manifest
 * signatures against the key the package ships, sigstore bundle. Trust in that key is the installer's
 * decision, not the registry's.
 */
export async function checkPublishable(bytes: Uint8Array, maxBytes = DEFAULT_MAX_PACKAGE_BYTES) {
  const pkg = unpack(bytes, { maxBytes });
  let key: ReturnType<typeof importPublicKey>;
  try {
    key = importPublicKey(JSON.parse(Buffer.from(pkg.files.get(PACKAGE_FILES.publisher)!).toString('utf8')));
  } catch (e) {
    throw marketError('malformed-package', `publisher.json: ${(e as Error).message}`);
  }
  const lookup = {
    lookup: (id: string): TrustLookup =>
      id === key.keyId
        ? { status: 'trusted', key: { ...key, addedAt: new Date().toISOString() } }
        : { status: 'unknown' },
  };
  const r = await verifyComponent({
    componentBytes: pkg.files.get(PACKAGE_FILES.component)!,
    manifest: pkg.files.get(PACKAGE_FILES.manifest)!,
    trustStore: lookup,
    policy: { allowedImports: ['*'] },
  });
  if (!r.ok) {
    const code =
      r.code === 'digest-mismatch'
        ? 'bad-digest'
        : r.code === 'malformed-manifest'
          ? 'malformed-package'
          : 'bad-signature';
    throw marketError(code, `the package's manifest does not verify with the key it ships: ${r.message}`);
  }
  verifyBundle(
    pkg.files.get(PACKAGE_FILES.sigstore)!,
    packageStatement(r.manifest, pkg.entries),
    key.keyId,
    key.ed25519,
    [],
    { skipTlog: true },
  );
  const readme = Buffer.from(pkg.files.get(PACKAGE_FILES.readme)!).toString('utf8');
  const description = (readme.split('\n').find((l) => l.trim() !== '' && !l.startsWith('#')) ?? '')
    .trim()
    .slice(0, 200);
  return { pkg, manifest: r.manifest, key, description };
}

// One writer at a time per directory: in-process queue plus an O_EXCL lock file across processes.
const queues = new Map<string, Promise<unknown>>();

async function withDirLock<T>(root: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(root) ?? Promise.resolve();
  const run = prev.then(async () => {
    await mkdir(root, { recursive: true });
    const lock = join(root, '.index.lock');
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    for (let i = 0; i < 200 && !handle; i++) {
      try {
        handle = await open(lock, 'wx');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    if (!handle)
      throw marketError(
        'registry-unreachable',
        `registry ${root} is locked (${lock}); remove it if no publish is running`,
      );
    try {
      return await fn();
    } finally {
      await handle.close();
      await rm(lock, { force: true });
    }
  });
  queues.set(
    root,
    run.catch(() => undefined),
  );
  return run;
}

/** A signed registry stays signed: every change needs its key, and re-signs the index with a higher serial. */
async function sealIndex(index: RegistryIndex, key: PublisherKeyPair | undefined): Promise<RegistryIndex> {
  if (index.signature && !key)
    throw marketError(
      'unauthorized',
      `this registry's index is signed by key ${index.signature.keyId}; changing it needs that key (--registry-key)`,
    );
  if (!key) return index;
  if (index.signature && index.signature.keyId !== key.keyId)
    throw marketError(
      'unauthorized',
      `this registry's index is signed by key ${index.signature.keyId}, not ${key.keyId}`,
    );
  return signIndex(index, key);
}

export async function publishToDirectory(
  root: string,
  bytes: Uint8Array,
  opts: RegistryWriteOptions = {},
): Promise<PublishResult> {
  const { pkg, manifest, key, description } = await checkPublishable(bytes, opts.maxBytes);
  const reg = new DirectoryRegistry(root);
  return withDirLock(reg.root, async () => {
    const index = await reg.index();
    const existing = index.packages[manifest.name]?.versions[manifest.version];
    const result = { name: manifest.name, version: manifest.version, digest: pkg.digest, size: pkg.size };
    if (existing) {
      if (existing.digest === pkg.digest) return { ...result, created: false };
      throw marketError(
        'conflict',
        `${manifest.name}@${manifest.version} is already published with digest ${existing.digest}; publish a new version`,
      );
    }
    const file = join(reg.root, packagePath(manifest.name, manifest.version));
    await mkdir(join(file, '..'), { recursive: true });
    await writeFileAtomic(file, bytes);
    const now = new Date().toISOString();
    const entry = index.packages[manifest.name] ?? { description, versions: {} };
    index.packages[manifest.name] = entry;
    if (description) entry.description = description;
    entry.versions[manifest.version] = {
      digest: pkg.digest,
      size: pkg.size,
      publisher: key.keyId,
      imports: [...manifest.capabilities.imports],
      dependencies: (manifest.dependencies ?? []).map((d) => ({ name: d.name, range: d.range })),
      yanked: false,
      publishedAt: now,
    };
    index.publishers[key.keyId] = { mlDsa65: toBase64(key.mlDsa65), ed25519: toBase64(key.ed25519) };
    index.updatedAt = now;
    await writeFileAtomic(join(reg.root, INDEX_FILE), serializeIndex(await sealIndex(index, opts.key)));
    return { ...result, created: true };
  });
}

export async function yankInDirectory(
  root: string,
  name: string,
  version: string,
  yanked: boolean,
  opts: RegistryWriteOptions = {},
): Promise<void> {
  const reg = new DirectoryRegistry(root);
  await withDirLock(reg.root, async () => {
    const index = await reg.index();
    const v = index.packages[name]?.versions[version];
    if (!v) throw marketError('not-found', `${name}@${version} is not in the registry`);
    v.yanked = yanked;
    index.updatedAt = new Date().toISOString();
    await writeFileAtomic(join(reg.root, INDEX_FILE), serializeIndex(await sealIndex(index, opts.key)));
  });
}
