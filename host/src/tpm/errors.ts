/** Every failure of the TPM layer, by code; `rc` carries the TSS2 return code when the TPM stack made one. */
export type TpmErrorCode =
  | 'TPM_ERR_ADDON_NOT_BUILT'
  | 'TPM_ERR_ADDON_LOAD'
  | 'TPM_ERR_NO_DEVICE'
  | 'TPM_ERR_OPEN'
  | 'TPM_ERR_COMMAND'
  | 'TPM_ERR_CLOSED'
  | 'TPM_ERR_ARGUMENT'
  | 'TPM_ERR_KEY_HANDLE'
  | 'TPM_ERR_PCR_BANK'
  | 'TPM_ERR_INTERNAL'
  | 'TPM_ERR_ATTEST_FORMAT'
  | 'TPM_ERR_LOG_FORMAT'
  | 'TPM_ERR_LOG_MISMATCH'
  | 'TPM_ERR_LOG_BROKEN';

export class TpmError extends Error {
  override readonly name = 'TpmError';
  readonly code: TpmErrorCode;
  readonly rc: number | undefined;

  constructor(code: TpmErrorCode, message: string, options?: { rc?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.rc = options?.rc;
  }
}

const NATIVE_CODES = new Set<string>([
  'TPM_ERR_OPEN',
  'TPM_ERR_COMMAND',
  'TPM_ERR_CLOSED',
  'TPM_ERR_KEY_HANDLE',
  'TPM_ERR_PCR_BANK',
  'TPM_ERR_INTERNAL',
]);

/** Turns what the addon throws or rejects with into a TpmError, keeping the original as `cause`. */
export function fromNative(e: unknown): TpmError {
  if (e instanceof TpmError) return e;
  if (e instanceof TypeError || e instanceof RangeError) {
    return new TpmError('TPM_ERR_ARGUMENT', e.message, { cause: e });
  }
  if (e instanceof Error) {
    const { code, rc } = e as Error & { code?: unknown; rc?: unknown };
    if (typeof code === 'string' && NATIVE_CODES.has(code)) {
      return new TpmError(code as TpmErrorCode, e.message, {
        rc: typeof rc === 'number' ? rc : undefined,
        cause: e,
      });
    }
    return new TpmError('TPM_ERR_INTERNAL', e.message, { cause: e });
  }
  return new TpmError('TPM_ERR_INTERNAL', String(e));
}
