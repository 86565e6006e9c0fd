// Publisher keys: one ML-DSA-65 key and one Ed25519 key, used together (a manifest is accepted only when
// both signatures verify, so breaking one algorithm is not enough to forge one).
//
// Both keys are derived from 32-byte seeds (FIPS 204 KeyGen_internal(xi); RFC 8032 private key). The seeds
// are what the secret key file stores, and where they come from is injectable, so a TPM RNG can seed them.
// liboqs-js cannot generate a key from a given seed, so the ML-DSA-65 key expansion uses @noble/post-quantum
// (keys and signatures interoperate with liboqs; see keys.test.ts and sign.test.ts).

import { createHash, createPrivateKey, createPublicKey, type KeyObject, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { writeFileAtomic } from './atomic-file.js';
import { bytesEqual, fromBase64Strict, toBase64 } from './encoding.js';
import { ML_DSA_65_PUBLIC_KEY_BYTES } from './liboqs.js';

export const SECRET_KEY_FILE_FORMAT = 'cam-os/publisher-secret-key@1';
export const PUBLIC_KEY_FILE_FORMAT = 'cam-os/publisher-public-key@1';
export const SEED_BYTES = 32;
export const ED25519_PUBLIC_KEY_BYTES = 32;

export interface PublisherPublicKey {
  /** First 16 bytes of SHA-256(mlDsa65 public key || ed25519 public key), lowercase hex. */
  readonly keyId: string;
  readonly mlDsa65: Uint8Array;
  readonly ed25519: Uint8Array;
}

export interface PublisherKeyPair {
  readonly keyId: string;
  readonly mlDsa65: {
    readonly publicKey: Uint8Array;
    /** Expanded FIPS 204 secret key (4032 bytes), as liboqs wants it. */
    readonly secretKey: Uint8Array;
    /** The 32-byte seed it was derived from. */
    readonly seed: Uint8Array;
  };
  readonly ed25519: {
    readonly publicKey: Uint8Array;
    /** RFC 8032 private key: a 32-byte seed. */
    readonly secretKey: Uint8Array;
  };
}

/**
 * Where key seeds come from. Called once per seed with the number of bytes wanted; may be async (a TPM
 * answers over a socket). Default: node:crypto randomBytes.
 */
export type SeedSource = (length: number) => Uint8Array | Promise<Uint8Array>;

export const defaultSeedSource: SeedSource = (length) => new Uint8Array(randomBytes(length));

export function computeKeyId(mlDsa65PublicKey: Uint8Array, ed25519PublicKey: Uint8Array): string {
  return createHash('sha256')
    .update(mlDsa65PublicKey)
    .update(ed25519PublicKey)
    .digest()
    .subarray(0, 16)
    .toString('hex');
}

export function publicKeyOf(pair: PublisherKeyPair): PublisherPublicKey {
  return { keyId: pair.keyId, mlDsa65: pair.mlDsa65.publicKey, ed25519: pair.ed25519.publicKey };
}

export async function generatePublisherKeyPair(
  options: { seedSource?: SeedSource } = {},
): Promise<PublisherKeyPair> {
  const source = options.seedSource ?? defaultSeedSource;
  const mlDsaSeed = await takeSeed(source, 'ML-DSA-65');
  const ed25519Seed = await takeSeed(source, 'Ed25519');
  if (bytesEqual(mlDsaSeed, ed25519Seed)) {
    throw new Error('seed source returned the same bytes twice in a row; refusing to derive keys from it');
  }
  return publisherKeyPairFromSeeds(mlDsaSeed, ed25519Seed);
}

async function takeSeed(source: SeedSource, purpose: string): Promise<Uint8Array> {
  const seed = await source(SEED_BYTES);
  if (!(seed instanceof Uint8Array) || seed.byteLength !== SEED_BYTES) {
    const got = seed instanceof Uint8Array ? `${seed.byteLength} bytes` : typeof seed;
    throw new Error(`seed source must return ${SEED_BYTES} bytes for the ${purpose} seed, got ${got}`);
  }
  // A broken or stubbed RNG most often returns zeros; a key from it would be public knowledge.
  if (seed.every((b) => b === seed[0])) {
    throw new Error(
      `seed source returned ${SEED_BYTES} identical bytes for the ${purpose} seed; refusing it`,
    );
  }
  return new Uint8Array(seed);
}

/** Deterministic: the same seeds always give the same key pair. */
export function publisherKeyPairFromSeeds(
  mlDsa65Seed: Uint8Array,
  ed25519Seed: Uint8Array,
): PublisherKeyPair {
  if (mlDsa65Seed.byteLength !== SEED_BYTES) throw new Error(`ML-DSA-65 seed must be ${SEED_BYTES} bytes`);
  if (ed25519Seed.byteLength !== SEED_BYTES) throw new Error(`Ed25519 seed must be ${SEED_BYTES} bytes`);
  const dsa = ml_dsa65.keygen(new Uint8Array(mlDsa65Seed));
  const edPublic = ed25519PublicKeyFromSeed(ed25519Seed);
  return {
    keyId: computeKeyId(dsa.publicKey, edPublic),
    mlDsa65: { publicKey: dsa.publicKey, secretKey: dsa.secretKey, seed: new Uint8Array(mlDsa65Seed) },
    ed25519: { publicKey: edPublic, secretKey: new Uint8Array(ed25519Seed) },
  };
}

// DER PKCS#8 header for an Ed25519 private key (RFC 8410): the 32-byte seed follows it.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
// DER SubjectPublicKeyInfo header for an Ed25519 public key: the 32-byte key follows it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const privateKeyObjects = new WeakMap<Uint8Array, KeyObject>();
const publicKeyObjects = new WeakMap<Uint8Array, KeyObject>();

/** node:crypto KeyObject for an Ed25519 seed, cached per seed array (creating one costs ~10 µs). */
export function ed25519PrivateKeyObject(seed: Uint8Array): KeyObject {
  let key = privateKeyObjects.get(seed);
  if (!key) {
    key = createPrivateKey({
      key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    });
    privateKeyObjects.set(seed, key);
  }
  return key;
}

/** node:crypto KeyObject for a raw Ed25519 public key, cached per array. */
export function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  let key = publicKeyObjects.get(publicKey);
  if (!key) {
    if (publicKey.byteLength !== ED25519_PUBLIC_KEY_BYTES) {
      throw new Error(
        `Ed25519 public key must be ${ED25519_PUBLIC_KEY_BYTES} bytes, got ${publicKey.byteLength}`,
      );
    }
    key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]),
      format: 'der',
      type: 'spki',
    });
    publicKeyObjects.set(publicKey, key);
  }
  return key;
}

