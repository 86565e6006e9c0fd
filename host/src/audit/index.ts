/**
 * The kernel's audit trail: every decision the kernel or its system components take (arbitration,
 * scheduling order, throttling, denials, restarts, swaps, rollbacks, installs, loads) appended to one
 * tamper-evident log — a SHA-256 hash chain with signed checkpoints — with its inputs, scores and cause.
 * `explain` turns one entry into words at four levels, with evidence taken from the log.
 *
 * This file is the public contract other parts of the kernel (metrics, dashboard, marketplace) code
 * against; the implementation lives in `log.ts` and `explain.ts`.
 */

export { type AskIntent, type AskResult, ask, EntriesLog } from './ask.js';
export { brief, evidence, explain } from './explain.js';
export {
  AUDIT_FILE,
  AUDIT_PUBLIC_KEY_FILE,
  type AuditCheckpoint,
  type AuditLogOptions,
  auditKeySigner,
  type CheckpointSignature,
  type CheckpointSigner,
  type FileVerifyResult,
  GENESIS_HASH,
  HashChainAuditLog,
  hashEntry,
  tpmSigner,
  verifyAuditFile,
} from './log.js';
export * from './types.js';
