/**
 * The kernel's decision record for access control: who was refused or throttled, when, and why.
 * Every decision is written to the kernel's audit log (host/src/audit: hash-chained, signed checkpoints) —
 * the one record of decisions; this class is the auth layer's view of it, with per-subject queries.
 * Bounded (a ring of the latest `capacity` records). Repeats of the same decision for the same subject
 * and reason within one second fold into one record with a count (and one audit entry), so an agent
 * hammering the kernel cannot flush everyone else's records out of the ring or flood the audit log.
 */

import { HashChainAuditLog } from '../audit/log.js';
import type { AuditLog } from '../audit/types.js';

export type DecisionKind = 'rate-limited' | 'unauthenticated' | 'permission-denied';

export interface Decision {
  id: string;
  kind: DecisionKind;
  /** The identity the decision is about ('unknown' when unauthenticated), and its peer address. */
  subject: string;
  peer: string;
  /** The syscall (gRPC method) that was attempted. */
  action: string;
  reason: string;
  /** First and last occurrence, ISO 8601, and how many calls the record covers. */
  at: string;
  lastAt: string;
  count: number;
  /** The audit entry recording the first occurrence. */
  auditSeq?: number;
}

export interface DecisionQuery {
  kind?: DecisionKind;
  subject?: string;
  /** Only records whose last occurrence is at or after this time (ms since epoch). */
  sinceMs?: number;
  /** Newest first; default 100, at most 10,000. */
  limit?: number;
}

const FOLD_MS = 1000;

export class DecisionLog {
  private readonly ring: Decision[] = [];
  private readonly recent = new Map<string, { d: Decision; at: number }>();
  private seq = 0;
  /** Observers (the audit log may subscribe). */
  readonly observers: Array<(d: Decision) => void> = [];

  /** Where decisions are recorded: the kernel's audit log once attached, an in-memory one before. */
  private audit: AuditLog;

  constructor(
    readonly capacity = 10_000,
    audit?: AuditLog,
  ) {
    this.audit = audit ?? new HashChainAuditLog({ capacity });
  }

  /** Record into the kernel's audit log from now on (records made before are copied across, in order). */
  attach(audit: AuditLog): void {
    if (audit === this.audit) return;
    const earlier = this.audit.recent(this.capacity).reverse();
    for (const e of earlier) {
      audit.append({
        kind: e.kind,
        actor: e.actor,
        action: e.action,
        outcome: e.outcome,
        cause: e.cause,
        ts: e.ts,
        ...(e.inputs ? { inputs: e.inputs } : {}),
      });
    }
    this.audit = audit;
  }

  record(e: Omit<Decision, 'id' | 'at' | 'lastAt' | 'count'>, now = Date.now()): Decision {
    const key = `${e.kind}\0${e.subject}\0${e.action}\0${e.reason}`;
    const hit = this.recent.get(key);
    if (hit && now - hit.at < FOLD_MS) {
      hit.d.count++;
      hit.d.lastAt = new Date(now).toISOString();
      return hit.d;
    }
    const iso = new Date(now).toISOString();
    const entry = this.audit.append({
      kind: e.kind === 'rate-limited' ? 'throttle' : 'auth-deny',
      actor: e.subject,
      action: e.action,
      outcome: e.kind,
      cause: e.reason,
      ts: now,
      inputs: { peer: e.peer },
    });
    const d: Decision = {
      id: `dec-${++this.seq}`,
      ...e,
      at: iso,
      lastAt: iso,
      count: 1,
      auditSeq: entry.seq,
    };
    this.ring.push(d);
    if (this.ring.length > this.capacity) this.ring.shift();
    this.recent.set(key, { d, at: now });
    if (this.recent.size > 1000) {
      for (const [k, v] of this.recent) if (now - v.at >= FOLD_MS) this.recent.delete(k);
    }
    for (const o of this.observers) o(d);
    return d;
  }

  query(q: DecisionQuery = {}): Decision[] {
    const limit = Math.min(Math.max(1, q.limit ?? 100), 10_000);
    const out: Decision[] = [];
    for (let i = this.ring.length - 1; i >= 0 && out.length < limit; i--) {
      const d = this.ring[i]!;
      if (q.kind && d.kind !== q.kind) continue;
      if (q.subject && d.subject !== q.subject) continue;
      if (q.sinceMs !== undefined && Date.parse(d.lastAt) < q.sinceMs) continue;
      out.push({ ...d });
    }
    return out;
  }

  get size(): number {
    return this.ring.length;
  }
}
