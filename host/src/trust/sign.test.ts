import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { concatBytes, fromBase64Strict, utf8 } from './encoding.js';
import { loadMlDsa65 } from './liboqs.js';
import { canonicalBytes, ManifestError, type SignedManifest } from './manifest.js';
import {
  decodeManifestSignatures,
  hybridSignSync,
  hybridVerifySync,
  MANIFEST_SIGNATURE_DOMAIN,
  manifestSigningMessage,
  signAndAttach,
  signManifest,
  verifyManifestSignaturesSync,
} from './sign.js';
import { fakeComponentBytes, testKeyPair, testManifestBody } from './testing.js';

const alice = testKeyPair('sign/alice');
const body = testManifestBody(alice.keyId, fakeComponentBytes(128));

beforeAll(() => loadMlDsa65());

describe('manifest signatures', () => {
  it('cover the domain prefix followed by the RFC 8785 body', async () => {
    const message = manifestSigningMessage(body);
    expect(new TextDecoder().decode(message.subarray(0, 18))).toBe('cam-os/manifest@1\0');
    expect(Buffer.from(message.subarray(18)).equals(Buffer.from(canonicalBytes(body)))).toBe(true);

    const signatures = await signManifest(body, alice);
    expect(signatures.keyId).toBe(alice.keyId);
    const sig = decodeManifestSignatures(signatures);
    expect(sig.mlDsa65.byteLength).toBe(3309);
    expect(sig.ed25519.byteLength).toBe(64);
    // Independent check of the ML-DSA-65 half with noble (empty FIPS 204 context).
    expect(ml_dsa65.verify(sig.mlDsa65, message, alice.mlDsa65.publicKey)).toBe(true);
    // Without the domain prefix the same signature is worthless.
    const key = { mlDsa65: alice.mlDsa65.publicKey, ed25519: alice.ed25519.publicKey };
    expect(hybridVerifySync(message, sig, key).ok).toBe(true);
    expect(hybridVerifySync(canonicalBytes(body), sig, key).ok).toBe(false);
  });

  it('a signature made under another domain (e.g. a channel transcript) is not a manifest signature', () => {
    const key = { mlDsa65: alice.mlDsa65.publicKey, ed25519: alice.ed25519.publicKey };
    const other = hybridSignSync(
      concatBytes(utf8('cam-os/channel@1 responder\0'), canonicalBytes(body)),
      alice,
    );
    const check = hybridVerifySync(manifestSigningMessage(body), other, key);
    expect(check).toEqual({
      ok: false,
      mlDsa65: { ok: false, reason: 'signature does not verify' },
      ed25519: { ok: false, reason: 'signature does not verify' },
    });
    expect(MANIFEST_SIGNATURE_DOMAIN).toBe('cam-os/manifest@1\0');
  });

  it('signAndAttach replaces old signatures and is independent of key order', async () => {
    const signed = await signAndAttach(body, alice);
    const stale = { ...signed, signatures: { ...signed.signatures, ed25519: 'AAAA' } };
    const resigned = await signAndAttach(stale, alice);
    const key = { mlDsa65: alice.mlDsa65.publicKey, ed25519: alice.ed25519.publicKey };
    expect(verifyManifestSignaturesSync(resigned, key).ok).toBe(true);
    const reordered = Object.fromEntries(Object.entries(signed).reverse()) as unknown as SignedManifest;
    expect(verifyManifestSignaturesSync(reordered, key).ok).toBe(true);
    expect(fromBase64Strict(resigned.signatures.mlDsa65)).toBeDefined();
  });

  it('refuses to sign an invalid manifest or one naming another publisher', async () => {
    await expect(signManifest({ ...body, name: 'Not Kebab' }, alice)).rejects.toBeInstanceOf(ManifestError);
    const bob = testKeyPair('sign/bob');
    await expect(signManifest(body, bob)).rejects.toThrow(
      `manifest publisher ${alice.keyId} is not the signing key ${bob.keyId}`,
    );
  });
});
