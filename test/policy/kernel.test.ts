/**
 * Policy and audit through a real kernel (startKernel on loopback, the system components when built) and
 * the CAM-OS wire (a client built only from the spec): every syscall is authorized through the `authz`
 * policy, PolicyUpdate hot-reloads it without dropping calls in flight, denials are audited and explained,
 * and `cam-os audit verify` detects a modified entry in the log the kernel wrote.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { developmentAuth } from '../../host/src/auth/config.js';
import { defaultScopes } from '../../host/src/auth/scopes.js';
import { ensureSigningKey, issueToken } from '../../host/src/auth/tokens.js';
import { gatewayServices } from '../../host/src/grpc/index.js';
import { makeBundle } from '../../host/src/policy/bundle.js';
import { fixedResultModule } from '../../host/src/policy/testing.js';
import { DEFAULT_ALLOWED_IMPORTS } from '../../host/src/server/config.js';
import { startKernel } from '../../host/src/server/server.js';
import { startTestKernel, type TestKernel } from '../grpc/harness.js';
import { SpecClient } from '../grpc/spec-client.js';
import type { Swtpm } from '../harness/swtpm.js';
import { startSwtpm } from '../harness/swtpm.js';
import { camOs } from '../security/cli.js';
import { runTpmSuites } from '../security/harness.js';

const PERMISSION_DENIED = 7;
let dataDir: string;
let k: TestKernel;
let c: SpecClient;
let stopped = false;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cam-policy-kernel-'));
  k = await startTestKernel({ dataDir });
  c = new SpecClient(k.address);
});

afterAll(async () => {
  c?.close();
  if (!stopped) await k?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const rules = (...r: string[][]) => Buffer.from(JSON.stringify({ rules: r }));

describe('policy and audit in a running kernel', () => {
  it('authorizes every syscall through authz: an installed policy denies, audits and explains', async () => {
    expect(await c.call('EmitMetric', { name: 'm', value: 1, caller_id: 'agent-b' })).toMatchObject({
      ok: true,
    });
    const up = await c.call('PolicyUpdate', {
      policy_id: 'authz',
      caller_id: 'ops',
      policy_data: rules(
        ['deny', '*', '*', 'agent-b', 'observability', '*', 'agent-b is suspended from telemetry'],
        ['allow', '*', '*', '*', '*', '*', 'everyone else may'],
      ),
    });
    expect(up).toMatchObject({ ok: true, res: { policy_id: 'authz', version: '2' } });
    const denied = await c.call('EmitMetric', { name: 'm', value: 1, caller_id: 'agent-b' });
    expect(denied).toMatchObject({ ok: false, code: PERMISSION_DENIED });
    expect(denied.ok ? '' : denied.message).toMatch(
      /policy 'authz' v2 denies 'agent-b'.*suspended from telemetry/,
    );
    expect(await c.call('EmitMetric', { name: 'm', value: 1, caller_id: 'agent-a' })).toMatchObject({
      ok: true,
    });

    const [entry] = k.running.audit.recent(1, { kind: 'policy-deny' });
    expect(entry).toMatchObject({ actor: 'agent-b', action: 'EmitMetric', outcome: 'denied' });
    expect(entry?.inputs).toMatchObject({ group: 'observability', version: 2, rule: 0 });
    const ex = await c.call('ExplainAction', {
      action_id: `audit-${entry!.seq}?level=technical`,
      caller_id: 'ops',
    });
    expect(ex.ok).toBe(true);
    if (!ex.ok) return;
    expect(ex.res.explanation).toMatch(/the policy denied 'agent-b' EmitMetric: rule 0 of policy 'authz' v2/);
    expect(ex.res.explanation).toMatch(/Record: audit#\d+, kind policy-deny/);
    expect((ex.res.evidence as string[])[0]).toMatch(
      new RegExp(`^audit#${entry!.seq} .* policy-deny actor=agent-b`),
    );
  });

  it('PolicyUpdate hot-reloads while calls are in flight: none is dropped, every version is kept', async () => {
    const before = k.running.policy.get('authz')!.version;
    const calls = Array.from({ length: 120 }, (_, i) =>
      c.call('EmitMetric', { name: 'inflight', value: i, caller_id: 'agent-a' }),
    );
    const updates = Array.from({ length: 4 }, (_, i) =>
      c.call('PolicyUpdate', {
        policy_id: 'authz',
        caller_id: 'ops',
        policy_data: rules(['allow', '*', '*', '*', '*', '*', `open, revision ${i}`]),
      }),
    );
    const [done, ups] = await Promise.all([Promise.all(calls), Promise.all(updates)]);
    expect(done.filter((o) => !o.ok)).toEqual([]);
    expect(ups.every((o) => o.ok)).toBe(true);
    expect(k.running.policy.get('authz')!.version).toBe(before + 4);
    expect(k.running.policy.versionsOf('authz').map((v) => v.version)).toEqual(
      Array.from({ length: before + 4 }, (_, i) => i + 1),
    );
  });

  it('a bundle with a project-built module is installed; a malformed one is INVALID_ARGUMENT and changes nothing', async () => {
    const wasm = await fixedResultModule('[{"result":{"allow":false,"reason":"fixed module: never"}}]');
    const ok = await c.call('PolicyUpdate', {
      policy_id: 'never',
      policy_data: Buffer.from(makeBundle({ 'policy.wasm': wasm, 'data.json': '{}' })),
    });
    expect(ok).toMatchObject({ ok: true, res: { version: '1' } });
    expect(await c.call('QueryPolicy', { policy_id: 'never', query: 'cam/fixed' })).toMatchObject({
      ok: true,
      res: { allowed: false, reason: 'fixed module: never' },
    });
    const bad = await c.call('PolicyUpdate', {
      policy_id: 'never',
      policy_data: Buffer.from(makeBundle({ 'policy.wasm': Buffer.from('not wasm at all') })),
    });
    expect(bad).toMatchObject({ ok: false, code: 3 });
    expect(bad.ok ? '' : bad.message).toMatch(/policy\.wasm is not a valid WebAssembly module/);
    expect(k.running.policy.versionsOf('never')).toHaveLength(1);
  });

  it('cam-os policy list / show / update work on the kernel and its data dir', async () => {
    const file = join(dataDir, 'lockdown.json');
    writeFileSync(file, JSON.stringify({ rules: [['allow', '*', '*', '*', '*', '*', 'via the CLI']] }));
    const up = await camOs(['policy', 'update', 'authz', file, '--address', k.address, '--json']);
    expect(up.code, up.stderr).toBe(0);
    const version = Number(JSON.parse(up.stdout).version);
    expect(version).toBe(k.running.policy.get('authz')!.version);
    const list = await camOs(['policy', 'list', '--data-dir', dataDir, '--json']);
    expect(JSON.parse(list.stdout).policies).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: 'authz', current: version })]),
    );
    const show = await camOs(['policy', 'show', 'authz', '--data-dir', dataDir]);
    expect(show.stdout).toMatch(/via the CLI/);
  });

  it('component loads are audited; after stop, `cam-os audit verify` passes and detects a modified entry', async () => {
    if (k.loaded.length > 0) {
      const loads = k.running.audit.recent(100, { kind: 'load' }).map((e) => e.subject);
      expect(loads).toEqual(expect.arrayContaining(k.loaded.map((l) => l.name)));
    }
    await k.stop();
    stopped = true;
    const ok = await camOs(['audit', 'verify', '--data-dir', dataDir, '--json']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const r = JSON.parse(ok.stdout);
    expect(r).toMatchObject({ ok: true, unsignedTail: 0 });
    expect(r.checkpoints).toBeGreaterThan(0);

    const file = join(dataDir, 'audit', 'audit.jsonl');
    const lines = readFileSync(file, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes('"kind":"policy-deny"'));
    const seq = JSON.parse(lines[i]!).seq as number;
    lines[i] = lines[i]!.replace('"actor":"agent-b"', '"actor":"agent-x"');
    writeFileSync(file, lines.join('\n'));
    const bad = await camOs(['audit', 'verify', '--data-dir', dataDir]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(
      new RegExp(`TAMPERED OR DAMAGED at entry ${seq}: entry ${seq}: its hash does not match its contents`),
    );
  });
});

describe('policy with authenticated agents (JWT on loopback)', () => {
  let dir: string;
  let ak: TestKernel;
  let client: SpecClient;
  const md = (token: string) => {
    const m = new grpc.Metadata();
    m.set('authorization', `Bearer ${token}`);
    return m;
  };
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cam-policy-auth-'));
    const key = ensureSigningKey(dir);
    tokens.a = (await issueToken(key, { agentId: 'agent-a', scopes: defaultScopes('agent-a') })).token;
    tokens.ops = (await issueToken(key, { agentId: 'ops', scopes: ['group:*'] })).token;
    ak = await startTestKernel({
      dataDir: dir,
      system: false,
      auth: { ...developmentAuth(), mode: 'authenticated', jwtPublicKey: key.publicKey },
    });
    client = new SpecClient(ak.address);
  });
  afterAll(async () => {
    client?.close();
    await ak?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the default policy lets only administrators change policies; agents see only their own decisions', async () => {
    const data = rules(['allow', '*', '*', '*', '*', '*', 'open']);
    const refused = await client.call(
      'PolicyUpdate',
      { policy_id: 'authz', policy_data: data },
      md(tokens.a!),
    );
    expect(refused).toMatchObject({ ok: false, code: PERMISSION_DENIED });
    expect(refused.ok ? '' : refused.message).toMatch(
      /policy 'authz' v1 denies 'agent-a'.*only administrators may change policies/,
    );
    const [deny] = ak.running.audit.recent(1, { kind: 'policy-deny' });
    expect(deny).toMatchObject({
      actor: 'agent-a',
      action: 'PolicyUpdate',
      inputs: { role: 'agent', mode: 'authenticated' },
    });

    const done = await client.call(
      'PolicyUpdate',
      { policy_id: 'authz', policy_data: data },
      md(tokens.ops!),
    );
    expect(done).toMatchObject({ ok: true, res: { version: '2' } });
    const [install] = ak.running.audit.recent(1, { kind: 'install' });

    // agent-a may have its own denial explained, not the operator's install.
    const own = await client.call('ExplainAction', { action_id: String(deny!.seq) }, md(tokens.a!));
    expect(own.ok ? own.res.explanation : own).toMatch(/the policy denied 'agent-a' PolicyUpdate/);
    const other = await client.call('ExplainAction', { action_id: String(install!.seq) }, md(tokens.a!));
    expect(other).toMatchObject({ ok: false, code: PERMISSION_DENIED });
    const byOps = await client.call(
      'ExplainAction',
      { action_id: `${install!.seq}?level=brief` },
      md(tokens.ops!),
    );
    expect(byOps.ok ? byOps.res.explanation : byOps).toMatch(
      /install of 'policy:authz' by 'ops': installed version 2/,
    );
  });

  it('a deny-everything policy cannot lock administrators out of replacing it', async () => {
    const lockdown = rules(['deny', '*', '*', '*', '*', '*', 'maintenance lockdown']);
    expect(
      await client.call('PolicyUpdate', { policy_id: 'authz', policy_data: lockdown }, md(tokens.ops!)),
    ).toMatchObject({ ok: true });
    const refused = await client.call('HealthCheck', {}, md(tokens.ops!));
    expect(refused).toMatchObject({ ok: false, code: PERMISSION_DENIED });
    expect(refused.ok ? '' : refused.message).toMatch(/maintenance lockdown/);
    const reopen = rules(['allow', '*', '*', '*', '*', '*', 'open again']);
    expect(
      await client.call('PolicyUpdate', { policy_id: 'authz', policy_data: reopen }, md(tokens.ops!)),
    ).toMatchObject({ ok: true });
    expect(await client.call('HealthCheck', {}, md(tokens.a!))).toMatchObject({ ok: true });
  });
});

describe.skipIf(!runTpmSuites())('TPM-signed audit checkpoints (swtpm)', () => {
  let swtpm: Swtpm;
  beforeAll(async () => {
    const s = await startSwtpm();
    if (!s) throw new Error('swtpm vanished between the check and the start');
    swtpm = s;
  });
  afterAll(async () => {
    await swtpm?.stop();
  });

  it('signs checkpoints with the TPM key as well as the audit key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cam-policy-tpm-'));
    try {
      const running = await startKernel(
        {
          dataDir: dir,
          listen: '127.0.0.1:0',
          kv: { backend: 'embedded' },
          tpm: swtpm.tcti,
          devMode: false,
          allowedImports: DEFAULT_ALLOWED_IMPORTS,
        },
        gatewayServices({}),
      );
      expect(running.tpm.tpm, running.tpm.reason).toBeDefined();
      const client = new SpecClient(running.address);
      await client.call('QueryPolicy', { caller_id: 'agent-a', context: { syscall: 'Arbitrate' } });
      client.close();
      await running.stop();
      const r = await camOs(['audit', 'verify', '--data-dir', dir, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, tpmSigned: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
