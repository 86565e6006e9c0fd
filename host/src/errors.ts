/**
 * The kernel's one error catalogue. Every error a caller can see comes from here: a stable code
 * (`KERNEL_ERR_<AREA>_<WHAT>`), the gRPC status it maps to, and a message template. Host bugs and
 * sandbox violations are still thrown as KernelError so that one mapping serves gRPC, the CLI and tests.
 *
 * docs/errors.md lists the same table; `errors.test.ts` keeps the two in step.
 */

/** gRPC status codes (numbers as on the wire; see grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusName = keyof typeof GrpcStatus;

interface CatalogueEntry {
  readonly status: GrpcStatusName;
  readonly summary: string;
}

export const ERROR_CATALOGUE = {
  KERNEL_ERR_REQUEST_INVALID: {
    status: 'INVALID_ARGUMENT',
    summary: 'A request field is missing or malformed.',
  },
  KERNEL_ERR_SYSCALL_UNKNOWN: { status: 'UNIMPLEMENTED', summary: 'No syscall of that name exists.' },
  KERNEL_ERR_SYSCALL_UNAVAILABLE: {
    status: 'UNIMPLEMENTED',
    summary: 'The syscall exists but the component that backs it is not loaded.',
  },
  KERNEL_ERR_CALL_DEADLINE: {
    status: 'DEADLINE_EXCEEDED',
    summary: 'A component call did not finish before its deadline; the instance was stopped.',
  },
  KERNEL_ERR_CALL_QUEUE_FULL: {
    status: 'RESOURCE_EXHAUSTED',
    summary: "The component's call queue is full (bounded concurrency).",
  },
  KERNEL_ERR_COMPONENT_TRAP: {
    status: 'INTERNAL',
    summary: 'The component trapped; the instance was discarded and is being restarted.',
  },
  KERNEL_ERR_COMPONENT_EXIT: {
    status: 'INTERNAL',
    summary: 'The component called wasi:cli/exit; the instance was discarded and is being restarted.',
  },
  KERNEL_ERR_COMPONENT_FAILED: {
    status: 'UNAVAILABLE',
    summary: 'The component exhausted its restart budget and is marked failed.',
  },
  KERNEL_ERR_COMPONENT_RESTARTING: {
    status: 'UNAVAILABLE',
    summary: 'The component is restarting after a failure; retry after the backoff.',
  },
  KERNEL_ERR_COMPONENT_NOT_FOUND: { status: 'NOT_FOUND', summary: 'No component of that name is loaded.' },
  KERNEL_ERR_COMPONENT_EXISTS: {
    status: 'ALREADY_EXISTS',
    summary: 'A component of that name is already loaded.',
  },
  KERNEL_ERR_COMPONENT_INVALID: {
    status: 'INVALID_ARGUMENT',
    summary: 'The bytes are not a valid WebAssembly component, or could not be transpiled.',
  },
  KERNEL_ERR_COMPONENT_ABI: {
    status: 'FAILED_PRECONDITION',
    summary: 'The component was built against a WIT/ABI version this kernel does not support.',
  },
  KERNEL_ERR_IMPORT_DENIED: {
    status: 'PERMISSION_DENIED',
    summary: 'The component imports an interface its manifest does not grant.',
  },
  KERNEL_ERR_IMPORT_UNAVAILABLE: {
    status: 'FAILED_PRECONDITION',
    summary: 'The component imports an interface that neither the kernel nor a loaded component provides.',
  },
  KERNEL_ERR_EXPORT_MISSING: {
    status: 'FAILED_PRECONDITION',
    summary: 'The component does not export an interface or function it was asked for.',
  },
  KERNEL_ERR_MANIFEST_INVALID: {
    status: 'INVALID_ARGUMENT',
    summary: 'The component manifest is malformed.',
  },
  KERNEL_ERR_DIGEST_MISMATCH: {
    status: 'PERMISSION_DENIED',
    summary: "The component's sha-256 digest does not match the one pinned for it.",
  },
  KERNEL_ERR_GUEST_VALUE: {
    status: 'INTERNAL',
    summary: 'A component returned a value that does not match its WIT type.',
  },
  KERNEL_ERR_GUEST_ERROR: {
    status: 'UNKNOWN',
    summary: 'A component returned a typed error (its WIT error variant decides the final status).',
  },
  KERNEL_ERR_PAYLOAD_TOO_LARGE: {
    status: 'RESOURCE_EXHAUSTED',
    summary: 'A call argument or result exceeds the per-call size limit.',
  },
  KERNEL_ERR_CONFIG_INVALID: { status: 'INVALID_ARGUMENT', summary: 'The kernel configuration is invalid.' },
  KERNEL_ERR_AUTH_UNAUTHENTICATED: {
    status: 'UNAUTHENTICATED',
    summary: 'The call carries no valid credentials (client certificate or bearer token), or they expired.',
  },
  KERNEL_ERR_AUTH_DENIED: {
    status: 'PERMISSION_DENIED',
    summary:
      "The caller's identity or scopes do not allow this call (caller_id, syscall group or namespace).",
  },
  KERNEL_ERR_RATE_LIMITED: {
    status: 'RESOURCE_EXHAUSTED',
    summary: 'The caller exceeded its rate limit; the refusal is recorded as a decision.',
  },
  KERNEL_ERR_TRUST_MALFORMED_MANIFEST: {
    status: 'INVALID_ARGUMENT',
    summary: 'The manifest is not valid JSON or does not follow schema cam-os/manifest@1.',
  },
  KERNEL_ERR_TRUST_UNSIGNED: { status: 'UNAUTHENTICATED', summary: 'The manifest carries no signatures.' },
  KERNEL_ERR_TRUST_UNKNOWN_PUBLISHER: {
    status: 'UNAUTHENTICATED',
    summary: "The manifest's publisher key is not in the trust store.",
  },
  KERNEL_ERR_TRUST_REVOKED_KEY: {
    status: 'PERMISSION_DENIED',
    summary: "The manifest's publisher key has been revoked.",
  },
  KERNEL_ERR_TRUST_BAD_SIGNATURE: {
    status: 'UNAUTHENTICATED',
    summary: 'The ML-DSA-65 or Ed25519 signature (or both) does not verify with the publisher key.',
  },
  KERNEL_ERR_TRUST_DIGEST_MISMATCH: {
    status: 'PERMISSION_DENIED',
    summary: 'The component bytes do not match the digest or size in the signed manifest.',
  },
  KERNEL_ERR_TRUST_CAPABILITY_NOT_ALLOWED: {
    status: 'PERMISSION_DENIED',
    summary: "The manifest asks for a capability the operator's policy does not allow.",
  },
  KERNEL_ERR_TRUST_DOWNGRADE: {
    status: 'FAILED_PRECONDITION',
    summary: 'The manifest version is lower than the version already installed.',
  },
  KERNEL_ERR_KV_INVALID_ARGUMENT: {
    status: 'INVALID_ARGUMENT',
    summary: 'A key-value request is malformed.',
  },
  KERNEL_ERR_KV_CONFIG_INVALID: {
    status: 'INVALID_ARGUMENT',
    summary: 'The key-value backend configuration is invalid.',
  },
  KERNEL_ERR_KV_CLOSED: { status: 'FAILED_PRECONDITION', summary: 'The key-value store is closed.' },
  KERNEL_ERR_KV_UNAVAILABLE: {
    status: 'UNAVAILABLE',
    summary: 'The key-value backend (e.g. Redis) cannot be reached.',
  },
  KERNEL_ERR_KV_BACKEND: { status: 'INTERNAL', summary: 'The key-value backend failed.' },
  KERNEL_ERR_POLICY_DENIED: {
    status: 'PERMISSION_DENIED',
    summary: 'The authorization policy denies this call; the denial is recorded in the audit log.',
  },
  KERNEL_ERR_POLICY_INVALID: {
    status: 'INVALID_ARGUMENT',
    summary: 'A policy bundle, module or data document is malformed; nothing was changed.',
  },
  KERNEL_ERR_POLICY_NOT_FOUND: { status: 'NOT_FOUND', summary: 'No policy (or policy version) of that id.' },
  KERNEL_ERR_AUDIT_NOT_FOUND: {
    status: 'NOT_FOUND',
    summary: 'No audit entry matches the trace or action id.',
  },
  KERNEL_ERR_SHUTTING_DOWN: { status: 'UNAVAILABLE', summary: 'The kernel is shutting down.' },
  KERNEL_ERR_INTERNAL: { status: 'INTERNAL', summary: 'An internal kernel error.' },
} as const satisfies Record<string, CatalogueEntry>;

export type KernelErrorCode = keyof typeof ERROR_CATALOGUE;

/**
 * An error with a catalogue code. `message` is safe to show to a remote caller: it never contains a
 * stack trace or a host path (see `sanitize`). `detail` may carry structured data for local callers.
 */
