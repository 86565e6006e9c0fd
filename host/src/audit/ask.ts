/**
 * `cam-os ask`: questions about recorded decisions, answered from the audit log with a deterministic
 * parser — no model. A question is read for
 * - its shape: why / who (which) / how many (how often) / when / was-did (yes or no) / what, list, show;
 * - decision kinds, by their words (throttled, rate limited, denied, refused, blocked, policy, chosen,
 *   picked, assigned, arbitration, scheduled, order, restarted, crashed, swapped, upgraded, rolled back,
 *   installed, uninstalled, loaded, unloaded, allowed);
 * - names: any agent, component or task id that appears in the log (`agent b` is read as `agent-b`; a
 *   decision must involve every name given), and syscall names;
 * - a time range (UTC): last night (18:00-06:00), yesterday, today, this morning / afternoon / evening,
 *   last hour, in the last N minutes|hours|days, last week, on YYYY-MM-DD, since / after / before HH:MM,
 *   between HH:MM and HH:MM (of today, or of the day named).
 * A question with none of a kind, a name or a syscall is not understood, and the answer says so.
 */
import { brief, explain } from './explain.js';
import type { AuditEntry, AuditLog, DecisionKind } from './types.js';

export type AskIntent = 'why' | 'who' | 'count' | 'when' | 'yesno' | 'list';