function ed25519PublicKeyFromSeed(seed: Uint8Array): Uint8Array {
  const spki = createPublicKey(ed25519PrivateKeyObject(new Uint8Array(seed))).export({
    format: 'der',
    type: 'spki',
  });
  return new Uint8Array(spki.subarray(ED25519_SPKI_PREFIX.length));
}

// ---- key files ----

export interface PublicKeyFile {
  readonly format: typeof PUBLIC_KEY_FILE_FORMAT;
  readonly keyId: string;
  readonly mlDsa65: { readonly publicKey: string };
  readonly ed25519: { readonly publicKey: string };
}

export interface SecretKeyFile {
  readonly format: typeof SECRET_KEY_FILE_FORMAT;
  readonly keyId: string;
  readonly mlDsa65: { readonly publicKey: string; readonly seed: string };
  readonly ed25519: { readonly publicKey: string; readonly seed: string };
}

export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

export function exportPublicKey(key: PublisherPublicKey | PublisherKeyPair): PublicKeyFile {
  const pub = 'publicKey' in key.mlDsa65 ? publicKeyOf(key as PublisherKeyPair) : (key as PublisherPublicKey);
  return {
    format: PUBLIC_KEY_FILE_FORMAT,
    keyId: pub.keyId,
    mlDsa65: { publicKey: toBase64(pub.mlDsa65) },
    ed25519: { publicKey: toBase64(pub.ed25519) },
  };
}

export function exportSecretKey(pair: PublisherKeyPair): SecretKeyFile {
  return {
    format: SECRET_KEY_FILE_FORMAT,
    keyId: pair.keyId,
    mlDsa65: { publicKey: toBase64(pair.mlDsa65.publicKey), seed: toBase64(pair.mlDsa65.seed) },
    ed25519: { publicKey: toBase64(pair.ed25519.publicKey), seed: toBase64(pair.ed25519.secretKey) },
  };
}

/** Parses a public key file's JSON value; checks lengths and that the key id matches the keys. */
export function importPublicKey(value: unknown, source = 'public key file'): PublisherPublicKey {
  const file = expectObject(value, source, ['format', 'keyId', 'mlDsa65', 'ed25519']);
  if (file.format !== PUBLIC_KEY_FILE_FORMAT) {
    throw new KeyFileError(
      `${source}: format must be '${PUBLIC_KEY_FILE_FORMAT}', got ${JSON.stringify(file.format)}`,
    );
  }
  const mlDsa65 = bytesField(
    expectObject(file.mlDsa65, `${source}: mlDsa65`, ['publicKey']),
    'publicKey',
    `${source}: mlDsa65.publicKey`,
    ML_DSA_65_PUBLIC_KEY_BYTES,
  );
  const ed25519 = bytesField(
    expectObject(file.ed25519, `${source}: ed25519`, ['publicKey']),
    'publicKey',
    `${source}: ed25519.publicKey`,
    ED25519_PUBLIC_KEY_BYTES,
  );
  const keyId = computeKeyId(mlDsa65, ed25519);
  if (file.keyId !== keyId) {
    throw new KeyFileError(
      `${source}: keyId ${JSON.stringify(file.keyId)} does not match its keys (computed ${keyId})`,
    );
  }
  return { keyId, mlDsa65, ed25519 };
}

