import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { explain } from './explain.js';
import {
  AUDIT_FILE,
  auditKeySigner,
  GENESIS_HASH,
  HashChainAuditLog,
  hashEntry,
  verifyAuditFile,
} from './log.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'cam-audit-'));
  dirs.push(d);
  return d;
}

const arb = {
  kind: 'arbitration' as const,
  actor: 'arbitration',
  subject: 'agent-a',
  action: 'Arbitrate',
  outcome: 'assigned to agent-a',
  cause: 'agent-a offers code; load 0.2',
  inputs: { taskId: 't1', caller: 'ops' },
  scores: { confidence: 0.9, 'agent-b': 0.4 },
  traceId: 'arb-1',
};

describe('hash-chained audit log', () => {
  it('chains entries, finds them, filters them and detects a change in memory', () => {
    const log = new HashChainAuditLog({ now: () => 1_000 });
    const a = log.append(arb);
    const b = log.append({
      kind: 'throttle',
      actor: 'agent-b',
      action: 'Arbitrate',
      outcome: 'rate-limited',
      cause: 'over 100/s',
      ts: 2_000,
    });
    expect(a.prevHash).toBe(GENESIS_HASH);
    expect(b.prevHash).toBe(a.hash);
    expect(hashEntry({ ...a, hash: undefined } as never)).toBe(a.hash);
    expect(log.get(1)).toBe(b);
    expect(log.recent(10, { kind: 'throttle' })).toEqual([b]);
    expect(log.recent(10, { actor: 'agent-a' })).toEqual([a]);
    expect(log.recent(10, { since: 1_500 })).toEqual([b]);
    expect(log.verify()).toMatchObject({ ok: true, entries: 2 });
    (a as { cause: string }).cause = 'something else';
    expect(log.verify()).toMatchObject({ ok: false, firstBad: 0, reason: expect.stringMatching(/modified/) });
    expect(() => log.append({ ...arb, kind: 'nonsense' as never })).toThrow(/unknown decision kind/);
  });

  it('explains an entry at four levels with evidence from the log', () => {
    const log = new HashChainAuditLog();
    const e = log.append(arb);
    log.append({
      kind: 'throttle',
      actor: 'agent-a',
      action: 'ContextWrite',
      outcome: 'rate-limited',
      cause: 'burst',
    });
    expect(explain(e, 'brief', log)).toMatch(
      /arbitration assigned task 't1' to 'agent-a' with confidence 0\.900: agent-a offers code/,
    );
    const detailed = explain(e, 'detailed', log);
    expect(detailed).toMatch(/Scores \(highest first\): confidence = 0\.900, agent-b = 0\.400/);
    expect(explain(e, 'technical', log)).toMatch(/trace arb-1/);
    const audit = explain(e, 'audit', log);
    expect(audit).toMatch(new RegExp(`Hash: sha256 ${e.hash}`));
    expect(audit).toMatch(/Chain check: the entry matches its hash and links to its neighbours/);
    expect(audit).toMatch(/Related entries:\n {2}audit#1: .*throttled/);
  });

  it('writes signed checkpoints; verify catches a modified, a removed and a rewritten entry', async () => {
    const dir = tmp();
    const { signer } = await auditKeySigner(dir);
    const log = new HashChainAuditLog({ dir, signers: [signer], checkpointEvery: 4 });
    for (let i = 0; i < 10; i++) log.append({ ...arb, inputs: { taskId: `t${i}` } });
    await log.close();
    const file = join(dir, AUDIT_FILE);
    expect(await verifyAuditFile(file)).toMatchObject({
      ok: true,
      entries: 10,
      checkpoints: 3,
      unsignedTail: 0,
    });
    const good = readFileSync(file, 'utf8');
    const lines = good.split('\n');
    const at = (seq: number) => lines.findIndex((l) => l.startsWith(`{"seq":${seq},`));

    // 1. An entry's cause is edited.
    const edited = [...lines];
    edited[at(5)] = edited[at(5)]!.replace('agent-a offers code', 'agent-a was forced');
    writeFileSync(file, edited.join('\n'));
    expect(await verifyAuditFile(file)).toMatchObject({
      ok: false,
      firstBad: 5,
      reason: expect.stringMatching(/modified/),
    });

    // 2. An entry is removed.
    writeFileSync(file, lines.filter((_, i) => i !== at(2)).join('\n'));
    expect(await verifyAuditFile(file)).toMatchObject({
      ok: false,
      firstBad: 2,
      reason: expect.stringMatching(/removed or reordered/),
    });

    // 3. An entry is changed and every hash after it recomputed: the signed checkpoints no longer match.
    const parsed = lines.filter((l) => l.trim()).map((l) => JSON.parse(l));
    let prev = GENESIS_HASH;
    for (const o of parsed) {
      if (o.checkpoint) continue;
      if (o.seq === 6) o.outcome = 'assigned to agent-z';
      o.prevHash = prev;
      const { hash: _drop, ...rest } = o;
      o.hash = hashEntry(rest);
      prev = o.hash;
    }
    writeFileSync(file, `${parsed.map((o) => JSON.stringify(o)).join('\n')}\n`);
    expect(await verifyAuditFile(file)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/chain was rewritten/),
    });

    // Restored, the log continues its chain after a restart.
    writeFileSync(file, good);
    const again = new HashChainAuditLog({ dir, signers: [signer], checkpointEvery: 4 });
    expect(again.append(arb).seq).toBe(10);
    await again.close();
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, entries: 11 });
  });

  it('cuts a torn last line at open, and sets a damaged file aside with a new chain', async () => {
    const dir = tmp();
    const a = new HashChainAuditLog({ dir });
    for (let i = 0; i < 3; i++) a.append(arb);
    await a.close();
    const file = join(dir, AUDIT_FILE);
    appendFileSync(file, '{"seq":3,"ts":1,"kind":"arbi');
    const warnings: string[] = [];
    const b = new HashChainAuditLog({ dir, warn: (m) => warnings.push(m) });
    expect(warnings[0]).toMatch(/torn line/);
    expect(b.append(arb).seq).toBe(3);
    await b.close();
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, entries: 4 });

    const lines = readFileSync(file, 'utf8').split('\n');
    writeFileSync(file, lines.filter((l) => !l.startsWith('{"seq":1,')).join('\n'));
    const c = new HashChainAuditLog({ dir, warn: (m) => warnings.push(m) });
    expect(warnings[1]).toMatch(/is damaged \(entry 1 is missing or does not link.*kept as .*damaged-/);
    expect(c.append(arb).seq).toBe(0);
    await c.close();
    expect(readdirSync(dir).some((f) => f.startsWith(`${AUDIT_FILE}.damaged-`))).toBe(true);
    expect(existsSync(file)).toBe(true);
  });
});
