import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeBundle } from './bundle.js';
import { AUTHZ_POLICY, DEFAULT_RULES, PolicyEngine, PolicyError } from './engine.js';
import { fixedResultModule, foreignImportModule, notAPolicyModule } from './testing.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function refusal(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PolicyError) return e;
    throw e;
  }
  throw new Error('expected a PolicyError');
}

describe('policy engine (OPA wasm ABI, @open-policy-agent/opa-wasm)', () => {
  it('the built-in default policy decides by its documented rules', async () => {
    const e = await PolicyEngine.open();
    expect(e.get(AUTHZ_POLICY)).toMatchObject({ version: 1, source: 'built-in', entrypoints: ['cam/authz'] });
    expect(e.authorize('development', 'unrestricted', 'anonymous', 'tasks', 'Arbitrate')).toMatchObject({
      allow: true,
      rule: 0,
    });
    expect(e.authorize('authenticated', 'admin', 'ops', 'admin', 'PolicyUpdate')).toMatchObject({
      allow: true,
      rule: 1,
    });
    const deny = e.authorize('authenticated', 'agent', 'agent-a', 'admin', 'PolicyUpdate');
    expect(deny).toMatchObject({ allow: false, rule: 2 });
    expect(deny.reason).toContain(DEFAULT_RULES[2]![6]);
    expect(e.authorize('authenticated', 'agent', 'agent-a', 'context', 'ContextWrite')).toMatchObject({
      allow: true,
      rule: 3,
    });
    // No rule matches: denied by default, and said so.
    expect(e.authorize('development', 'agent', 'agent-a', 'context', 'ContextWrite')).toMatchObject({
      allow: false,
      rule: -1,
      reason: expect.stringMatching(/no rule .* matches \(denied by default\)/),
    });
    // A caller id the rule reader cannot match safely is denied, not matched by prefix.
    expect(e.authorize('development', 'unrestricted', 'evil"x', 'tasks', 'Arbitrate').allow).toBe(false);
  });

  it('keeps each (mode, role, caller, group, syscall) apart in its cache, and empties it at its capacity', async () => {
    const e = await PolicyEngine.open({ cacheSize: 3 });
    const ask = (caller: string, syscall = 'Arbitrate', role = 'unrestricted') =>
      e.authorize('development', role, caller, 'tasks', syscall);
    ask('a');
    ask('a', 'TaskCreate');
    ask('a', 'Arbitrate', 'agent');
    ask('a');
    expect([e.cacheMisses, e.cacheHits]).toEqual([3, 1]);
    ask('b'); // the fourth entry: the cache is emptied first
    ask('a');
    expect([e.cacheMisses, e.cacheHits]).toEqual([5, 1]);
  });

  it('caches authz decisions per version; an update is a new version and clears the cache', async () => {
    const e = await PolicyEngine.open();
    e.authorize('development', 'unrestricted', 'agent-b', 'tasks', 'Arbitrate');
    e.authorize('development', 'unrestricted', 'agent-b', 'tasks', 'Arbitrate');
    expect([e.cacheMisses, e.cacheHits]).toEqual([1, 1]);
    const rules = [
      ['deny', '*', '*', 'agent-b', '*', '*', 'agent-b is suspended'],
      ['allow', '*', '*', '*', '*', '*', 'others'],
    ];
    const v2 = e.update(AUTHZ_POLICY, Buffer.from(JSON.stringify({ rules })), { by: 'test' });
    expect(v2).toMatchObject({ version: 2, encoding: 'data', metadata: { by: 'test' } });
    const d = e.authorize('development', 'unrestricted', 'agent-b', 'tasks', 'Arbitrate');
    expect(d).toMatchObject({
      allow: false,
      version: 2,
      reason: expect.stringContaining('agent-b is suspended'),
    });
    expect(e.cacheMisses).toBe(2);
    // Version 1 stays retrievable; revert makes it current again as version 3.
    expect(e.get(AUTHZ_POLICY, 1)?.source).toBe('built-in');
    expect(e.revert(AUTHZ_POLICY, 1).version).toBe(3);
    expect(e.authorize('development', 'unrestricted', 'agent-b', 'tasks', 'Arbitrate').allow).toBe(true);
  });

  it('loads an OPA bundle (tar.gz with policy.wasm + data.json) and a bare policy.wasm', async () => {
    const e = await PolicyEngine.open();
    const wasm = await fixedResultModule('[{"result":{"allow":true,"reason":"custom module says yes"}}]');
    const info = e.update(
      'custom',
      makeBundle({ '.manifest': '{}', 'policy.wasm': wasm, 'data.json': '{"limit":3}' }),
    );
    expect(info).toMatchObject({
      version: 1,
      encoding: 'bundle',
      entrypoints: ['cam/fixed'],
      data: { limit: 3 },
    });
    expect(e.evaluate('custom', { caller: 'x' })).toMatchObject({
      allow: true,
      reason: 'custom module says yes',
    });
    const no = await fixedResultModule('[]');
    expect(e.update('custom', no).version).toBe(2);
    expect(e.evaluate('custom', {})).toMatchObject({
      allow: false,
      reason: expect.stringMatching(/no result .*denied/),
    });
    expect(refusal(() => e.evaluate('custom', {}, 'nope')).message).toMatch(/no entrypoint 'nope'/);
    expect(refusal(() => e.evaluate('absent', {})).kind).toBe('not-found');
  });

  it('refuses malformed policies, naming what was wrong, and changes nothing', async () => {
    const e = await PolicyEngine.open();
    const cases: Array<[Uint8Array, RegExp]> = [
      [Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0xff]), /not a valid WebAssembly module/],
      [await notAPolicyModule(), /does not export opa_malloc/],
      [await foreignImportModule(), /imports wasi_snapshot_preview1\.fd_write/],
      [makeBundle({ 'README.md': 'hi' }), /bundle has no policy\.wasm/],
      [Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01]), /not valid gzip/],
      [Buffer.from('{"rules": [["allow", "*"]]}'), /data\.rules\[0\] must be 7 strings/],
      [Buffer.from('{"rules": [["maybe","*","*","*","*","*","x"]]}'), /must be 'allow' or 'deny'/],
      [Buffer.from('{not json'), /neither an OPA bundle|not valid JSON/],
      [Buffer.from('hello'), /neither an OPA bundle/],
    ];
    for (const [bytes, why] of cases) {
      const err = refusal(() => e.update(AUTHZ_POLICY, bytes));
      expect(err.kind).toBe('invalid');
      expect(err.message).toMatch(why);
    }
    expect(refusal(() => e.update('Bad Id', Buffer.from('{}'))).message).toMatch(/policy id/);
    expect(e.versionsOf(AUTHZ_POLICY)).toHaveLength(1);
    expect(e.authorize('development', 'unrestricted', 'a', 'tasks', 'Arbitrate').allow).toBe(true);
  });

  it('stores versions and reloads them at the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cam-policy-'));
    dirs.push(dir);
    const a = await PolicyEngine.open({ dir });
    a.update(
      AUTHZ_POLICY,
      Buffer.from(JSON.stringify({ rules: [['deny', '*', '*', '*', '*', '*', 'lockdown']] })),
    );
    a.update('custom', await fixedResultModule('[{"result":true}]'));
    const b = await PolicyEngine.open({ dir });
    expect(b.get(AUTHZ_POLICY)?.version).toBe(2);
    expect(b.authorize('development', 'unrestricted', 'x', 'tasks', 'Arbitrate')).toMatchObject({
      allow: false,
      reason: expect.stringContaining('lockdown'),
    });
    expect(b.evaluate('custom', {}).allow).toBe(true);
  });
});
