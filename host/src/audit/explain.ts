/**
 * Explanations of recorded decisions, at four levels, built only from what the log holds:
 * - brief: one sentence — what was decided and the cause;
 * - detailed: plus the inputs and the ranked scores;
 * - technical: plus the identifiers (seq, trace id, action) and the raw inputs/scores as JSON;
 * - audit: plus the entry's hashes, the chain check and related entries as evidence.
 */
import { type AuditCheckpoint, hashEntry } from './log.js';
import type { AuditEntry, AuditLog, ExplainLevel } from './types.js';

const VERB: Record<AuditEntry['kind'], string> = {
  arbitration: 'arbitration',
  scheduling: 'scheduling',
  throttle: 'throttling',
  'auth-deny': 'authentication/authorization refusal',
  'policy-deny': 'policy denial',
  'policy-allow': 'policy decision',
  restart: 'restart',
  swap: 'hot swap',
  rollback: 'rollback',
  install: 'install',
  uninstall: 'uninstall',
  load: 'load',
  unload: 'unload',
};

function iso(ts: number): string {
  return new Date(ts).toISOString();
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}

/** One sentence: what happened to whom, and why. */
export function brief(e: AuditEntry): string {
  const at = iso(e.ts);
  const cause = e.cause ? `: ${e.cause}` : '';
  switch (e.kind) {
    case 'arbitration': {
      const task = typeof e.inputs?.taskId === 'string' ? `task '${e.inputs.taskId}'` : 'the task';
      const conf = e.scores?.confidence !== undefined ? ` with confidence ${fmt(e.scores.confidence)}` : '';
      return `At ${at} arbitration assigned ${task} to '${e.subject ?? e.outcome}'${conf}${cause}.`;
    }
    case 'scheduling':
      return `At ${at} the scheduler ordered ${e.subject ? `'${e.subject}'` : 'the queue'} ${e.outcome}${cause}.`;
    case 'throttle':
      return `At ${at} '${e.actor}' was throttled on ${e.action}${cause}.`;
    case 'auth-deny':
      return `At ${at} '${e.actor}' was refused ${e.action} (${e.outcome})${cause}.`;
    case 'policy-deny':
      return `At ${at} the policy denied '${e.actor}' ${e.action}${cause}.`;
    case 'policy-allow':
      return `At ${at} the policy allowed '${e.actor}' ${e.action}${cause}.`;
    case 'restart':
      return `At ${at} component '${e.subject ?? e.actor}' was restarted (${e.outcome})${cause}.`;
    case 'swap':
      return `At ${at} component '${e.subject ?? e.actor}' was hot-swapped (${e.outcome})${cause}.`;
    case 'rollback':
      return `At ${at} component '${e.subject ?? e.actor}' was rolled back (${e.outcome})${cause}.`;
    default:
      return `At ${at} ${VERB[e.kind]} of '${e.subject ?? e.actor}' by '${e.actor}': ${e.outcome}${cause}.`;
  }
}

function rankedScores(e: AuditEntry): string[] {
  if (!e.scores) return [];
  return Object.entries(e.scores)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, v]) => `${k} = ${fmt(v)}`);
}

function inputLines(e: AuditEntry): string[] {
  if (!e.inputs) return [];
  return Object.entries(e.inputs).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
}

/** Entries about the same trace, or the same subject within ten minutes, newest first (at most 5). */
export function related(e: AuditEntry, log: AuditLog, visible?: (e: AuditEntry) => boolean): AuditEntry[] {
  const window = 10 * 60_000;
  const out: AuditEntry[] = [];
  for (const o of log.recent(10_000, { since: e.ts - window, until: e.ts + window })) {
    if (o.seq === e.seq || (visible && !visible(o))) continue;
    const sameTrace = e.traceId !== undefined && o.traceId === e.traceId;
    const who = e.subject ?? e.actor;
    const sameWho = o.actor === who || o.subject === who;
    if (sameTrace || sameWho) out.push(o);
    if (out.length >= 5) break;
  }
  return out;
}

/** Evidence strings (what ExplainAction returns as `evidence`): the entry and its related entries. */
export function evidence(e: AuditEntry, log: AuditLog, visible?: (e: AuditEntry) => boolean): string[] {
  const line = (x: AuditEntry) =>
    `audit#${x.seq} ${iso(x.ts)} ${x.kind} actor=${x.actor}${x.subject ? ` subject=${x.subject}` : ''} outcome=${x.outcome} sha256=${x.hash}`;
  return [line(e), ...related(e, log, visible).map(line)];
}

/**
 * The entry's own hash and its links to its neighbours (cheap enough for every explanation); the whole
 * file is checked by `cam-os audit verify`.
 */
export function chainCheck(e: AuditEntry, log: AuditLog): string {
  const { hash, ...rest } = e;
  if (hashEntry(rest) !== hash) return 'FAILED: the entry does not match its hash (modified).';
  const prev = e.seq > 0 ? log.get(e.seq - 1) : undefined;
  if (prev && prev.hash !== e.prevHash)
    return `FAILED: entry ${prev.seq} does not hash to this entry's prevHash.`;
  const next = log.get(e.seq + 1);
  if (next && next.prevHash !== e.hash) return `FAILED: entry ${next.seq} does not link to this entry.`;
  const cps = (log as { checkpoints?: AuditCheckpoint[] }).checkpoints ?? [];
  const cp = cps.find((c) => c.seq >= e.seq);
  const signed = cp
    ? ` Covered by the checkpoint at entry ${cp.seq}, signed by ${cp.signatures.map((s) => (s.alg === 'ml-dsa-65+ed25519' ? `audit key ${s.keyId}` : 'the TPM')).join(' and ') || 'nobody (signing failed)'}.`
    : ' Not yet covered by a signed checkpoint.';
  return `the entry matches its hash and links to its neighbours in memory.${signed} The whole file: \`cam-os audit verify\`.`;
}

/**
 * `visible` limits the related entries cited (ExplainAction shows an agent only the entries about it).
 */
export function explain(
  entry: AuditEntry,
  level: ExplainLevel,
  log: AuditLog,
  visible?: (e: AuditEntry) => boolean,
): string {
  const out = [brief(entry)];
  if (level === 'brief') return out[0]!;
  out.push(`Decision: ${VERB[entry.kind]} — ${entry.action} -> ${entry.outcome}.`);
  if (entry.cause) out.push(`Cause: ${entry.cause}`);
  const inputs = inputLines(entry);
  if (inputs.length) out.push(`Inputs: ${inputs.join('; ')}`);
  const scores = rankedScores(entry);
  if (scores.length) out.push(`Scores (highest first): ${scores.join(', ')}`);
  if (level === 'detailed') return out.join('\n');
  out.push(
    `Record: audit#${entry.seq}, kind ${entry.kind}, actor ${entry.actor}${entry.subject ? `, subject ${entry.subject}` : ''}, action ${entry.action}, at ${entry.ts} (unix ms)${entry.traceId ? `, trace ${entry.traceId}` : ''}.`,
  );
  if (entry.inputs) out.push(`inputs = ${JSON.stringify(entry.inputs)}`);
  if (entry.scores) out.push(`scores = ${JSON.stringify(entry.scores)}`);
  if (level === 'technical') return out.join('\n');
  out.push(`Hash: sha256 ${entry.hash} (previous ${entry.prevHash}).`);
  out.push(`Chain check: ${chainCheck(entry, log)}`);
  const rel = related(entry, log, visible);
  if (rel.length) {
    out.push('Related entries:');
    for (const r of rel) out.push(`  audit#${r.seq}: ${brief(r)}`);
  }
  return out.join('\n');
}
