// The operator's list of trusted publisher keys, persisted as one JSON file in a directory.
//
// Revocation keeps the key (with reason and time) rather than deleting it: a revoked key must stay refused,
// and a deleted one could be added back by mistake. Every change writes a complete new file atomically
// (temp file + fsync + rename) and only then replaces the in-memory state, so an I/O error leaves both the
// file and the store as they were. Lookups are synchronous and in memory: they sit on the verifier's path.

import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { fromBase64Strict, toBase64 } from './encoding.js';
import { computeKeyId, ED25519_PUBLIC_KEY_BYTES, type PublisherPublicKey } from './keys.js';
import { ML_DSA_65_PUBLIC_KEY_BYTES } from './liboqs.js';

export const TRUST_STORE_FORMAT = 'cam-os/trust-store@1';
export const TRUST_STORE_FILE = 'trust-store.json';

export interface Revocation {
  readonly reason: string;
  /** ISO 8601. */
  readonly at: string;
}

export interface TrustedKey extends PublisherPublicKey {
  readonly label?: string;
  /** ISO 8601. */
  readonly addedAt: string;
  readonly revoked?: Revocation;
}

export type TrustLookup =
  | { readonly status: 'trusted'; readonly key: TrustedKey }
  | { readonly status: 'revoked'; readonly key: TrustedKey & { readonly revoked: Revocation } }
  | { readonly status: 'unknown' };

/** What the verifier needs from a trust store; TrustStore implements it, tests and syscalls may too. */
export interface TrustKeyLookup {
  lookup(keyId: string): TrustLookup;
}

export type TrustStoreErrorCode = 'unknown-key' | 'revoked-key' | 'corrupt' | 'invalid-argument';

export class TrustStoreError extends Error {
  readonly code: TrustStoreErrorCode;
  constructor(code: TrustStoreErrorCode, message: string) {
    super(message);
    this.name = 'TrustStoreError';
    this.code = code;
  }
}

interface StoredKeyJson {
  keyId: string;
  mlDsa65: string;
  ed25519: string;
  label?: string;
  addedAt: string;
  revoked?: Revocation;
}

const MAX_LABEL = 200;
const MAX_REASON = 1000;

