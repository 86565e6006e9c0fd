import { createHash, verify as edVerify } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bytesEqual, toBase64 } from './encoding.js';
import {
  computeKeyId,
  ed25519PublicKeyObject,
  exportPublicKey,
  exportSecretKey,
  generatePublisherKeyPair,
  importPublicKey,
  importSecretKey,
  KeyFileError,
  publicKeyOf,
  publisherKeyPairFromSeeds,
  readPublicKeyFile,
  readSecretKeyFile,
  writePublicKeyFile,
  writeSecretKeyFile,
} from './keys.js';
import { loadMlDsa65, mlDsa65Sign, mlDsa65Verify } from './liboqs.js';
import { deterministicSeedSource } from './testing.js';

let dir: string;
beforeAll(() => loadMlDsa65());
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cam-trust-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('publisher key pairs', () => {
  it('key id = first 16 bytes of SHA-256(ML-DSA-65 public key || Ed25519 public key), hex', async () => {
    const pair = await generatePublisherKeyPair();
    const expected = createHash('sha256')
      .update(Buffer.concat([pair.mlDsa65.publicKey, pair.ed25519.publicKey]))
      .digest('hex')
      .slice(0, 32);
    expect(pair.keyId).toBe(expected);
    expect(computeKeyId(pair.mlDsa65.publicKey, pair.ed25519.publicKey)).toBe(expected);
    expect(pair.mlDsa65.publicKey.byteLength).toBe(1952);
    expect(pair.mlDsa65.secretKey.byteLength).toBe(4032);
    expect(pair.ed25519.publicKey.byteLength).toBe(32);
  });

  it('draws two 32-byte seeds from an injected (possibly async) seed source and is deterministic in them', async () => {
    const requests: number[] = [];
    const inner = deterministicSeedSource('injected');
    const source = async (length: number) => {
      requests.push(length);
      return inner(length);
    };
    const a = await generatePublisherKeyPair({ seedSource: source });
    expect(requests).toEqual([32, 32]);
    const again = deterministicSeedSource('injected');
    const b = publisherKeyPairFromSeeds(again(32) as Uint8Array, again(32) as Uint8Array);
    expect(b.keyId).toBe(a.keyId);
    expect(bytesEqual(b.mlDsa65.secretKey, a.mlDsa65.secretKey)).toBe(true);
    // The ML-DSA-65 key is FIPS 204 KeyGen_internal(seed): noble derives the same key from the same seed.
    expect(bytesEqual(ml_dsa65.keygen(a.mlDsa65.seed).publicKey, a.mlDsa65.publicKey)).toBe(true);
  });

  it('two default generations differ', async () => {
    const [a, b] = await Promise.all([generatePublisherKeyPair(), generatePublisherKeyPair()]);
    expect(a.keyId).not.toBe(b.keyId);
  });

  it('refuses seed sources that return the wrong length, constant bytes, or the same seed twice', async () => {
    await expect(generatePublisherKeyPair({ seedSource: () => new Uint8Array(16).fill(1) })).rejects.toThrow(
      /must return 32 bytes .* got 16 bytes/,
    );
    await expect(generatePublisherKeyPair({ seedSource: (n) => new Uint8Array(n) })).rejects.toThrow(
      /identical bytes/,
    );
    const fixed = deterministicSeedSource('x')(32) as Uint8Array;
    await expect(generatePublisherKeyPair({ seedSource: () => fixed })).rejects.toThrow(/same bytes twice/);
  });

  it('the secret keys sign with liboqs (ML-DSA-65) and node:crypto (Ed25519)', async () => {
    const pair = await generatePublisherKeyPair();
    const msg = new TextEncoder().encode('hello');
    expect(mlDsa65Verify(msg, mlDsa65Sign(msg, pair.mlDsa65.secretKey), pair.mlDsa65.publicKey)).toBe(true);
    const { sign } = await import('node:crypto');
    const { ed25519PrivateKeyObject } = await import('./keys.js');
    const sig = sign(null, msg, ed25519PrivateKeyObject(pair.ed25519.secretKey));
    expect(edVerify(null, msg, ed25519PublicKeyObject(pair.ed25519.publicKey), sig)).toBe(true);
  });

  it('Ed25519 half matches RFC 8032 §7.1 test 1 (public key from seed, signature of the empty message)', async () => {
    const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
    const pair = publisherKeyPairFromSeeds(new Uint8Array(32).fill(9), seed);
    expect(Buffer.from(pair.ed25519.publicKey).toString('hex')).toBe(
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    );
    const { hybridSignSync } = await import('./sign.js');
    expect(Buffer.from(hybridSignSync(new Uint8Array(0), pair).ed25519).toString('hex')).toBe(
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    );
  });
});

