// Cross-checks liboqs (WebAssembly) against @noble/post-quantum, and both against published known answers.
//
// Neither package ships KAT or ACVP files (searched node_modules/@oqs/liboqs-js and
// node_modules/@noble/post-quantum: no *.rsp, *kat*, *acvp*, vector files; noble's tests are not published).
// The known answers below are "accumulated" vectors: N deterministic operations whose outputs are hashed
// with SHAKE-128, so a 32-byte constant covers N full key pairs and signatures.
//  - ML-DSA-65, 100 iterations: C2SP CCTV (github.com/C2SP/CCTV, ML-DSA/accumulated/README.md); the same
//    value is in Go's crypto/mldsa TestAccumulated.
//  - ML-KEM-768, 100 iterations: Go's crypto/internal/fips140/mlkem TestAccumulated (FIPS 203 final).
// liboqs-js cannot take injected randomness, so noble produces the deterministic outputs and liboqs checks
// every one of them (verifies each signature, decapsulates each ciphertext, including a random invalid one).

import { shake128 } from '@noble/hashes/sha3.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { createMLDSA65 } from '@oqs/liboqs-js/sig';
import { beforeAll, describe, expect, it } from 'vitest';
import { bytesEqual, toHex } from './encoding.js';
import {
  loadMlDsa65,
  loadMlKem768,
  mlDsa65Sign,
  mlDsa65Verify,
  mlKem768Decapsulate,
  mlKem768Encapsulate,
  mlKem768KeyPair,
} from './liboqs.js';

