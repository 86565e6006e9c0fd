/**
 * The marketplace's refusal codes. Every refusal an operator can see names one of these, so a script can
 * tell a tampered package (`bad-digest`) from a stale registry (`downgrade`) without parsing prose. Ids
 * follow the kernel catalogue's style (host/src/errors.ts): `MARKET_ERR_<WHAT>`.
 */

export const MARKETPLACE_ERRORS = {
  'bad-digest':
    'The downloaded package (or a file in it) does not match the digest the index or manifest pins.',
  'bad-signature': 'A manifest signature (ML-DSA-65 / Ed25519) or the sigstore bundle does not verify.',
  'unknown-key': "The package's publisher key is not in the operator's trust store (or is revoked).",
  'tlog-invalid': 'The sigstore bundle carries a transparency-log entry whose inclusion does not verify.',
  yanked: 'The requested version is yanked in the registry index.',
  downgrade:
    'The registry offers a version lower than one already installed or seen (a stale or rolled-back index).',
  'index-mismatch': 'An index entry points at a package whose signed manifest is another name or version.',
  'path-traversal':
    'A file inside the package has an unsafe path (absolute, `..`, backslash, control characters).',
  'too-large': 'The package is larger than the size limit, or than the size the index announced.',
  'dependency-cycle': 'The drivers to install depend on each other in a cycle.',
  'capability-refused': "The driver asks for an import the operator's capability policy does not allow.",
  'malformed-package': 'The package file is not a valid cam-os/package@1 container.',
  'malformed-index': 'The registry index is not a valid cam-os/registry-index@1 document.',
  'not-found': 'No such package or version in the registry.',
  'no-matching-version': 'No version in the registry satisfies the requested range.',
  'consent-declined': 'The operator did not agree to the imports the driver asks for (use --yes in scripts).',
  'not-installed': 'The package is not installed.',
  'no-previous-version': 'There is no earlier installed version to roll back to.',
  'in-use': 'Another installed package depends on the one to remove.',
  'registry-unreachable': 'The registry could not be read.',
  unauthorized: 'Publishing to the registry needs a valid bearer token.',
  conflict: 'The registry already holds this name and version with different content.',
  'kernel-refused': 'The running kernel refused to load or swap the driver; nothing was written.',
  'invalid-argument': 'A command argument is malformed.',
} as const;

export type MarketplaceErrorCode = keyof typeof MARKETPLACE_ERRORS;

export class MarketplaceError extends Error {
  readonly code: MarketplaceErrorCode;
  /** `MARKET_ERR_BAD_DIGEST` and so on. */
  readonly id: string;
  constructor(code: MarketplaceErrorCode, message: string) {
    const id = `MARKET_ERR_${code.replace(/-/g, '_').toUpperCase()}`;
    super(`${id}: ${message}`);
    this.name = 'MarketplaceError';
    this.code = code;
    this.id = id;
  }
}

export function marketError(code: MarketplaceErrorCode, message: string): MarketplaceError {
  return new MarketplaceError(code, message);
}
