/**
 * The security syscalls over the kernel's trust anchors:
 *  - TmpSign: ECDSA P-256 / SHA-256 with a TPM-resident key (never a software key); the key's public part
 *    comes back as SPKI DER in `signing_certificate.attestation_data` (the key is not CA-certified, so
 *    `certificate_chain` is empty). Unavailable in no-TPM mode, and HealthCheck says why.
 *  - VerifyManifest: the loader's own verifier (schema, publisher trust, revocation, ML-DSA-65 + Ed25519,
 *    operator policy) on a manifest alone; a refusal is an answer (`valid: false`, the reason in `error`).
 *  - EstablishSecureChannel: hybrid X25519 + ML-KEM-768 key agreement, HKDF-SHA-256, AES-256-GCM records
 *    (host/src/trust/channel.ts). Wire format of the one round trip CAM-OS defines:
 *      request  ephemeral_public_key = X25519 public key (32 bytes) || ML-KEM-768 encapsulation key (1184)
 *      response ephemeral_public_key = X25519 public key (32 bytes) || ML-KEM-768 ciphertext (1088)
 *    The kernel side is anonymous at this layer: the gRPC transport (TLS / mTLS) authenticates it.
 *    Established channels are kept (bounded, with a TTL) for federation to reuse.
 */
import { createHash } from 'node:crypto';
import type { SyscallDef } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import type { TrustedLoader } from '../kernel/loader.js';
import type { TpmContext } from '../server/trust-anchors.js';
import { acceptChannel, CHANNEL_PROTOCOL, type SecureChannel } from '../trust/channel.js';
import { ML_KEM_768_CIPHERTEXT_BYTES, ML_KEM_768_PUBLIC_KEY_BYTES } from '../trust/liboqs.js';
import { Fields } from './codec.js';

export interface SecurityDeps {
  loader: TrustedLoader;
  tpm: TpmContext;
}

const X25519_BYTES = 32;
const MAX_SIGN_BYTES = 1024 * 1024;
const MAX_CHANNELS = 1024;
const CHANNEL_TTL_MS = 60 * 60 * 1000;
const ALGORITHM = 'ECDSA_P256_SHA256';

/** Established channels by id, oldest first; reused by federation. */
export class ChannelRegistry {
  private readonly channels = new Map<string, { channel: SecureChannel; peerId: string; at: number }>();

  add(id: string, channel: SecureChannel, peerId: string): void {
    const now = Date.now();
    for (const [k, v] of this.channels) {
      if (this.channels.size < MAX_CHANNELS && now - v.at < CHANNEL_TTL_MS) break;
      v.channel.close();
      this.channels.delete(k);
    }
    this.channels.set(id, { channel, peerId, at: now });
  }

  get(id: string): SecureChannel | undefined {
    return this.channels.get(id)?.channel;
  }

  get size(): number {
    return this.channels.size;
  }
}

const emptyTcc = () => ({
  key_id: '',
  certificate_chain: [],
  attestation_data: Buffer.alloc(0),
  algorithm: '',
  created_at: 0,
  expires_at: 0,
  attributes: {},
});