export class TrustStore implements TrustKeyLookup {
  readonly directory: string;
  readonly path: string;
  #keys: ReadonlyMap<string, TrustedKey>;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(directory: string, keys: ReadonlyMap<string, TrustedKey>) {
    this.directory = directory;
    this.path = join(directory, TRUST_STORE_FILE);
    this.#keys = keys;
  }

  /** Opens (creating the directory, mode 0700, if needed) the store in `directory`. A missing file is an empty store. */
  static async open(directory: string): Promise<TrustStore> {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const store = new TrustStore(directory, new Map());
    store.#keys = await store.#readFile();
    return store;
  }

  lookup(keyId: string): TrustLookup {
    const key = this.#keys.get(keyId);
    if (!key) return { status: 'unknown' };
    if (key.revoked) return { status: 'revoked', key: key as TrustedKey & { revoked: Revocation } };
    return { status: 'trusted', key };
  }

  get(keyId: string): TrustedKey | undefined {
    return this.#keys.get(keyId);
  }

  /** All keys, revoked ones included, oldest first. */
  list(): TrustedKey[] {
    return [...this.#keys.values()].sort(
      (a, b) => a.addedAt.localeCompare(b.addedAt) || a.keyId.localeCompare(b.keyId),
    );
  }

  /**
   * Adds a publisher key. Adding a key that is already trusted with the same public keys is a no-op that
   * returns the stored entry; adding a revoked key is refused.
   */
  add(key: PublisherPublicKey, options: { label?: string; now?: Date } = {}): Promise<TrustedKey> {
    return this.#mutate((keys) => {
      if (
        key.mlDsa65.byteLength !== ML_DSA_65_PUBLIC_KEY_BYTES ||
        key.ed25519.byteLength !== ED25519_PUBLIC_KEY_BYTES
      ) {
        throw new TrustStoreError(
          'invalid-argument',
          `public keys must be ${ML_DSA_65_PUBLIC_KEY_BYTES} (ML-DSA-65) and ${ED25519_PUBLIC_KEY_BYTES} (Ed25519) bytes`,
        );
      }
      const keyId = computeKeyId(key.mlDsa65, key.ed25519);
      if (key.keyId !== keyId) {
        throw new TrustStoreError(
          'invalid-argument',
          `key id ${key.keyId} does not match its public keys (computed ${keyId})`,
        );
      }
      if (
        options.label !== undefined &&
        (options.label.length > MAX_LABEL || /[\p{Cc}]/u.test(options.label))
      ) {
        throw new TrustStoreError(
          'invalid-argument',
          `label must be at most ${MAX_LABEL} characters without control characters`,
        );
      }
      const existing = keys.get(keyId);
      if (existing?.revoked) {
        throw new TrustStoreError(
          'revoked-key',
          `key ${keyId} was revoked at ${existing.revoked.at} (${existing.revoked.reason}); a revoked key cannot be added again`,
        );
      }
      if (existing) return { result: existing };
      const entry: TrustedKey = Object.freeze({
        keyId,
        mlDsa65: new Uint8Array(key.mlDsa65),
        ed25519: new Uint8Array(key.ed25519),
        ...(options.label !== undefined ? { label: options.label } : {}),
        addedAt: (options.now ?? new Date()).toISOString(),
      });
      return { result: entry, next: new Map(keys).set(keyId, entry) };
    });
  }

  /** Removes a trusted key. Unknown keys and revoked keys are refused (a revocation is permanent record). */
  remove(keyId: string): Promise<void> {
    return this.#mutate((keys) => {
      const existing = keys.get(keyId);
      if (!existing) throw new TrustStoreError('unknown-key', `key ${keyId} is not in the trust store`);
      if (existing.revoked) {
        throw new TrustStoreError(
          'revoked-key',
          `key ${keyId} is revoked; revoked keys are kept so they stay refused`,
        );
      }
      const next = new Map(keys);
      next.delete(keyId);
      return { result: undefined, next };
    });
  }

  /** Marks a key revoked. Revoking an already revoked key is refused, so the first reason and time stay. */
  revoke(keyId: string, reason: string, at: Date = new Date()): Promise<TrustedKey> {
    return this.#mutate((keys) => {
      const trimmed = reason.trim();
      if (trimmed === '' || trimmed.length > MAX_REASON) {
        throw new TrustStoreError(
          'invalid-argument',
          `a revocation needs a reason of 1 to ${MAX_REASON} characters`,
        );
      }
      if (Number.isNaN(at.getTime()))
        throw new TrustStoreError('invalid-argument', 'revocation time is not a valid date');
      const existing = keys.get(keyId);
      if (!existing) throw new TrustStoreError('unknown-key', `key ${keyId} is not in the trust store`);
      if (existing.revoked) {
        throw new TrustStoreError(
          'revoked-key',
          `key ${keyId} was already revoked at ${existing.revoked.at}`,
        );
      }
      const entry: TrustedKey = Object.freeze({
        ...existing,
        revoked: Object.freeze({ reason: trimmed, at: at.toISOString() }),
      });
      return { result: entry, next: new Map(keys).set(keyId, entry) };
    });
  }

  /** Re-reads the file (e.g. after another process changed it). On error the current state is kept. */
  reload(): Promise<void> {
    return this.#enqueue(async () => {
      this.#keys = await this.#readFile();
    });
  }

  #seen: string | undefined;

  /**
   * Re-reads the file only if it changed on disk since the last look (size, mtime, inode: writes are
   * atomic renames, so a new inode is the reliable signal). A stat costs microseconds; the loader calls
   * this before every verification so that `cam-os trust revoke` in another process takes effect at once.
   */
  async reloadIfChanged(): Promise<void> {
    let sig: string;
    try {
      const st = await stat(this.path);
      sig = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      sig = 'missing';
    }
    if (sig === this.#seen) return;
    await this.reload();
    this.#seen = sig;
  }

  #mutate<T>(
    change: (keys: ReadonlyMap<string, TrustedKey>) => { result: T; next?: Map<string, TrustedKey> },
  ): Promise<T> {
    return this.#enqueue(async () => {
      const { result, next } = change(this.#keys);
      if (next) {
        await writeFileAtomic(this.path, serialize(next), { mode: 0o644 });
        this.#keys = next;
      }
      return result;
    });
  }

  // Mutations run one at a time so each starts from the state the previous one wrote.
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #readFile(): Promise<Map<string, TrustedKey>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    return deserialize(text, this.path);
  }
}

