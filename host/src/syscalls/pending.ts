/**
 * Syscalls whose backing part is delivered by other work: the security syscalls (TPM signing, manifest
 * verification, secure channels). They are registered so that the table, HealthCheck and status list them,
 * and each answers UNIMPLEMENTED with a sentence naming what is missing. The issue that delivers the part
 * replaces the entry (same name, same group). QueryPolicy, PolicyUpdate and ExplainAction are real
 * (syscalls/policy.ts) and are returned from here with them, so the table keeps one source of each name.
 */
import type { SyscallDef, SyscallGroup } from '../dispatcher/dispatcher.js';
import { KernelError } from '../errors.js';
import { Fields } from './codec.js';
import type { SyscallEnv } from './env.js';
import { policySyscalls } from './policy.js';

const PENDING: Array<{ name: string; group: SyscallGroup; summary: string; missing: string }> = [
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

export function pendingSyscalls(env: SyscallEnv): SyscallDef<never, unknown>[] {
  const pending = PENDING.map(
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
  return [...policySyscalls(env), ...pending];
}