describe('key files', () => {
  it('secret key file: written 0600, read back to the same key pair', async () => {
    const pair = await generatePublisherKeyPair();
    const path = join(dir, 'publisher.key.json');
    await writeSecretKeyFile(path, pair);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const back = await readSecretKeyFile(path);
    expect(back.keyId).toBe(pair.keyId);
    expect(bytesEqual(back.mlDsa65.secretKey, pair.mlDsa65.secretKey)).toBe(true);
    expect(bytesEqual(back.ed25519.secretKey, pair.ed25519.secretKey)).toBe(true);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to overwrite a secret key file unless asked, leaving the old key in place', async () => {
    const first = await generatePublisherKeyPair();
    const second = await generatePublisherKeyPair();
    const path = join(dir, 'publisher.key.json');
    await writeSecretKeyFile(path, first);
    await expect(writeSecretKeyFile(path, second)).rejects.toThrow(/already exists/);
    expect((await readSecretKeyFile(path)).keyId).toBe(first.keyId);
    expect(await readdir(dir)).toEqual(['publisher.key.json']);
    await writeSecretKeyFile(path, second, { overwrite: true });
    expect((await readSecretKeyFile(path)).keyId).toBe(second.keyId);
  });

  it('refuses a secret key file that group or others can access', async () => {
    const path = join(dir, 'k.json');
    await writeSecretKeyFile(path, await generatePublisherKeyPair());
    await chmod(path, 0o640);
    await expect(readSecretKeyFile(path)).rejects.toThrow(/mode 0640.*chmod 600/);
  });

  it('public key file: exportable separately, carries no secret, round-trips', async () => {
    const pair = await generatePublisherKeyPair();
    const path = join(dir, 'publisher.pub.json');
    await writePublicKeyFile(path, pair);
    const text = await readFile(path, 'utf8');
    expect(text).not.toContain(toBase64(pair.mlDsa65.seed));
    expect(text).not.toContain(toBase64(pair.ed25519.secretKey));
    expect(Object.keys(JSON.parse(text))).toEqual(['format', 'keyId', 'mlDsa65', 'ed25519']);
    const pub = await readPublicKeyFile(path);
    expect(pub).toEqual(publicKeyOf(pair));
    expect(exportPublicKey(pub)).toEqual(exportPublicKey(pair));
  });

  it('detects tampering and mistakes in key files, naming the field', async () => {
    const pair = await generatePublisherKeyPair();
    const other = await generatePublisherKeyPair();
    const pub = exportPublicKey(pair);
    expect(() => importPublicKey({ ...pub, keyId: other.keyId })).toThrow(/keyId .* does not match its keys/);
    expect(() => importPublicKey({ ...pub, ed25519: exportPublicKey(other).ed25519 })).toThrow(
      /does not match/,
    );
    expect(() => importPublicKey({ ...pub, format: 'x' })).toThrow(/format must be/);
    expect(() => importPublicKey({ ...pub, comment: 'x' })).toThrow(/unknown field 'comment'/);
    expect(() => importPublicKey({ ...pub, mlDsa65: { publicKey: 'AAAA' } })).toThrow(
      /mlDsa65\.publicKey: must be 1952 bytes, got 3/,
    );
    const sec = exportSecretKey(pair);
    expect(() =>
      importSecretKey({ ...sec, ed25519: { ...sec.ed25519, seed: exportSecretKey(other).ed25519.seed } }),
    ).toThrow(/ed25519\.publicKey does not match the key derived from ed25519\.seed/);
    expect(() => importSecretKey({ ...sec, mlDsa65: { ...sec.mlDsa65, seed: 'not base64!' } })).toThrow(
      /mlDsa65\.seed: must be standard base64/,
    );
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{', { mode: 0o600 });
    await expect(readSecretKeyFile(bad)).rejects.toBeInstanceOf(KeyFileError);
  });
});
