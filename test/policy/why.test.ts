/**
 * Twenty "why" questions of different shapes about one recorded scenario, with fixed expectations.
 * The scenario is written by the real audit log to a file; the questions are answered the way
 * `cam-os ask` answers them (the last ones run the built CLI on that file).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AskResult, ask } from '../../host/src/audit/ask.js';
import { AUDIT_FILE, HashChainAuditLog } from '../../host/src/audit/log.js';
import type { AuditEntry, AuditInput } from '../../host/src/audit/types.js';
import { readAuditEntries } from '../../sdk/src/cli/commands-policy.js';
import { camOs } from '../security/cli.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const T = (iso: string) => Date.parse(iso);
let dir: string;
let entries: AuditEntry[];
const seqOf = new Map<string, number>();

const SCENARIO: Array<[string, AuditInput]> = [
  [
    'restart-memory',
    {
      ts: T('2026-11-20T10:00:00Z'),
      kind: 'restart',
      actor: 'supervisor',
      subject: 'memory',
      action: 'restart',
      outcome: 'restarted',
      cause: 'trap: unreachable executed',
      inputs: { component: 'memory', restarts: 1 },
    },
  ],
  [
    'arb-task-1',
    {
      ts: T('2026-11-21T14:00:00Z'),
      kind: 'arbitration',
      actor: 'arbitration',
      subject: 'agent-a',
      action: 'Arbitrate',
      outcome: 'assigned to agent-a',
      cause: 'agent-a offers plan, code and has the lowest load (0.20)',
      inputs: { taskId: 'task-1', caller: 'ops' },
      scores: { confidence: 0.92 },
      traceId: 'arb-1',
    },
  ],
  [
    'arb-task-2',
    {
      ts: T('2026-11-21T15:00:00Z'),
      kind: 'arbitration',
      actor: 'arbitration',
      subject: 'agent-b',
      action: 'Arbitrate',
      outcome: 'assigned to agent-b',
      cause: 'only agent-b offers translate',
      inputs: { taskId: 'task-2', caller: 'ops' },
      scores: { confidence: 0.71 },
      traceId: 'arb-2',
    },
  ],
  [
    'thr-b-1',
    {
      ts: T('2026-11-21T22:10:00Z'),
      kind: 'throttle',
      actor: 'agent-b',
      action: 'ContextWrite',
      outcome: 'rate-limited',
      cause: 'rate limit of 100 calls/s (burst 200) exceeded',
      inputs: { peer: 'ipv4:10.0.0.7:5000' },
    },
  ],
  [
    'thr-b-2',
    {
      ts: T('2026-11-21T22:11:00Z'),
      kind: 'throttle',
      actor: 'agent-b',
      action: 'ContextWrite',
      outcome: 'rate-limited',
      cause: 'rate limit of 100 calls/s (burst 200) exceeded',
      inputs: { peer: 'ipv4:10.0.0.7:5000' },
    },
  ],
  [
    'thr-b-3',
    {
      ts: T('2026-11-21T23:30:00Z'),
      kind: 'throttle',
      actor: 'agent-b',
      action: 'Arbitrate',
      outcome: 'rate-limited',
      cause: 'rate limit of 100 calls/s (burst 200) exceeded',
      inputs: { peer: 'ipv4:10.0.0.7:5000' },
    },
  ],
  [
    'thr-c-1',
    {
      ts: T('2026-11-22T01:00:00Z'),
      kind: 'throttle',
      actor: 'agent-c',
      action: 'EmitMetric',
      outcome: 'rate-limited',
      cause: 'rate limit of 10 calls/s (burst 20) exceeded',
      inputs: { peer: 'ipv4:10.0.0.9:5000' },
    },
  ],
  [
    'sched',
    {
      ts: T('2026-11-22T07:00:00Z'),
      kind: 'scheduling',
      actor: 'scheduler',
      subject: 'task-9',
      action: 'order',
      outcome: 'first in the high band',
      cause: 'deadline within 1 h gives urgency 1.0; priority 90',
      scores: { priority: 0.94 },
    },
  ],
  [
    'deny-d',
    {
      ts: T('2026-11-22T08:00:00Z'),
      kind: 'auth-deny',
      actor: 'agent-d',
      action: 'ContextRead',
      outcome: 'unauthenticated',
      cause: 'the bearer token expired',
      inputs: { peer: 'ipv4:10.0.0.11:5000' },
    },
  ],
  [
    'policy-c',
    {
      ts: T('2026-11-22T09:00:00Z'),
      kind: 'policy-deny',
      actor: 'agent-c',
      action: 'PolicyUpdate',
      outcome: 'denied',
      cause: 'rule 2 of policy authz v1: only administrators may change policies',
      inputs: { role: 'agent' },
    },
  ],
  [
    'swap-sched',
    {
      ts: T('2026-11-22T10:30:00Z'),
      kind: 'swap',
      actor: 'kernel',
      subject: 'scheduler',
      action: 'swap',
      outcome: 'swapped',
      cause: 'swapped 0.1.0 -> 0.2.0',
      inputs: { component: 'scheduler', from: '0.1.0', to: '0.2.0' },
    },
  ],
  [
    'rollback-sched',
    {
      ts: T('2026-11-22T10:45:00Z'),
      kind: 'rollback',
      actor: 'kernel',
      subject: 'scheduler',
      action: 'rollback',
      outcome: 'rolled-back',
      cause: 'health check failed after swap: weights out of range',
      inputs: { component: 'scheduler', from: '0.2.0', to: '0.1.0' },
    },
  ],
  [
    'install-ocr',
    {
      ts: T('2026-11-22T11:00:00Z'),
      kind: 'install',
      actor: 'ops',
      subject: 'acme-ocr',
      action: 'install',
      outcome: 'installed 1.2.0',
      cause: 'signed by acme (key 3f2a), digest pinned in the lockfile',
      inputs: { package: 'acme-ocr', version: '1.2.0' },
    },
  ],
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cam-why-'));
  const log = new HashChainAuditLog({ dir });
  for (const [name, e] of SCENARIO) seqOf.set(name, log.append(e).seq);
  await log.close();
  entries = readAuditEntries(join(dir, AUDIT_FILE));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const q = (question: string): AskResult => ask(question, entries, { now: NOW });
const seqs = (...names: string[]) => names.map((n) => seqOf.get(n));

describe('cam-os ask: twenty questions about a recorded scenario', () => {
  it('1. why was agent-b throttled last night?', () => {
    const r = q('why was agent-b throttled last night?');
    expect(r).toMatchObject({
      understood: true,
      intent: 'why',
      kinds: ['throttle'],
      names: ['agent-b'],
      range: 'last night',
    });
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('thr-b-3', 'thr-b-2', 'thr-b-1'));
    expect(r.answer).toMatch(/^3 decisions .*cause: rate limit of 100 calls\/s \(burst 200\) exceeded\./);
  });

  it('2. Why was agent c throttled last night (no punctuation, a space for the dash)', () => {
    const r = q('Why was agent c throttled last night');
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('thr-c-1'));
    expect(r.answer).toMatch(/^Because rate limit of 10 calls\/s \(burst 20\) exceeded\./);
  });

  it('3. who was throttled last night?', () => {
    const r = q('who was throttled last night?');
    expect(r.intent).toBe('who');
    expect(r.answer).toMatch(/^agent-b \(3\), agent-c \(1\)/);
  });

  it('4. how many times was agent-b throttled?', () => {
    const r = q('how many times was agent-b throttled?');
    expect(r).toMatchObject({ intent: 'count', since: undefined });
    expect(r.answer).toMatch(/^3: 3 recorded decisions/);
  });

  it('5. why did arbitration pick agent-a for task-1?', () => {
    const r = q('why did arbitration pick agent-a for task-1?');
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('arb-task-1'));
    expect(r.answer).toMatch(/Because agent-a offers plan, code and has the lowest load \(0\.20\)/);
    expect(r.answer).toMatch(/assigned task 'task-1' to 'agent-a' with confidence 0\.920/);
  });

  it('6. which agent was chosen for task-2?', () => {
    const r = q('which agent was chosen for task-2?');
    expect(r).toMatchObject({ intent: 'who', kinds: ['arbitration'], names: ['task-2'] });
    expect(r.answer).toMatch(/^agent-b \(1\)/);
  });

  it('7. why was agent-c denied today?', () => {
    const r = q('why was agent-c denied today?');
    expect(r.kinds.sort()).toEqual(['auth-deny', 'policy-deny']);
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('policy-c'));
    expect(r.answer).toMatch(/only administrators may change policies/);
  });

  it('8. was agent-a throttled yesterday? (no)', () => {
    const r = q('was agent-a throttled yesterday?');
    expect(r).toMatchObject({ intent: 'yesno', entries: [] });
    expect(r.answer).toMatch(/^No: no throttling about agent-a yesterday is recorded\./);
  });

  it('9. when was the memory component restarted?', () => {
    const r = q('when was the memory component restarted?');
    expect(r.intent).toBe('when');
    expect(r.answer).toMatch(/^2026-11-20T10:00:00Z/);
  });

  it('10. why was the scheduler rolled back?', () => {
    const r = q('why was the scheduler rolled back?');
    expect(r.entries[0]?.seq).toBe(seqOf.get('rollback-sched'));
    expect(r.answer).toMatch(/health check failed after swap: weights out of range/);
  });

  it('11. what was installed today?', () => {
    const r = q('what was installed today?');
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('install-ocr'));
    expect(r.answer).toMatch(/acme-ocr/);
  });

  it('12. show swaps in the last 2 hours', () => {
    const r = q('show swaps in the last 2 hours');
    expect(r).toMatchObject({ intent: 'list', since: NOW - 2 * 3_600_000 });
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('swap-sched'));
  });

  it('13. how many denials since 06:00?', () => {
    const r = q('how many denials since 06:00?');
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('policy-c', 'deny-d'));
    expect(r.answer).toMatch(/^2: /);
  });

  it('14. what happened to agent-b yesterday?', () => {
    const r = q('what happened to agent-b yesterday?');
    expect(r.kinds).toEqual([]);
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('thr-b-3', 'thr-b-2', 'thr-b-1', 'arb-task-2'));
  });

  it('15. why was agent-d refused?', () => {
    const r = q('why was agent-d refused?');
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('deny-d'));
    expect(r.answer).toMatch(/^Because the bearer token expired\./);
  });

  it('16. list arbitration decisions on 2026-11-21', () => {
    const r = q('list arbitration decisions on 2026-11-21');
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('arb-task-2', 'arb-task-1'));
  });

  it('17. was agent-b throttled between 22:00 and 22:30 yesterday? (yes)', () => {
    const r = q('was agent-b throttled between 22:00 and 22:30 yesterday?');
    expect(r.range).toBe('between 22:00 and 22:30 yesterday');
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('thr-b-2', 'thr-b-1'));
    expect(r.answer).toMatch(/^Yes: 2 decisions/);
  });

  it('18. why was the scheduling order decided this morning?', () => {
    const r = q('why was the scheduling order decided this morning?');
    expect(r.entries.map((e) => e.seq)).toEqual(seqs('sched'));
    expect(r.answer).toMatch(/urgency 1\.0/);
  });

  it('19. says plainly when it does not understand (the CLI exits 2)', async () => {
    for (const text of ["what's the weather like?", 'tell me a joke']) {
      const r = q(text);
      expect(r.understood).toBe(false);
      expect(r.answer).toMatch(/^I did not understand the question/);
    }
    const cli = await camOs(['ask', 'tell me a joke', '--file', join(dir, AUDIT_FILE)]);
    expect(cli.code).toBe(2);
    expect(cli.stdout).toMatch(/I did not understand the question "tell me a joke"/);
  });

  it('20. the built CLI answers "why was agent-b throttled last night?" with --json', async () => {
    const cli = await camOs([
      'ask',
      'why was agent-b throttled last night?',
      '--file',
      join(dir, AUDIT_FILE),
      '--now',
      '2026-11-22T12:00:00Z',
      '--json',
    ]);
    expect(cli.code).toBe(0);
    const out = JSON.parse(cli.stdout);
    expect(out).toMatchObject({
      understood: true,
      intent: 'why',
      since: '2026-11-21T18:00:00.000Z',
      until: '2026-11-22T05:59:59.999Z',
      entries: seqs('thr-b-3', 'thr-b-2', 'thr-b-1'),
    });
  });
});