export function securitySyscalls(
  deps: SecurityDeps,
  channels = new ChannelRegistry(),
): SyscallDef<never, unknown>[] {
  const tmpSign: SyscallDef<{ data: Uint8Array; keyId: string; algorithm: string }, unknown> = {
    name: 'TmpSign',
    group: 'security',
    summary: "Sign data with the kernel's TPM-resident ECC P-256 key.",
    unavailable: () => (deps.tpm.tpm ? undefined : `no TPM: ${deps.tpm.reason}`),
    validate(req) {
      const f = new Fields('TmpSign', req);
      const data = f.bytes('data', MAX_SIGN_BYTES, true);
      if (data.length === 0) throw new KernelError('KERNEL_ERR_REQUEST_INVALID', 'TmpSign: data is required');
      const keyId = f.str('key_id', { maxBytes: 128 });
      const algorithm = f.str('algorithm', { maxBytes: 64 });
      if (algorithm !== '' && algorithm !== ALGORITHM) {
        throw new KernelError(
          'KERNEL_ERR_REQUEST_INVALID',
          `TmpSign: algorithm must be ${ALGORITHM} (or empty)`,
        );
      }
      return { data, keyId, algorithm };
    },
    async handle(req) {
      const key = await deps.tpm.signingKey();
      const fingerprint = createHash('sha256').update(key.spkiDer).digest('hex').slice(0, 32);
      if (req.keyId !== '' && req.keyId !== fingerprint && req.keyId !== 'kernel') {
        throw new KernelError(
          'KERNEL_ERR_REQUEST_INVALID',
          `TmpSign: unknown key_id '${req.keyId}' (this kernel signs with ${fingerprint})`,
        );
      }
      const digest = createHash('sha256').update(req.data).digest();
      const signature = await deps.tpm.tpm!.sign(key.handle, digest);
      return {
        signature,
        signing_certificate: {
          ...emptyTcc(),
          key_id: fingerprint,
          attestation_data: key.spkiDer,
          algorithm: ALGORITHM,
          created_at: Math.floor(deps.tpm.createdAt / 1000),
          attributes: {
            tpm: 'resident',
            hierarchy: key.hierarchy,
            public_key_format: 'spki-der',
            tcti: deps.tpm.tcti ?? '',
          },
        },
        error: '',
        status_code: 0,
      };
    },
  };

  const verifyManifest: SyscallDef<{ manifest: Uint8Array; signature: Uint8Array }, unknown> = {
    name: 'VerifyManifest',
    group: 'security',
    summary: 'Verify a signed component manifest against the trust store and operator policy.',
    validate(req) {
      const f = new Fields('VerifyManifest', req);
      const manifest = f.bytes('manifest_data', 64 * 1024, true);
      if (manifest.length === 0)
        throw new KernelError('KERNEL_ERR_REQUEST_INVALID', 'VerifyManifest: manifest_data is required');
      return { manifest, signature: f.bytes('signature', 64 * 1024) };
    },
    async handle(req) {
      let manifest: Uint8Array | string = req.manifest;
      if (req.signature.length > 0) {
        // A detached signature block ({ keyId, mlDsa65, ed25519 } as JSON) is attached before verifying.
        let parsed: unknown;
        let sig: unknown;
        try {
          parsed = JSON.parse(Buffer.from(req.manifest).toString('utf8'));
          sig = JSON.parse(Buffer.from(req.signature).toString('utf8'));
        } catch {
          return {
            valid: false,
            error: 'manifest_data and signature must be JSON (signature: the manifest signatures block)',
            status_code: 3,
          };
        }
        manifest = JSON.stringify({ ...(parsed as object), signatures: sig });
      }
      const r = await deps.loader.verifyManifest(manifest);
      return r.ok
        ? { valid: true, error: '', status_code: 0 }
        : { valid: false, error: `${r.code}: ${r.message}`.slice(0, 500), status_code: 0 };
    },
  };

  const establish: SyscallDef<{ peerId: string; x25519: Uint8Array; kem: Uint8Array }, unknown> = {
    name: 'EstablishSecureChannel',
    group: 'security',
    summary:
      'Hybrid X25519 + ML-KEM-768 key agreement; returns a channel id and the kernel’s ephemeral keys.',
    validate(req) {
      const f = new Fields('EstablishSecureChannel', req);
      const peerId = f.str('peer_id', { maxBytes: 256 });
      const key = f.bytes('ephemeral_public_key', 4096);
      const want = X25519_BYTES + ML_KEM_768_PUBLIC_KEY_BYTES;
      if (key.length !== want) {
        throw new KernelError(
          'KERNEL_ERR_REQUEST_INVALID',
          `EstablishSecureChannel: ephemeral_public_key must be ${want} bytes (X25519 public key, 32, then ML-KEM-768 encapsulation key, ${ML_KEM_768_PUBLIC_KEY_BYTES}); got ${key.length}`,
        );
      }
      return { peerId, x25519: key.subarray(0, X25519_BYTES), kem: key.subarray(X25519_BYTES) };
    },
    async handle(req) {
      let responder: Awaited<ReturnType<typeof acceptChannel>>;
      try {
        responder = await acceptChannel({
          protocol: CHANNEL_PROTOCOL,
          kemPublicKey: req.kem,
          x25519PublicKey: req.x25519,
        });
      } catch (e) {
        throw new KernelError(
          'KERNEL_ERR_REQUEST_INVALID',
          `EstablishSecureChannel: ${(e as Error).message}`,
        );
      }
      const channel = responder.complete({});
      const id = channel.id;
      channels.add(id, channel, req.peerId);
      const accept = responder.accept;
      if (accept.kemCiphertext.length !== ML_KEM_768_CIPHERTEXT_BYTES)
        throw new Error('unexpected ML-KEM ciphertext size');
      return {
        channel_id: id,
        ephemeral_public_key: Buffer.concat([accept.x25519PublicKey, accept.kemCiphertext]),
        peer_certificate: {
          ...emptyTcc(),
          key_id: id,
          algorithm: 'X25519+ML-KEM-768/HKDF-SHA-256/AES-256-GCM',
          created_at: Math.floor(Date.now() / 1000),
          attributes: { protocol: CHANNEL_PROTOCOL, authenticated: 'transport (TLS) only' },
        },
        error: '',
        status_code: 0,
      };
    },
  };

  return [tmpSign, verifyManifest, establish] as unknown as SyscallDef<never, unknown>[];
}
