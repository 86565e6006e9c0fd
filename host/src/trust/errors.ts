// The verifier's refusal codes, each with one catalogue entry: a stable error id for logs and docs, and the
// gRPC status a syscall answers with. Statuses agree with the kernel catalogue in ../errors.ts (a digest
// mismatch is PERMISSION_DENIED there too). The component loader throws TrustError; the VerifyManifest
// syscall returns the code. Both come from the same verifier result, so they cannot drift apart.

import { GrpcStatus, type GrpcStatusName } from '../errors.js';

export const TRUST_ERROR_CODES = [
  'malformed-manifest',
  'unsigned',
  'unknown-publisher',
  'revoked-key',
  'bad-signature',
  'digest-mismatch',
  'capability-not-allowed',
  'downgrade',
] as const;

export type TrustErrorCode = (typeof TRUST_ERROR_CODES)[number];

export interface TrustErrorEntry {
  /** Stable identifier, `KERNEL_ERR_TRUST_<WHAT>`, in the style of the kernel catalogue (../errors.ts). */
  readonly id: string;
  readonly status: GrpcStatusName;
  /** What the code means, for docs and operator messages. */
  readonly summary: string;
}

export const TRUST_ERRORS: { readonly [C in TrustErrorCode]: TrustErrorEntry } = {
  'malformed-manifest': {
    id: 'KERNEL_ERR_TRUST_MALFORMED_MANIFEST',
    status: 'INVALID_ARGUMENT',
    summary: 'The manifest is not valid JSON or does not follow schema cam-os/manifest@1.',
  },
  unsigned: {
    id: 'KERNEL_ERR_TRUST_UNSIGNED',
    status: 'UNAUTHENTICATED',
    summary: 'The manifest carries no signatures.',
  },
  'unknown-publisher': {
    id: 'KERNEL_ERR_TRUST_UNKNOWN_PUBLISHER',
    status: 'UNAUTHENTICATED',
    summary: "The manifest's publisher key is not in the trust store.",
  },
  'revoked-key': {
    id: 'KERNEL_ERR_TRUST_REVOKED_KEY',
    status: 'PERMISSION_DENIED',
    summary: "The manifest's publisher key has been revoked.",
  },
  'bad-signature': {
    id: 'KERNEL_ERR_TRUST_BAD_SIGNATURE',
    status: 'UNAUTHENTICATED',
    summary: 'The ML-DSA-65 or Ed25519 signature (or both) does not verify with the publisher key.',
  },
  'digest-mismatch': {
    id: 'KERNEL_ERR_TRUST_DIGEST_MISMATCH',
    status: 'PERMISSION_DENIED',
    summary: 'The component bytes do not match the digest or size in the signed manifest.',
  },
  'capability-not-allowed': {
    id: 'KERNEL_ERR_TRUST_CAPABILITY_NOT_ALLOWED',
    status: 'PERMISSION_DENIED',
    summary: "The manifest asks for a capability the operator's policy does not allow.",
  },
  downgrade: {
    id: 'KERNEL_ERR_TRUST_DOWNGRADE',
    status: 'FAILED_PRECONDITION',
    summary: 'The manifest version is lower than the version already installed.',
  },
};

/** A verifier refusal as an exception (what the component loader throws). */
export class TrustError extends Error {
  readonly code: TrustErrorCode;
  readonly id: string;
  readonly status: GrpcStatusName;
  constructor(code: TrustErrorCode, message: string) {
    const entry = TRUST_ERRORS[code];
    super(`${entry.id}: ${message}`);
    this.name = 'TrustError';
    this.code = code;
    this.id = entry.id;
    this.status = entry.status;
  }

  /** Numeric gRPC status code. */
  get grpcCode(): number {
    return GrpcStatus[this.status];
  }
}
