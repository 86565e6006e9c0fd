/**
 * Syscalls whose backing part is delivered by other work: the security syscalls (TPM signing, manifest
 * verification, secure channels), the policy engine and ExplainAction. They are registered so that the
 * table, HealthCheck and status list them, and each answers UNIMPLEMENTED with a sentence naming what is
 * missing. The issue that delivers the part replaces the entry (same name, same group).
 */
import type { SyscallDef, SyscallGroup } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { Fields } from './codec.js';

const PENDING: Array<{ name: string; group: SyscallGroup; summary: string; missing: string }> = [
  {
    name: 'QueryPolicy',
    group: 'policy',
    summary: 'Evaluate a query against a policy.',
    missing:
      'no policy engine is connected to the syscall table yet (policy evaluation is a separate component)',
  },
  {
    name: 'PolicyUpdate',
    group: 'admin',
    summary: 'Create or replace a policy.',
    missing:
      'no policy engine is connected to the syscall table yet, so policies cannot be stored or versioned',
  },
  {
    name: 'ExplainAction',
    group: 'observability',
    summary: 'Explain a recorded decision by trace or action id.',
    missing:
      'explanations are not connected yet (arbitration.explain and the decision record are wired by the explainability work)',
  },
  {
    name: 'TmpSign',
    group: 'security',
    summary: "Sign data with the kernel's TPM-backed key.",
    missing: 'TPM-backed signing (the kernel TPM module) is not connected to the syscall table yet',
  },
  {
    name: 'VerifyManifest',
    group: 'security',
    summary: 'Verify a signed manifest against the trust anchors.',
    missing: 'manifest verification (the kernel trust module) is not connected to the syscall table yet',
  },
  {
    name: 'EstablishSecureChannel',
    group: 'security',
    summary: 'Start an X25519 / ML-KEM-768 secure channel.',
    missing: 'secure channels (the kernel trust-channel module) are not connected to the syscall table yet',
  },
];

export function pendingSyscalls(): SyscallDef<never, unknown>[] {
  return PENDING.map(
    (p): SyscallDef<unknown, unknown> => ({
      name: p.name,
      group: p.group,
      summary: p.summary,
      unavailable: () => p.missing,
      validate: (req) => new Fields(p.name, req),
      async handle() {
        throw new KernelError('KERNEL_ERR_SYSCALL_UNAVAILABLE', `${p.name} is unavailable: ${p.missing}`);
      },
    }),
  ) as SyscallDef<never, unknown>[];
}
