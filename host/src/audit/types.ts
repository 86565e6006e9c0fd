/** The audit trail's types (re-exported by index.ts, the public contract). */
export type DecisionKind =
  | 'arbitration'
  | 'scheduling'
  | 'throttle'
  | 'auth-deny'
  | 'policy-deny'
  | 'policy-allow'
  | 'restart'
  | 'swap'
  | 'rollback'
  | 'install'
  | 'uninstall'
  | 'load'
  | 'unload';

export const DECISION_KINDS: readonly DecisionKind[] = [
  'arbitration',
  'scheduling',
  'throttle',
  'auth-deny',
  'policy-deny',
  'policy-allow',
  'restart',
  'swap',
  'rollback',
  'install',
  'uninstall',
  'load',
  'unload',
];

export interface AuditEntry {
  seq: number;
  /** Unix ms. */
  ts: number;
  kind: DecisionKind;
  /** Who decided or who acted (an agent id, a component name, 'kernel'). */
  actor: string;
  /** What the decision is about (the chosen agent, the task, the component). */
  subject?: string;
  action: string;
  outcome: string;
  cause: string;
  inputs?: Record<string, unknown>;
  scores?: Record<string, number>;
  traceId?: string;
  /** Hash of the previous entry (64 zeros for the first). */
  prevHash: string;
  /** SHA-256 (hex) over the canonical JSON of every other field of this entry. */
  hash: string;
}

export type AuditInput = Omit<AuditEntry, 'seq' | 'ts' | 'prevHash' | 'hash'> & { ts?: number };

export interface AuditFilter {
  kind?: DecisionKind;
  actor?: string;
  since?: number;
  until?: number;
}

export interface AuditVerifyResult {
  ok: boolean;
  entries: number;
  firstBad?: number;
  reason?: string;
  /** Signed checkpoints checked (extension). */
  checkpoints?: number;
}

export interface AuditLog {
  append(e: AuditInput): AuditEntry;
  /** Newest first, at most `limit`. */
  recent(limit: number, filter?: AuditFilter): AuditEntry[];
  get(seq: number): AuditEntry | undefined;
  verify(): AuditVerifyResult;
}

export type ExplainLevel = 'brief' | 'detailed' | 'technical' | 'audit';
export const EXPLAIN_LEVELS: readonly ExplainLevel[] = ['brief', 'detailed', 'technical', 'audit'];