/** SHAKE-128 as a stream: absorb everything, then read. noble's shake128 is one-shot, so buffer the input. */
class Accumulator {
  readonly #parts: Uint8Array[] = [];
  write(bytes: Uint8Array): void {
    this.#parts.push(bytes);
  }
  digest(length = 32): string {
    const h = shake128.create({ dkLen: length });
    for (const p of this.#parts) h.update(p);
    return toHex(h.digest());
  }
}

/** A SHAKE-128 XOF over the empty string, read sequentially. */
class ShakeReader {
  #buffer = new Uint8Array(0);
  #offset = 0;
  read(n: number): Uint8Array {
    while (this.#offset + n > this.#buffer.length) {
      this.#buffer = shake128(new Uint8Array(0), { dkLen: Math.max(this.#buffer.length * 2, 1 << 16) });
    }
    const out = this.#buffer.slice(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }
}

const message = new TextEncoder().encode('cam-os cross-check message');

beforeAll(async () => {
  await loadMlDsa65();
  await loadMlKem768();
});

describe('ML-DSA-65: liboqs and noble interoperate (FIPS 204, pure, empty context)', () => {
  it('liboqs signs, noble verifies — with a noble key from a seed', () => {
    const keys = ml_dsa65.keygen(new Uint8Array(32).fill(7));
    const sig = mlDsa65Sign(message, keys.secretKey);
    expect(ml_dsa65.verify(sig, message, keys.publicKey)).toBe(true);
    // Same signature under a non-empty context must fail: liboqs signs with the empty context string.
    expect(ml_dsa65.verify(sig, message, keys.publicKey, { context: new Uint8Array([1]) })).toBe(false);
  });

  it('noble signs, liboqs verifies — with a liboqs key', async () => {
    const oqs = await createMLDSA65();
    try {
      const keys = oqs.generateKeyPair();
      const sig = ml_dsa65.sign(message, keys.secretKey);
      expect(mlDsa65Verify(message, sig, keys.publicKey)).toBe(true);
      // A context-bound noble signature is a different FIPS 204 message: liboqs (empty context) refuses it.
      const ctxSig = ml_dsa65.sign(message, keys.secretKey, { context: new Uint8Array([1]) });
      expect(mlDsa65Verify(message, ctxSig, keys.publicKey)).toBe(false);
      // Both derive the same public key from the secret key encoding.
      expect(bytesEqual(ml_dsa65.getPublicKey(keys.secretKey), keys.publicKey)).toBe(true);
    } finally {
      oqs.destroy();
    }
  });

  it('both refuse a signature over a different message or under another key', () => {
    const a = ml_dsa65.keygen(new Uint8Array(32).fill(1));
    const b = ml_dsa65.keygen(new Uint8Array(32).fill(2));
    const sig = mlDsa65Sign(message, a.secretKey);
    const other = new TextEncoder().encode('cam-os cross-check messagf');
    expect(mlDsa65Verify(other, sig, a.publicKey)).toBe(false);
    expect(ml_dsa65.verify(sig, other, a.publicKey)).toBe(false);
    expect(mlDsa65Verify(message, sig, b.publicKey)).toBe(false);
    expect(ml_dsa65.verify(sig, message, b.publicKey)).toBe(false);
  });

  it('wrong lengths are a refusal, not an exception', () => {
    const keys = ml_dsa65.keygen(new Uint8Array(32).fill(3));
    const sig = mlDsa65Sign(message, keys.secretKey);
    expect(mlDsa65Verify(message, sig.subarray(0, 3308), keys.publicKey)).toBe(false);
    expect(mlDsa65Verify(message, new Uint8Array(0), keys.publicKey)).toBe(false);
    expect(mlDsa65Verify(message, sig, keys.publicKey.subarray(1))).toBe(false);
    // Buffers (a Uint8Array subclass liboqs-js would refuse) work.
    expect(mlDsa65Verify(Buffer.from(message), Buffer.from(sig), Buffer.from(keys.publicKey))).toBe(true);
  });

  it('known answer: C2SP CCTV accumulated ML-DSA-65, 100 iterations; liboqs verifies every signature', () => {
    const seeds = new ShakeReader();
    const acc = new Accumulator();
    const empty = new Uint8Array(0);
    let liboqsVerified = 0;
    for (let i = 0; i < 100; i++) {
      const seed = seeds.read(32);
      const { publicKey, secretKey } = ml_dsa65.keygen(seed);
      acc.write(publicKey);
      // Deterministic: rnd = 32 zero bytes (FIPS 204 deterministic variant), empty message, empty context.
      const sig = ml_dsa65.sign(empty, secretKey, { extraEntropy: false });
      acc.write(sig);
      if (mlDsa65Verify(empty, sig, publicKey)) liboqsVerified++;
    }
    expect(acc.digest()).toBe('8358a1843220194417cadbc2651295cd8fc65125b5a5c1a239a16dc8b57ca199');
    expect(liboqsVerified).toBe(100);
  });
});

describe('ML-KEM-768: liboqs and noble interoperate (FIPS 203)', () => {
  it('noble encapsulates to a liboqs key, liboqs decapsulates; and the reverse', () => {
    const oqsKeys = mlKem768KeyPair();
    const fromNoble = ml_kem768.encapsulate(oqsKeys.publicKey);
    expect(
      bytesEqual(mlKem768Decapsulate(fromNoble.cipherText, oqsKeys.secretKey), fromNoble.sharedSecret),
    ).toBe(true);
    const nobleKeys = ml_kem768.keygen();
    const fromOqs = mlKem768Encapsulate(nobleKeys.publicKey);
    expect(
      bytesEqual(ml_kem768.decapsulate(fromOqs.ciphertext, nobleKeys.secretKey), fromOqs.sharedSecret),
    ).toBe(true);
  });

  it('liboqs refuses an encapsulation key with an unreduced coefficient (FIPS 203 modulus check)', () => {
    const { publicKey } = mlKem768KeyPair();
    const bad = new Uint8Array(publicKey);
    bad[0] = 0xff;
    bad[1] = 0x0f; // first 12-bit coefficient = 0xfff > q = 3329
    expect(() => mlKem768Encapsulate(bad)).toThrow(/encapsulation key refused/);
    expect(() => ml_kem768.encapsulate(bad)).toThrow();
  });

  it('known answer: Go accumulated ML-KEM-768, 100 iterations; liboqs decapsulates every ciphertext', () => {
    const rng = new ShakeReader();
    const acc = new Accumulator();
    let agreed = 0;
    let implicitRejectionsMatch = 0;
    for (let i = 0; i < 100; i++) {
      const seed = rng.read(64); // d || z
      const { publicKey, secretKey } = ml_kem768.keygen(seed);
      acc.write(publicKey);
      const msg = rng.read(32);
      const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey, msg);
      acc.write(cipherText);
      acc.write(sharedSecret);
      if (bytesEqual(mlKem768Decapsulate(cipherText, secretKey), sharedSecret)) agreed++;
      const random = rng.read(1088);
      const rejected = ml_kem768.decapsulate(random, secretKey);
      acc.write(rejected);
      if (bytesEqual(mlKem768Decapsulate(random, secretKey), rejected)) implicitRejectionsMatch++;
    }
    expect(acc.digest()).toBe('1114b1b6699ed191734fa339376afa7e285c9e6acf6ff0177d346696ce564415');
    expect(agreed).toBe(100);
    expect(implicitRejectionsMatch).toBe(100);
  });
});