function serialize(keys: ReadonlyMap<string, TrustedKey>): string {
  const entries: StoredKeyJson[] = [...keys.values()]
    .sort((a, b) => a.addedAt.localeCompare(b.addedAt) || a.keyId.localeCompare(b.keyId))
    .map((k) => ({
      keyId: k.keyId,
      mlDsa65: toBase64(k.mlDsa65),
      ed25519: toBase64(k.ed25519),
      ...(k.label !== undefined ? { label: k.label } : {}),
      addedAt: k.addedAt,
      ...(k.revoked ? { revoked: { reason: k.revoked.reason, at: k.revoked.at } } : {}),
    }));
  return `${JSON.stringify({ format: TRUST_STORE_FORMAT, keys: entries }, null, 2)}\n`;
}

function deserialize(text: string, path: string): Map<string, TrustedKey> {
  const corrupt = (message: string) => new TrustStoreError('corrupt', `${path}: ${message}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw corrupt(`not valid JSON (${err instanceof Error ? err.message : err})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw corrupt('must be a JSON object');
  const { format, keys, ...rest } = doc as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw corrupt(`unknown field '${Object.keys(rest)[0]}'`);
  if (format !== TRUST_STORE_FORMAT)
    throw corrupt(`format must be '${TRUST_STORE_FORMAT}', got ${JSON.stringify(format)}`);
  if (!Array.isArray(keys)) throw corrupt('keys must be an array');
  const map = new Map<string, TrustedKey>();
  keys.forEach((raw: unknown, i: number) => {
    const where = `keys[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw corrupt(`${where} must be an object`);
    const { keyId, mlDsa65, ed25519, label, addedAt, revoked, ...extra } = raw as Record<string, unknown>;
    if (Object.keys(extra).length > 0) throw corrupt(`${where} has unknown field '${Object.keys(extra)[0]}'`);
    const dsa = typeof mlDsa65 === 'string' ? fromBase64Strict(mlDsa65) : undefined;
    const ed = typeof ed25519 === 'string' ? fromBase64Strict(ed25519) : undefined;
    if (!dsa || dsa.byteLength !== ML_DSA_65_PUBLIC_KEY_BYTES)
      throw corrupt(`${where}.mlDsa65 is not a base64 ML-DSA-65 public key`);
    if (!ed || ed.byteLength !== ED25519_PUBLIC_KEY_BYTES)
      throw corrupt(`${where}.ed25519 is not a base64 Ed25519 public key`);
    const computed = computeKeyId(dsa, ed);
    if (keyId !== computed)
      throw corrupt(`${where}.keyId ${JSON.stringify(keyId)} does not match its keys (computed ${computed})`);
    if (map.has(computed)) throw corrupt(`${where}: key ${computed} is listed twice`);
    if (label !== undefined && typeof label !== 'string') throw corrupt(`${where}.label must be a string`);
    if (!isIsoDate(addedAt)) throw corrupt(`${where}.addedAt must be an ISO 8601 time`);
    let revocation: Revocation | undefined;
    if (revoked !== undefined) {
      if (typeof revoked !== 'object' || revoked === null)
        throw corrupt(`${where}.revoked must be an object`);
      const { reason, at } = revoked as Record<string, unknown>;
      if (typeof reason !== 'string' || !isIsoDate(at))
        throw corrupt(`${where}.revoked needs a reason and an ISO 8601 time`);
      revocation = Object.freeze({ reason, at });
    }
    map.set(
      computed,
      Object.freeze({
        keyId: computed,
        mlDsa65: dsa,
        ed25519: ed,
        ...(label !== undefined ? { label } : {}),
        addedAt,
        ...(revocation ? { revoked: revocation } : {}),
      }),
    );
  });
  return map;
}

function isIsoDate(value: unknown): value is string {
  return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value) && !Number.isNaN(Date.parse(value));
}