export class KernelError extends Error {
  readonly code: KernelErrorCode;
  readonly status: GrpcStatusName;
  readonly detail: Record<string, unknown> | undefined;

  constructor(
    code: KernelErrorCode,
    message: string,
    detail?: Record<string, unknown>,
    status?: GrpcStatusName,
  ) {
    super(message);
    this.name = 'KernelError';
    this.code = code;
    this.status = status ?? ERROR_CATALOGUE[code].status;
    this.detail = detail;
  }

  get grpcCode(): number {
    return GrpcStatus[this.status];
  }

  toJSON(): { code: KernelErrorCode; status: GrpcStatusName; message: string } {
    return { code: this.code, status: this.status, message: this.message };
  }
}

export function isKernelError(e: unknown): e is KernelError {
  return e instanceof KernelError;
}

/** WIT `kernel-error` variant cases (wit/kernel@0.1.0/types.wit) and the gRPC status each maps to. */
export const WIT_ERROR_STATUS: Record<string, GrpcStatusName> = {
  'invalid-argument': 'INVALID_ARGUMENT',
  'not-found': 'NOT_FOUND',
  'already-exists': 'ALREADY_EXISTS',
  'permission-denied': 'PERMISSION_DENIED',
  'failed-precondition': 'FAILED_PRECONDITION',
  'resource-exhausted': 'RESOURCE_EXHAUSTED',
  'deadline-exceeded': 'DEADLINE_EXCEEDED',
  unavailable: 'UNAVAILABLE',
  unimplemented: 'UNIMPLEMENTED',
  internal: 'INTERNAL',
};