/** Parses a secret key file's JSON value; re-derives both keys from the seeds and checks them against the file. */
export function importSecretKey(value: unknown, source = 'secret key file'): PublisherKeyPair {
  const file = expectObject(value, source, ['format', 'keyId', 'mlDsa65', 'ed25519']);
  if (file.format !== SECRET_KEY_FILE_FORMAT) {
    throw new KeyFileError(
      `${source}: format must be '${SECRET_KEY_FILE_FORMAT}', got ${JSON.stringify(file.format)}`,
    );
  }
  const dsa = expectObject(file.mlDsa65, `${source}: mlDsa65`, ['publicKey', 'seed']);
  const ed = expectObject(file.ed25519, `${source}: ed25519`, ['publicKey', 'seed']);
  const pair = publisherKeyPairFromSeeds(
    bytesField(dsa, 'seed', `${source}: mlDsa65.seed`, SEED_BYTES),
    bytesField(ed, 'seed', `${source}: ed25519.seed`, SEED_BYTES),
  );
  if (
    !bytesEqual(
      pair.mlDsa65.publicKey,
      bytesField(dsa, 'publicKey', `${source}: mlDsa65.publicKey`, ML_DSA_65_PUBLIC_KEY_BYTES),
    )
  ) {
    throw new KeyFileError(`${source}: mlDsa65.publicKey does not match the key derived from mlDsa65.seed`);
  }
  if (
    !bytesEqual(
      pair.ed25519.publicKey,
      bytesField(ed, 'publicKey', `${source}: ed25519.publicKey`, ED25519_PUBLIC_KEY_BYTES),
    )
  ) {
    throw new KeyFileError(`${source}: ed25519.publicKey does not match the key derived from ed25519.seed`);
  }
  if (file.keyId !== pair.keyId) {
    throw new KeyFileError(
      `${source}: keyId ${JSON.stringify(file.keyId)} does not match its keys (computed ${pair.keyId})`,
    );
  }
  return pair;
}

/** Writes the secret key file with mode 0600; refuses to replace an existing file unless `overwrite`. */
export async function writeSecretKeyFile(
  path: string,
  pair: PublisherKeyPair,
  options: { overwrite?: boolean } = {},
): Promise<void> {
  try {
    await writeFileAtomic(path, `${JSON.stringify(exportSecretKey(pair), null, 2)}\n`, {
      mode: 0o600,
      overwrite: options.overwrite ?? false,
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new KeyFileError(
        `${path} already exists; refusing to overwrite a secret key file (pass overwrite: true)`,
      );
    }
    throw err;
  }
}

/** Reads a secret key file; refuses one that group or others can read or write (as ssh does). */
export async function readSecretKeyFile(path: string): Promise<PublisherKeyPair> {
  const info = await stat(path);
  if ((info.mode & 0o077) !== 0) {
    throw new KeyFileError(
      `${path} has mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}; a secret key file must not be accessible by group or others (chmod 600)`,
    );
  }
  return importSecretKey(parseJson(await readFile(path, 'utf8'), path), path);
}

export async function writePublicKeyFile(
  path: string,
  key: PublisherPublicKey | PublisherKeyPair,
): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(exportPublicKey(key), null, 2)}\n`, { mode: 0o644 });
}

export async function readPublicKeyFile(path: string): Promise<PublisherPublicKey> {
  return importPublicKey(parseJson(await readFile(path, 'utf8'), path), path);
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new KeyFileError(`${source}: not valid JSON (${err instanceof Error ? err.message : err})`);
  }
}

function expectObject(value: unknown, source: string, fields: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new KeyFileError(`${source}: must be an object`);
  }
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!fields.includes(key))
      throw new KeyFileError(`${source}: unknown field '${key}' (allowed: ${fields.join(', ')})`);
  }
  for (const key of fields) {
    if (obj[key] === undefined) throw new KeyFileError(`${source}: missing field '${key}'`);
  }
  return obj;
}

function bytesField(obj: Record<string, unknown>, key: string, source: string, length: number): Uint8Array {
  const text = obj[key];
  const bytes = typeof text === 'string' ? fromBase64Strict(text) : undefined;
  if (!bytes) throw new KeyFileError(`${source}: must be standard base64`);
  if (bytes.byteLength !== length)
    throw new KeyFileError(`${source}: must be ${length} bytes, got ${bytes.byteLength}`);
  return bytes;
}
