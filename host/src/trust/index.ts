// The trust chain: signed component manifests (ML-DSA-65 + Ed25519), publisher keys, the trust store, the
// one component verifier, and the post-quantum secure channel.

export { writeFileAtomic } from './atomic-file.js';
export * from './channel.js';
export * from './errors.js';
export * from './keys.js';
export {
  isMlDsa65Loaded,
  isMlKem768Loaded,
  loadMlDsa65,
  loadMlKem768,
  ML_DSA_65_PUBLIC_KEY_BYTES,
  ML_DSA_65_SECRET_KEY_BYTES,
  ML_DSA_65_SIGNATURE_BYTES,
  ML_KEM_768_CIPHERTEXT_BYTES,
  ML_KEM_768_PUBLIC_KEY_BYTES,
} from './liboqs.js';
export * from './manifest.js';
export { compareSemver, isSemver, isValidRange, parseSemver, type SemVer } from './semver.js';
export * from './sign.js';
export * from './trust-store.js';
export * from './verifier.js';
