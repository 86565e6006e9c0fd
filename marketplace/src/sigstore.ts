/**
 * The package's sigstore bundle: a DSSE envelope over the package statement (name, version, publisher and
 * the digest of every file but the bundle itself), signed with the publisher's Ed25519 key and carrying
 * public-key verification material whose hint is the publisher key id.
 *
 * Verification is offline, with `@sigstore/verify`: the key comes from the operator's trust store (never
 * from the bundle), and transparency-log entries, when a bundle carries any, must each prove inclusion
 * (signed checkpoint + RFC 6962 Merkle path) against a log key the operator pinned. A bundle without
 * entries is accepted on its signature alone; an entry that does not verify refuses the package.
 */
import { createHash, createPublicKey, sign as edSign, type KeyObject } from 'node:crypto';
import type { PublisherKeyPair } from '@cam-os/host/trust/keys.js';
import { ed25519PrivateKeyObject, ed25519PublicKeyObject } from '@cam-os/host/trust/keys.js';
import { bundleFromJSON } from '@sigstore/bundle';
import { type TrustMaterial, toSignedEntity, Verifier } from '@sigstore/verify';
import { marketError } from './errors.js';

export const STATEMENT_PAYLOAD_TYPE = 'application/vnd.cam-os.package-statement+json';
export const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/** DSSE pre-authentication encoding (DSSE v1 protocol). */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `),
    type,
    Buffer.from(` ${payload.byteLength} `),
    Buffer.from(payload),
  ]);
}

export interface SerializedBundle {
  mediaType: string;
  verificationMaterial: {
    publicKey: { hint: string };
    tlogEntries: SerializedTlogEntry[];
    timestampVerificationData: { rfc3161Timestamps: unknown[] };
  };
  dsseEnvelope: { payload: string; payloadType: string; signatures: Array<{ sig: string; keyid: string }> };
}

export interface SerializedTlogEntry {
  logIndex: string;
  logId: { keyId: string };
  kindVersion: { kind: string; version: string };
  integratedTime: string;
  inclusionProof?: {
    logIndex: string;
    rootHash: string;
    treeSize: string;
    hashes: string[];
    checkpoint: { envelope: string };
  };
  canonicalizedBody: string;
}

/** Signs a package statement with the publisher's Ed25519 key into a sigstore bundle (no log entries). */
export function createBundle(statement: Uint8Array, pair: PublisherKeyPair): SerializedBundle {
  const sig = edSign(
    null,
    preAuthEncoding(STATEMENT_PAYLOAD_TYPE, statement),
    ed25519PrivateKeyObject(pair.ed25519.secretKey),
  );
  return {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: {
      publicKey: { hint: pair.keyId },
      tlogEntries: [],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    dsseEnvelope: {
      payload: Buffer.from(statement).toString('base64'),
      payloadType: STATEMENT_PAYLOAD_TYPE,
      signatures: [{ sig: sig.toString('base64'), keyid: pair.keyId }],
    },
  };
}

/** A transparency log the operator trusts: its base URL (matched by checkpoint signer names) and key. */
export interface PinnedLog {
  readonly baseUrl: string;
  /** PEM (SPKI) public key of the log. */
  readonly publicKeyPem: string;
}

/** Rekor's log id: SHA-256 of the DER SPKI of the log key. */
export function logIdOf(key: KeyObject): Buffer {
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest();
}

export interface BundleCheck {
  /** How many transparency-log entries were verified. */
  readonly tlogEntries: number;
}

/**
 * Verifies `bundleJson` covers exactly `statement` and was signed by `ed25519PublicKey` (the trusted key of
 * `keyId`). Throws MarketplaceError: bad-signature (signature, payload, hint) or tlog-invalid.
 */
export function verifyBundle(
  bundleBytes: Uint8Array,
  statement: Uint8Array,
  keyId: string,
  ed25519PublicKey: Uint8Array,
  pinnedLogs: readonly PinnedLog[],
  opts: { skipTlog?: boolean } = {},
): BundleCheck {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bundleBytes).toString('utf8'));
  } catch (e) {
    throw marketError('bad-signature', `sigstore bundle is not JSON (${(e as Error).message})`);
  }
  // A registry checks the signature only: which logs to believe is the installing operator's decision.
  const material = (raw as { verificationMaterial?: { tlogEntries?: unknown } }).verificationMaterial;
  if (opts.skipTlog && material && typeof material === 'object') material.tlogEntries = [];
  let bundle: ReturnType<typeof bundleFromJSON>;
  try {
    bundle = bundleFromJSON(raw);
  } catch (e) {
    const fields = (e as { fields?: string[] }).fields;
    throw marketError(
      'bad-signature',
      `sigstore bundle is invalid: ${(e as Error).message}${fields ? ` (${fields.join(', ')})` : ''}`,
    );
  }
  if (bundle.content.$case !== 'dsseEnvelope')
    throw marketError(
      'bad-signature',
      'sigstore bundle must carry a DSSE envelope over the package statement',
    );
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== STATEMENT_PAYLOAD_TYPE || !Buffer.from(env.payload).equals(Buffer.from(statement)))
    throw marketError(
      'bad-signature',
      'sigstore bundle signs a different statement than this package (files, name or version differ)',
    );
  const key = bundle.verificationMaterial.content;
  if (key.$case !== 'publicKey' || key.publicKey.hint !== keyId)
    throw marketError(
      'bad-signature',
      `sigstore bundle must name the publisher key ${keyId} as its public-key hint`,
    );
  const tlogs = pinnedLogs.map((l) => {
    const publicKey = createPublicKey(l.publicKeyPem);
    return {
      baseURL: l.baseUrl,
      logID: logIdOf(publicKey),
      publicKey,
      validFor: { start: new Date(0), end: new Date(8_640_000_000_000_000) },
    };
  });
  const publicKey = ed25519PublicKeyObject(ed25519PublicKey);
  const trust: TrustMaterial = {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs,
    ctlogs: [],
    publicKey: (hint: string) => {
      if (hint !== keyId) throw new Error(`unknown key hint ${hint}`);
      return { publicKey, validFor: () => true };
    },
  };
  const entries = bundle.verificationMaterial.tlogEntries.length;
  const verifier = new Verifier(trust, { tlogThreshold: entries, ctlogThreshold: 0, timestampThreshold: 0 });
  try {
    verifier.verify(toSignedEntity(bundle));
  } catch (e) {
    const code = String((e as { code?: string }).code ?? '');
    const message = (e as Error).message;
    if (code.startsWith('TLOG'))
      throw marketError(
        'tlog-invalid',
        `transparency-log entry does not verify against the pinned logs (${pinnedLogs.length} pinned): ${message}`,
      );
    throw marketError('bad-signature', `sigstore bundle signature does not verify: ${message}`);
  }
  return { tlogEntries: entries };
}