/**
 * Turn a typed error returned by a guest (a WIT variant `{ tag, val }`) into a KernelError whose status
 * follows the variant case. Unknown shapes become KERNEL_ERR_GUEST_VALUE: a guest must not be able to pick
 * an arbitrary status or inject an unbounded message.
 */
export function fromGuestError(component: string, payload: unknown): KernelError {
  if (payload && typeof payload === 'object' && 'tag' in payload && typeof payload.tag === 'string') {
    const status = WIT_ERROR_STATUS[payload.tag];
    if (status) {
      const val = (payload as { val?: unknown }).val;
      const text = typeof val === 'string' && val.length > 0 ? truncate(val, 500) : payload.tag;
      return new KernelError('KERNEL_ERR_GUEST_ERROR', text, { component, tag: payload.tag }, status);
    }
  }
  if (typeof payload === 'string') {
    return new KernelError('KERNEL_ERR_GUEST_ERROR', truncate(payload, 500), { component }, 'UNKNOWN');
  }
  return new KernelError(
    'KERNEL_ERR_GUEST_VALUE',
    `component '${component}' returned an error value that is not a kernel-error variant`,
    { component },
  );
}

function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

const PATH_RE = /(?:file:\/\/)?(?:\/[\w.@+-]+){2,}/g;

/**
 * The message a remote caller may see for any thrown value. KernelErrors keep their message (already
 * written for callers) minus any host path; anything else becomes a generic internal error so that host
 * bugs never leak stack traces, paths or library internals.
 */
export function sanitize(e: unknown): KernelError {
  const sub = fromSubsystem(e);
  if (sub) return sanitize(sub);
  if (isKernelError(e)) {
    const clean = e.message.replace(PATH_RE, '<path>').split('\n')[0] ?? '';
    if (clean === e.message) return e;
    return new KernelError(e.code, clean, e.detail, e.status);
  }
  return new KernelError('KERNEL_ERR_INTERNAL', 'internal kernel error');
}

/**
 * Subsystems with their own error classes (trust: TrustError with `id` KERNEL_ERR_TRUST_*; kv: KvError
 * with `code` KV_ERR_*) keep their codes in this catalogue; this maps them without importing them.
 */
function fromSubsystem(e: unknown): KernelError | undefined {
  if (!(e instanceof Error) || isKernelError(e)) return undefined;
  const { id, code } = e as { id?: unknown; code?: unknown };
  let key: string | undefined;
  if (typeof id === 'string' && id.startsWith('KERNEL_ERR_')) key = id;
  else if (typeof code === 'string' && code.startsWith('KV_ERR_')) key = `KERNEL_ERR_KV_${code.slice(7)}`;
  if (!key || !(key in ERROR_CATALOGUE)) return undefined;
  const message = e.message.startsWith(`${key}: `) ? e.message.slice(key.length + 2) : e.message;
  return new KernelError(key as KernelErrorCode, message);
}