export interface AskResult {
  understood: boolean;
  intent: AskIntent;
  kinds: DecisionKind[];
  names: string[];
  syscalls: string[];
  since?: number;
  until?: number;
  /** Time range in words, as understood. */
  range?: string;
  /** Matching entries, newest first. */
  entries: AuditEntry[];
  answer: string;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const KIND_WORDS: Array<[RegExp, DecisionKind[]]> = [
  [/\b(throttl\w*|rate[- ]limit\w*|slowed)\b/, ['throttle']],
  [/\bunauthenticated\b/, ['auth-deny']],
  [/\b(arbitrat\w*|chosen|choose|chose|picked|pick|assigned|assign|selected|select)\b/, ['arbitration']],
  [/\b(schedul\w*|order|prioriti[sz]\w*)\b/, ['scheduling']],
  [/\b(restart\w*|crash\w*)\b/, ['restart']],
  [/\b(swap\w*|hot-swap\w*|upgrad\w*)\b/, ['swap']],
  [/\b(rolled back|roll back|rollback\w*|revert\w*)\b/, ['rollback']],
  [/\b(?<!un)install\w*\b/, ['install']],
  [/\buninstall\w*\b/, ['uninstall']],
  [/\b(?<!un)load(ed|s|ing)?\b/, ['load']],
  [/\bunload\w*\b/, ['unload']],
  [/\b(allowed|permitted)\b/, ['policy-allow']],
];
const DENY_WORDS = /\b(den(y|ied|ial|ials|ies)|refus\w*|reject\w*|block\w*|forbidden)\b/;

function startOfDay(t: number): number {
  return Math.floor(t / DAY) * DAY;
}

function hhmm(s: string): number | undefined {
  const m = /^(\d{1,2})(?::(\d{2}))?$/.exec(s);
  if (!m) return undefined;
  const h = Number(m[1]);
  const min = Number(m[2] ?? 0);
  if (h > 23 || min > 59) return undefined;
  return h * HOUR + min * 60_000;
}

interface Range {
  since?: number;
  until?: number;
  words?: string;
}

function timeRange(q: string, now: number): Range {
  const today = startOfDay(now);
  let day: number | undefined;
  let dayWords: string | undefined;
  const date = /\bon (\d{4}-\d{2}-\d{2})\b/.exec(q);
  if (date) {
    const t = Date.parse(`${date[1]}T00:00:00Z`);
    if (Number.isFinite(t)) {
      day = t;
      dayWords = `on ${date[1]}`;
    }
  } else if (/\byesterday\b/.test(q)) {
    day = today - DAY;
    dayWords = 'yesterday';
  } else if (/\btoday\b/.test(q)) {
    day = today;
    dayWords = 'today';
  }
  const between = /\bbetween (\d{1,2}(?::\d{2})?) and (\d{1,2}(?::\d{2})?)\b/.exec(q);
  if (between) {
    const a = hhmm(between[1]!);
    const b = hhmm(between[2]!);
    if (a !== undefined && b !== undefined) {
      const base = day ?? today;
      return {
        since: base + a,
        until: base + b + 59_999,
        words: `between ${between[1]} and ${between[2]}${dayWords ? ` ${dayWords}` : ''}`,
      };
    }
  }
  const since = /\b(since|after|from) (\d{1,2}(?::\d{2})?)\b/.exec(q);
  if (since) {
    const a = hhmm(since[2]!);
    if (a !== undefined) {
      const base = day ?? today;
      return {
        since: base + a,
        until: day !== undefined ? base + DAY - 1 : now,
        words: `${since[1]} ${since[2]}${dayWords ? ` ${dayWords}` : ''}`,
      };
    }
  }
  const before = /\bbefore (\d{1,2}(?::\d{2})?)\b/.exec(q);
  if (before) {
    const a = hhmm(before[1]!);
    if (a !== undefined) {
      const base = day ?? today;
      return {
        since: base,
        until: base + a - 1,
        words: `before ${before[1]}${dayWords ? ` ${dayWords}` : ''}`,
      };
    }
  }
  const at = /\bat (\d{1,2}:\d{2})\b/.exec(q);
  if (at) {
    const a = hhmm(at[1]!);
    if (a !== undefined) {
      const base = day ?? today;
      return {
        since: base + a,
        until: base + a + 59_999,
        words: `at ${at[1]}${dayWords ? ` ${dayWords}` : ''}`,
      };
    }
  }
  if (day !== undefined)
    return {
      since: day,
      until: Math.min(day + DAY - 1, day === today ? now : day + DAY - 1),
      words: dayWords,
    };
  if (/\blast night\b/.test(q)) {
    // 18:00 yesterday to 06:00 today (or to now, when asked before 06:00).
    return { since: today - 6 * HOUR, until: Math.min(today + 6 * HOUR - 1, now), words: 'last night' };
  }
  const part =
    /\bthis (morning|afternoon|evening)\b/.exec(q) ?? (/\btonight\b/.test(q) ? ['', 'evening'] : null);
  if (part) {
    const [from, to] = part[1] === 'morning' ? [6, 12] : part[1] === 'afternoon' ? [12, 18] : [18, 24];
    return { since: today + from * HOUR, until: today + to * HOUR - 1, words: `this ${part[1]}` };
  }
  const lastN = /\b(?:in the |within the )?(?:last|past) (\d{1,4}) (minute|hour|day|week)s?\b/.exec(q);
  if (lastN) {
    const unit = { minute: 60_000, hour: HOUR, day: DAY, week: 7 * DAY }[
      lastN[2] as 'minute' | 'hour' | 'day' | 'week'
    ];
    return {
      since: now - Number(lastN[1]) * unit,
      until: now,
      words: `in the last ${lastN[1]} ${lastN[2]}s`,
    };
  }
  const last1 =
    /\b(?:last|past) (minute|hour|day|week)\b/.exec(q) ?? (/\bthis week\b/.test(q) ? ['', 'week'] : null);
  if (last1) {
    const unit = { minute: 60_000, hour: HOUR, day: DAY, week: 7 * DAY }[
      last1[1] as 'minute' | 'hour' | 'day' | 'week'
    ];
    return { since: now - unit, until: now, words: `in the last ${last1[1]}` };
  }
  return {};
}

function intentOf(q: string): AskIntent | undefined {
  if (/^\s*why\b/.test(q) || /\bwhy\b/.test(q)) return 'why';
  if (/^\s*(how many|how often)\b/.test(q) || /\bcount\b/.test(q) || /\bnumber of\b/.test(q)) return 'count';
  if (/^\s*(who|which|whom)\b/.test(q)) return 'who';
  if (/^\s*when\b/.test(q)) return 'when';
  if (/^\s*(was|were|did|has|have|is|are)\b/.test(q)) return 'yesno';
  if (/^\s*(what|list|show|give|tell)\b/.test(q)) return 'list';
  return undefined;
}

function iso(t: number): string {
  return new Date(t).toISOString().replace('.000Z', 'Z');
}

/** Who a decision is about: the agent refused or chosen, the component restarted. */
function whoOf(e: AuditEntry): string {
  if (
    e.kind === 'throttle' ||
    e.kind === 'auth-deny' ||
    e.kind === 'policy-deny' ||
    e.kind === 'policy-allow'
  )
    return e.actor;
  return e.subject ?? e.actor;
}

const KIND_WORD: Record<DecisionKind, string> = {
  arbitration: 'arbitration decision',
  scheduling: 'scheduling decision',
  throttle: 'throttling',
  'auth-deny': 'authentication refusal',
  'policy-deny': 'policy denial',
  'policy-allow': 'policy allowance',
  restart: 'restart',
  swap: 'swap',
  rollback: 'rollback',
  install: 'install',
  uninstall: 'uninstall',
  load: 'load',
  unload: 'unload',
};

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** A read-only AuditLog over entries (oldest first), so explanations can cite related entries. */
export class EntriesLog implements AuditLog {
  constructor(private readonly list: readonly AuditEntry[]) {}
  append(): AuditEntry {
    throw new Error('this audit view is read-only');
  }
  recent(
    limit: number,
    f: { kind?: DecisionKind; actor?: string; since?: number; until?: number } = {},
  ): AuditEntry[] {
    const out: AuditEntry[] = [];
    for (let i = this.list.length - 1; i >= 0 && out.length < limit; i--) {
      const e = this.list[i]!;
      if (f.kind && e.kind !== f.kind) continue;
      if (f.actor && e.actor !== f.actor && e.subject !== f.actor) continue;
      if (f.since !== undefined && e.ts < f.since) continue;
      if (f.until !== undefined && e.ts > f.until) continue;
      out.push(e);
    }
    return out;
  }
  get(seq: number): AuditEntry | undefined {
    return this.list.find((e) => e.seq === seq);
  }
  verify() {
    return { ok: true, entries: this.list.length, reason: 'not checked here: use `cam-os audit verify`' };
  }
}

const HELP =
  'I answer questions about recorded decisions: what kind (throttled, denied, refused, chosen/assigned, ' +
  'scheduled, restarted, swapped, rolled back, installed, loaded), about whom (an agent, component or task ' +
  'named in the log) and when (last night, yesterday, today, this morning, in the last 2 hours, since 14:00, ' +
  'between 22:00 and 23:00, on 2026-11-21).';

export function ask(
  question: string,
  entries: readonly AuditEntry[],
  opts: { now?: number } = {},
): AskResult {
  const now = opts.now ?? Date.now();
  let q = ` ${question
    .toLowerCase()
    .replace(/[?!,;"“”]/g, ' ')
    .replace(/\s+/g, ' ')} `;
  // Names the log knows: actors, subjects, task ids.
  const known = new Map<string, string>();
  const syscallsKnown = new Map<string, string>();
  for (const e of entries) {
    for (const n of [
      e.actor,
      e.subject,
      typeof e.inputs?.taskId === 'string' ? e.inputs.taskId : undefined,
    ]) {
      if (n) known.set(n.toLowerCase(), n);
    }
    const a = e.action.split(' ')[0]!;
    if (/^[A-Z][A-Za-z]+$/.test(a)) syscallsKnown.set(a.toLowerCase(), a);
  }
  // "agent b" -> "agent-b" when the log knows agent-b.
  q = q.replace(/\b([a-z]+) ([a-z0-9]+)\b/g, (m, a: string, b: string) =>
    known.has(`${a}-${b}`) ? `${a}-${b}` : m,
  );
  const tokens = q
    .split(' ')
    .map((t) => t.replace(/'s$/, '').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, ''))
    .filter(Boolean);
  const names = [...new Set(tokens.filter((t) => known.has(t)).map((t) => known.get(t)!))];
  const syscalls = [...new Set(tokens.filter((t) => syscallsKnown.has(t)).map((t) => syscallsKnown.get(t)!))];
  const kinds = new Set<DecisionKind>();
  for (const [re, ks] of KIND_WORDS) if (re.test(q)) for (const k of ks) kinds.add(k);
  if (DENY_WORDS.test(q)) {
    if (/\bpolic(y|ies)\b/.test(q)) kinds.add('policy-deny');
    else {
      kinds.add('auth-deny');
      kinds.add('policy-deny');
    }
  }
  // 'load' inside 'workload' etc. is already excluded by \b; 'order' alone with a name of a component is scheduling.
  const range = timeRange(q, now);
  const intent = intentOf(q) ?? 'list';
  const base = {
    intent,
    kinds: [...kinds],
    names,
    syscalls,
    since: range.since,
    until: range.until,
    range: range.words,
  };
  if (kinds.size === 0 && names.length === 0 && syscalls.length === 0) {
    return {
      ...base,
      understood: false,
      entries: [],
      answer: `I did not understand the question "${question.trim()}". ${HELP}`,
    };
  }
  const matched = entries
    .filter((e) => {
      if (kinds.size > 0 && !kinds.has(e.kind)) return false;
      if (range.since !== undefined && e.ts < range.since) return false;
      if (range.until !== undefined && e.ts > range.until) return false;
      if (syscalls.length > 0 && !syscalls.includes(e.action.split(' ')[0]!)) return false;
      if (names.length > 0) {
        const about = [e.actor, e.subject, e.inputs?.taskId, e.inputs?.caller, e.inputs?.component];
        // Every name must be involved: "arbitration picked agent-a for task-1" names one decision.
        if (!names.every((n) => about.includes(n))) return false;
      }
      return true;
    })
    .sort((a, b) => b.ts - a.ts || b.seq - a.seq);
  const what = kinds.size > 0 ? [...kinds].map((k) => KIND_WORD[k]).join(' or ') : 'decision';
  const about = names.length ? ` about ${names.join(', ')}` : '';
  const when = range.words ? ` ${range.words}` : '';
  const scope = `${what}${about}${syscalls.length ? ` on ${syscalls.join(', ')}` : ''}${when}`;
  const lines: string[] = [];
  const cite = (e: AuditEntry) => `  [audit#${e.seq}] ${brief(e)}`;
  if (matched.length === 0) {
    lines.push(
      intent === 'yesno'
        ? `No: no ${scope} is recorded.`
        : intent === 'count'
          ? `0: no ${scope} is recorded.`
          : `No ${scope} is recorded.`,
    );
  } else if (intent === 'count') {
    lines.push(`${matched.length}: ${plural(matched.length, 'recorded decision')} (${scope}).`);
    for (const e of matched.slice(0, 10)) lines.push(cite(e));
  } else if (intent === 'who') {
    const counts = new Map<string, number>();
    for (const e of matched) counts.set(whoOf(e), (counts.get(whoOf(e)) ?? 0) + 1);
    const list = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    lines.push(`${list.map(([n, c]) => `${n} (${c})`).join(', ')} — ${scope}.`);
    for (const e of matched.slice(0, 10)) lines.push(cite(e));
  } else if (intent === 'when') {
    lines.push(`${matched.map((e) => iso(e.ts)).join(', ')} (${scope}).`);
    for (const e of matched.slice(0, 10)) lines.push(cite(e));
  } else if (intent === 'why') {
    const log = new EntriesLog(entries);
    const causes = [...new Set(matched.map((e) => e.cause).filter(Boolean))];
    lines.push(
      matched.length === 1
        ? `Because ${causes[0] ?? 'no cause was recorded'}.`
        : `${plural(matched.length, 'decision')} (${scope}); ${causes.length === 1 ? 'cause' : 'causes'}: ${causes.join(' | ') || 'none recorded'}.`,
    );
    lines.push(explain(matched[0]!, 'detailed', log));
    for (const e of matched.slice(1, 10)) lines.push(cite(e));
  } else {
    lines.push(`${intent === 'yesno' ? 'Yes: ' : ''}${plural(matched.length, 'decision')} (${scope}):`);
    for (const e of matched.slice(0, 20)) lines.push(cite(e));
  }
  if (matched.length > 10 && intent !== 'list' && intent !== 'yesno')
    lines.push(`  … and ${matched.length - 10} more`);
  return { ...base, understood: true, entries: matched, answer: lines.join('\n') };
}
