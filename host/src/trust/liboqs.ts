// liboqs (Open Quantum Safe, compiled to WebAssembly) for ML-DSA-65 and ML-KEM-768.
//
// Each algorithm is its own Emscripten module that instantiates asynchronously (~8 ms each). Both are loaded
// lazily, once per process, and every operation after that is synchronous: the component loader sits on a hot
// path and must not pay an await per verification. Callers that want sync use do `await loadMlDsa65()` (or
// `loadMlKem768()`) once at start-up.
//
// Why liboqs and not @noble/post-quantum for the hot operations (measured on this machine, see
// bench/trust.bench.ts): ML-DSA-65 verify ~0.17 ms vs ~2 ms, sign ~0.5 ms vs ~8 ms, ML-KEM-768
// keygen+encaps+decaps ~0.19 ms vs ~1.8 ms. noble stays in use for what liboqs-js does not expose: key
// generation from a caller-supplied seed (FIPS 204 KeyGen_internal(xi)), so that a TPM RNG can seed keys.
// The two are cross-checked in the tests (signatures and keys interoperate; same FIPS 204 "pure" variant
// with an empty context string).

import type { MLDSA65, MLKEM768 } from '@oqs/liboqs-js';
import { createMLKEM768 } from '@oqs/liboqs-js/kem';
import { createMLDSA65 } from '@oqs/liboqs-js/sig';
import { plainBytes } from './encoding.js';

export const ML_DSA_65_PUBLIC_KEY_BYTES = 1952;
export const ML_DSA_65_SECRET_KEY_BYTES = 4032;
export const ML_DSA_65_SIGNATURE_BYTES = 3309;
export const ML_KEM_768_PUBLIC_KEY_BYTES = 1184;
export const ML_KEM_768_SECRET_KEY_BYTES = 2400;
export const ML_KEM_768_CIPHERTEXT_BYTES = 1088;
export const ML_KEM_768_SHARED_SECRET_BYTES = 32;

let dsa: MLDSA65 | undefined;
let dsaLoading: Promise<MLDSA65> | undefined;
let kem: MLKEM768 | undefined;
let kemLoading: Promise<MLKEM768> | undefined;

/** Loads the liboqs ML-DSA-65 module once; concurrent callers share one load. A failed load can be retried. */
export function loadMlDsa65(): Promise<void> {
  if (dsa) return Promise.resolve();
  dsaLoading ??= createMLDSA65().then(
    (instance) => {
      dsa = instance;
      return instance;
    },
    (err: unknown) => {
      dsaLoading = undefined;
      throw new Error(`could not load liboqs ML-DSA-65 (WebAssembly): ${errorText(err)}`, { cause: err });
    },
  );
  return dsaLoading.then(() => undefined);
}

/** Loads the liboqs ML-KEM-768 module once; concurrent callers share one load. */
export function loadMlKem768(): Promise<void> {
  if (kem) return Promise.resolve();
  kemLoading ??= createMLKEM768().then(
    (instance) => {
      kem = instance;
      return instance;
    },
    (err: unknown) => {
      kemLoading = undefined;
      throw new Error(`could not load liboqs ML-KEM-768 (WebAssembly): ${errorText(err)}`, { cause: err });
    },
  );
  return kemLoading.then(() => undefined);
}

export function isMlDsa65Loaded(): boolean {
  return dsa !== undefined;
}

export function isMlKem768Loaded(): boolean {
  return kem !== undefined;
}

function loadedDsa(): MLDSA65 {
  if (!dsa) {
    throw new Error('liboqs ML-DSA-65 is not loaded: await loadMlDsa65() once before the synchronous calls');
  }
  return dsa;
}

function loadedKem(): MLKEM768 {
  if (!kem) {
    throw new Error(
      'liboqs ML-KEM-768 is not loaded: await loadMlKem768() once before the synchronous calls',
    );
  }
  return kem;
}

/** FIPS 204 ML-DSA-65 signature (pure variant, empty context), hedged with liboqs' RNG. */
export function mlDsa65Sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (secretKey.byteLength !== ML_DSA_65_SECRET_KEY_BYTES) {
    throw new Error(
      `ML-DSA-65 secret key must be ${ML_DSA_65_SECRET_KEY_BYTES} bytes, got ${secretKey.byteLength}`,
    );
  }
  return loadedDsa().sign(plainBytes(message), plainBytes(secretKey));
}

/**
 * True only for a valid signature. Wrong lengths are a plain `false` (liboqs-js would throw a validation
 * error for them, and a forged manifest must not be able to turn a refusal into an exception).
 */
export function mlDsa65Verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.byteLength !== ML_DSA_65_SIGNATURE_BYTES) return false;
  if (publicKey.byteLength !== ML_DSA_65_PUBLIC_KEY_BYTES) return false;
  return loadedDsa().verify(plainBytes(message), plainBytes(signature), plainBytes(publicKey));
}

export function mlKem768KeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  return loadedKem().generateKeyPair();
}

/** Throws when the encapsulation key fails the FIPS 203 checks (length, coefficient modulus). */
export function mlKem768Encapsulate(publicKey: Uint8Array): {
  ciphertext: Uint8Array;
  sharedSecret: Uint8Array;
} {
  if (publicKey.byteLength !== ML_KEM_768_PUBLIC_KEY_BYTES) {
    throw new Error(
      `ML-KEM-768 public key must be ${ML_KEM_768_PUBLIC_KEY_BYTES} bytes, got ${publicKey.byteLength}`,
    );
  }
  try {
    return loadedKem().encapsulate(plainBytes(publicKey));
  } catch (err) {
    throw new Error(`ML-KEM-768 encapsulation key refused: ${errorText(err)}`, { cause: err });
  }
}

/** ML-KEM decapsulation never fails for a well-sized ciphertext: a forged one yields an unrelated secret. */
export function mlKem768Decapsulate(ciphertext: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (ciphertext.byteLength !== ML_KEM_768_CIPHERTEXT_BYTES) {
    throw new Error(
      `ML-KEM-768 ciphertext must be ${ML_KEM_768_CIPHERTEXT_BYTES} bytes, got ${ciphertext.byteLength}`,
    );
  }
  return loadedKem().decapsulate(plainBytes(ciphertext), plainBytes(secretKey));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
