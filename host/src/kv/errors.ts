/**
 * Errors of the key-value layer. Codes follow the kernel's `<AREA>_ERR_<WHAT>` convention and carry the gRPC
 * status they map to, so the kernel's error catalogue can absorb them without changing callers.
 */

export const KV_ERRORS = {
  KV_ERR_INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  KV_ERR_CONFIG_INVALID: 'INVALID_ARGUMENT',
  KV_ERR_CLOSED: 'FAILED_PRECONDITION',
  KV_ERR_UNAVAILABLE: 'UNAVAILABLE',
  KV_ERR_BACKEND: 'INTERNAL',
} as const;

export type KvErrorCode = keyof typeof KV_ERRORS;

export class KvError extends Error {
  readonly code: KvErrorCode;
  readonly status: (typeof KV_ERRORS)[KvErrorCode];

  constructor(code: KvErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KvError';
    this.code = code;
    this.status = KV_ERRORS[code];
  }
}

export function invalid(message: string): KvError {
  return new KvError('KV_ERR_INVALID_ARGUMENT', message);
}
