/**
 * The kernel's lifecycle decisions reach the audit log: load, restart after a trap, hot swap, rollback,
 * unload — with real components (WAT fixtures) in a real Kernel, recorded through its `events` list —
 * and `ask` answers about them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ask } from '../../host/src/audit/ask.js';
import { HashChainAuditLog } from '../../host/src/audit/log.js';
import { addCustomSection } from '../../host/src/component/wasm-binary.js';
import { Kernel } from '../../host/src/kernel/kernel.js';
import { recordKernelEvent } from '../../host/src/policy/governance.js';
import { buildFixture } from '../../host/src/testing/fixtures.js';
import { waitUntil } from '../harness/service.js';

const CHAOS = 'test:fixtures/chaos@0.1.0';
const dir = mkdtempSync(join(tmpdir(), 'cam-policy-events-'));
const kernel = new Kernel({ dataDir: dir });
const audit = new HashChainAuditLog();
kernel.events.push((e) => recordKernelEvent(audit, e));

afterAll(async () => {
  await kernel.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('kernel lifecycle decisions in the audit log', () => {
  it('records load, restart (with the fault), swap, rollback and unload', async () => {
    const bytes = await buildFixture('chaos');
    const spec = (b: Uint8Array, version: string) => ({
      bytes: b,
      imports: ['wasi:cli/exit'],
      memoryMaxPages: 32,
      version,
      restart: { initialBackoffMs: 1, maxBackoffMs: 5 },
    });
    await kernel.load({ name: 'chaos-a', ...spec(bytes, '1.0.0') });
    await expect(kernel.call('chaos-a', CHAOS, 'crash', [])).rejects.toThrow();
    await waitUntil('a restart entry', () => audit.recent(1, { kind: 'restart' })[0], { timeoutMs: 20_000 });
    expect(await kernel.call('chaos-a', CHAOS, 'ping', [])).toBe(42);
    await kernel.swap('chaos-a', spec(addCustomSection(bytes, 'build', Buffer.from('B')), '1.1.0'));
    await kernel.rollback('chaos-a');
    await kernel.unload('chaos-a');

    const kinds = audit
      .recent(100)
      .reverse()
      .map((e) => e.kind);
    expect(kinds).toEqual(['load', 'restart', 'swap', 'rollback', 'unload']);
    const [restart] = audit.recent(1, { kind: 'restart' });
    expect(restart).toMatchObject({
      subject: 'chaos-a',
      outcome: 'restarted',
      cause: expect.stringMatching(/^trap: /),
    });
    expect(audit.recent(1, { kind: 'swap' })[0]).toMatchObject({ inputs: { from: '1.0.0', to: '1.1.0' } });
    expect(audit.recent(1, { kind: 'rollback' })[0]).toMatchObject({
      inputs: { from: '1.1.0', to: '1.0.0' },
    });
    expect(audit.verify()).toMatchObject({ ok: true, entries: 5 });

    const entries = audit.recent(100).reverse();
    const why = ask('why was chaos-a restarted?', entries);
    expect(why.entries.map((e) => e.seq)).toEqual([restart!.seq]);
    expect(why.answer).toMatch(/^Because trap: /);
    expect(ask('when was chaos-a rolled back?', entries).answer).toMatch(/^\d{4}-\d{2}-\d{2}T/);
  }, 120_000);
});
