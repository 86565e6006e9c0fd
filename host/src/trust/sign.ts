// Hybrid signatures: ML-DSA-65 (liboqs) AND Ed25519 (node:crypto) over the same message. Every signed message
// starts with a domain-separation prefix, so a signature made for one purpose (a manifest) can never be
// replayed as another (a channel handshake), even though the same publisher key makes both.

import { sign as edSign, verify as edVerify } from 'node:crypto';
import { concatBytes, fromBase64Strict, toBase64, utf8 } from './encoding.js';
import { ed25519PrivateKeyObject, ed25519PublicKeyObject, type PublisherKeyPair } from './keys.js';
import {
  loadMlDsa65,
  ML_DSA_65_PUBLIC_KEY_BYTES,
  ML_DSA_65_SIGNATURE_BYTES,
  mlDsa65Sign,
  mlDsa65Verify,
} from './liboqs.js';
import {
  canonicalBytes,
  type Manifest,
  type ManifestBody,
  type ManifestSignatures,
  manifestBody,
  parseManifest,
  type SignedManifest,
} from './manifest.js';

/** Prefix of every signed manifest message: the schema id and a NUL, which no canonical JSON contains. */
export const MANIFEST_SIGNATURE_DOMAIN = 'cam-os/manifest@1\0';
export const ED25519_SIGNATURE_BYTES = 64;

const manifestDomainBytes = utf8(MANIFEST_SIGNATURE_DOMAIN);

/** Public halves needed to check a hybrid signature. */
export interface HybridPublicKey {
  readonly mlDsa65: Uint8Array;
  readonly ed25519: Uint8Array;
}

export interface HybridSignature {
  readonly mlDsa65: Uint8Array;
  readonly ed25519: Uint8Array;
}

export type HalfCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export interface HybridCheck {
  /** True only when both halves verify. */
  readonly ok: boolean;
  readonly mlDsa65: HalfCheck;
  readonly ed25519: HalfCheck;
}

/** Signs `message` with both keys. liboqs must be loaded (`await loadMlDsa65()`). */
export function hybridSignSync(message: Uint8Array, pair: PublisherKeyPair): HybridSignature {
  return {
    mlDsa65: mlDsa65Sign(message, pair.mlDsa65.secretKey),
    ed25519: new Uint8Array(edSign(null, message, ed25519PrivateKeyObject(pair.ed25519.secretKey))),
  };
}

/**
 * Checks both halves and reports each (both are always checked, so a refusal can say which half failed).
 * liboqs must be loaded.
 */
export function hybridVerifySync(
  message: Uint8Array,
  signature: HybridSignature,
  key: HybridPublicKey,
): HybridCheck {
  const mlDsa65 = checkMlDsa65(message, signature.mlDsa65, key.mlDsa65);
  const ed25519 = checkEd25519(message, signature.ed25519, key.ed25519);
  return { ok: mlDsa65.ok && ed25519.ok, mlDsa65, ed25519 };
}

function checkMlDsa65(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): HalfCheck {
  if (publicKey.byteLength !== ML_DSA_65_PUBLIC_KEY_BYTES) {
    return {
      ok: false,
      reason: `public key is ${publicKey.byteLength} bytes, expected ${ML_DSA_65_PUBLIC_KEY_BYTES}`,
    };
  }
  if (signature.byteLength !== ML_DSA_65_SIGNATURE_BYTES) {
    return {
      ok: false,
      reason: `signature is ${signature.byteLength} bytes, expected ${ML_DSA_65_SIGNATURE_BYTES}`,
    };
  }
  return mlDsa65Verify(message, signature, publicKey)
    ? { ok: true }
    : { ok: false, reason: 'signature does not verify' };
}

function checkEd25519(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): HalfCheck {
  if (signature.byteLength !== ED25519_SIGNATURE_BYTES) {
    return {
      ok: false,
      reason: `signature is ${signature.byteLength} bytes, expected ${ED25519_SIGNATURE_BYTES}`,
    };
  }
  let keyObject: ReturnType<typeof ed25519PublicKeyObject>;
  try {
    keyObject = ed25519PublicKeyObject(publicKey);
  } catch (err) {
    return { ok: false, reason: `public key unusable: ${err instanceof Error ? err.message : err}` };
  }
  // OpenSSL refuses non-canonical S (s >= L), so a signature cannot be made malleable by adding L.
  return edVerify(null, message, keyObject, signature)
    ? { ok: true }
    : { ok: false, reason: 'signature does not verify' };
}

/** The exact bytes a manifest signature covers: domain prefix || RFC 8785 canonical body. */
export function manifestSigningMessage(manifest: Manifest): Uint8Array {
  return concatBytes(manifestDomainBytes, canonicalBytes(manifest));
}

/**
 * Signs a manifest body (any `signatures` already present are ignored and not covered). The body is validated
 * first, and its `publisher` must be this key pair's key id. liboqs must be loaded.
 */
export function signManifestSync(manifest: Manifest, pair: PublisherKeyPair): ManifestSignatures {
  const body = parseManifest(manifestBody(manifest));
  if (body.publisher !== pair.keyId) {
    throw new Error(`manifest publisher ${body.publisher} is not the signing key ${pair.keyId}`);
  }
  const sig = hybridSignSync(manifestSigningMessage(body), pair);
  return { keyId: pair.keyId, mlDsa65: toBase64(sig.mlDsa65), ed25519: toBase64(sig.ed25519) };
}

/** Async form of signManifestSync: loads liboqs on first use. */
export async function signManifest(manifest: Manifest, pair: PublisherKeyPair): Promise<ManifestSignatures> {
  await loadMlDsa65();
  return signManifestSync(manifest, pair);
}

/** Returns a copy of the manifest body with fresh signatures attached. */
export async function signAndAttach(
  manifest: ManifestBody | Manifest,
  pair: PublisherKeyPair,
): Promise<SignedManifest> {
  const signatures = await signManifest(manifest, pair);
  const { signatures: _old, ...body } = manifest as Manifest;
  return { ...body, signatures };
}

/**
 * Decodes the two base64 halves. A half that is not canonical base64 decodes to an empty array, which then
 * fails its length check with a clear reason.
 */
export function decodeManifestSignatures(signatures: ManifestSignatures): HybridSignature {
  return {
    mlDsa65: fromBase64Strict(signatures.mlDsa65) ?? new Uint8Array(0),
    ed25519: fromBase64Strict(signatures.ed25519) ?? new Uint8Array(0),
  };
}

/** Checks a manifest's signatures against a public key (both halves reported). liboqs must be loaded. */
export function verifyManifestSignaturesSync(manifest: SignedManifest, key: HybridPublicKey): HybridCheck {
  return hybridVerifySync(
    manifestSigningMessage(manifest),
    decodeManifestSignatures(manifest.signatures),
    key,
  );
}
