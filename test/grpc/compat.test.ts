/**
 * (a) CAM-OS wire compatibility: a client that knows only the spec calls all 20 methods of a kernel
 * started with startKernel on a free loopback port. Backed methods must do real work; methods whose
 * component is not loaded (or whose part is not delivered yet) must answer UNIMPLEMENTED naming it.
 */
import { createHash } from 'node:crypto';
import * as protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTO_ROOT } from '../../host/src/server/server.js';
import { type SystemName, startTestKernel, type TestKernel } from './harness.js';
import { type Outcome, SPEC_PROTO, SpecClient } from './spec-client.js';

const UNIMPLEMENTED = 12;
const called = new Set<string>();
let k: TestKernel;
let c: SpecClient;

const has = (name: SystemName) => k.loaded.some((l) => l.name === name);

async function call(method: string, req: Record<string, unknown>): Promise<Outcome> {
  called.add(method);
  return c.call(method, { caller_id: 'agent-a', ...req });
}

function expectOk(o: Outcome): Record<string, unknown> {
  if (!o.ok) throw new Error(`expected success, got code ${o.code}: ${o.message}`);
  return o.res;
}

function expectUnimplemented(o: Outcome, naming: string | RegExp): void {
  expect(o.ok).toBe(false);
  if (o.ok) return;
  expect(o.code).toBe(UNIMPLEMENTED);
  expect(o.message).toMatch(naming);
}

beforeAll(async () => {
  k = await startTestKernel();
  c = new SpecClient(k.address);
  // Visible in the test log: which components were real, built from source, fixtures, or missing.
  console.info(
    `system components: ${k.loaded.map((l) => `${l.name} (${l.origin})`).join(', ') || 'none'}; missing: ${
      k.missing.map((m) => `${m.name} (${m.why})`).join('; ') || 'none'
    }`,
  );
});

afterAll(async () => {
  c?.close();
  await k?.stop();
});

describe('the project proto matches the spec', () => {
  it('has the same services, methods, messages, field numbers, names and types as the spec fixture', () => {
    const spec = protobuf.loadSync(SPEC_PROTO);
    spec.resolveAll();
    const ours = protobuf.loadSync(`${PROTO_ROOT}/cam_syscall.proto`);
    ours.resolveAll();
    const shape = (root: protobuf.Root) => {
      const ns = root.lookup('cam.syscall') as protobuf.Namespace;
      const out: Record<string, unknown> = {};
      for (const t of ns.nestedArray) {
        if (t instanceof protobuf.Type) {
          out[t.name] = t.fieldsArray.map((f) => [
            f.id,
            f.name,
            f.type,
            f.repeated,
            f instanceof protobuf.MapField,
          ]);
        } else if (t instanceof protobuf.Service) {
          out[t.name] = t.methodsArray.map((m) => [m.name, m.requestType, m.responseType, !!m.requestStream]);
        } else if (t instanceof protobuf.Enum) {
          out[t.name] = t.values;
        }
      }
      return out;
    };
    expect(shape(ours)).toEqual(shape(spec));
  });
});

describe('every SyscallService method over the wire', () => {
  it('HealthCheck reports the kernel and names what is missing', async () => {
    const res = expectOk(await call('HealthCheck', { detailed: true }));
    expect(['serving', 'degraded']).toContain(res.status);
    const components = res.components as Record<string, string>;
    for (const m of k.missing) expect(components[`service.${m.name}`]).toMatch(/^missing: /);
    // The security syscalls are not wired yet, so the kernel cannot claim to be fully serving.
    expect(components['syscall.TmpSign']).toMatch(/unavailable/);
    expect(res.status).toBe('degraded');
    expect(Number(res.timestamp)).toBeGreaterThan(1.7e9);
  });

  it('EmitTrace records a span that can be read back; a bad id is INVALID_ARGUMENT', async () => {
    expectOk(
      await call('EmitTrace', {
        trace_id: 'abc123',
        span_id: 'de01',
        operation: 'plan',
        timestamp: Date.now(),
        duration: 1_500_000,
        tags: { step: '1' },
      }),
    );
    const spans = k.gateway.env.telemetry.listSpans('abc123');
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({
      spanId: 'de01',
      operation: 'plan',
      durationNs: 1_500_000,
      callerId: 'agent-a',
    });
    const bad = await call('EmitTrace', { trace_id: 'not hex', span_id: 'de01', operation: 'x' });
    expect(bad).toMatchObject({ ok: false, code: 3 });
  });

  it('EmitMetric records samples and series; a non-finite value is INVALID_ARGUMENT', async () => {
    expectOk(
      await call('EmitMetric', { name: 'agent.tokens', value: 12.5, unit: '1', tags: { model: 'm' } }),
    );
    expectOk(await call('EmitMetric', { name: 'agent.tokens', value: 7.5, unit: '1', tags: { model: 'm' } }));
    const [series] = k.gateway.env.telemetry.listSeries('agent.tokens');
    expect(series).toMatchObject({ count: 2, sum: 20, min: 7.5, max: 12.5, last: 7.5 });
    expect(await call('EmitMetric', { name: 'agent.tokens', value: Number.NaN })).toMatchObject({
      ok: false,
      code: 3,
    });
    expect(await call('EmitMetric', { name: 'bad name!', value: 1 })).toMatchObject({ ok: false, code: 3 });
  });

  it('SystemTuning applies weights through the scheduler (or is UNIMPLEMENTED without one)', async () => {
    const o = await call('SystemTuning', {
      tuning_profile: 'latency',
      parameters: { 'scheduler.weight.trust': '0.15' },
    });
    if (!has('scheduler')) return expectUnimplemented(o, /cam:kernel\/scheduler/);
    const applied = expectOk(o).applied_settings as Record<string, string>;
    expect(applied.tuning_profile).toBe('latency');
    const dims = ['urgency', 'importance', 'efficiency', 'energy', 'trust'].map((d) =>
      Number(applied[`scheduler.weight.${d}`]),
    );
    expect(dims.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    // latency: 0.6 / 0.2 / 0.1 / 0.05 with trust raised to 0.15, normalised by the scheduler.
    expect(dims[0]! / dims[4]!).toBeCloseTo(0.6 / 0.15, 6);
    const bad = await call('SystemTuning', { parameters: { 'scheduler.weight.speed': '1' } });
    expect(bad).toMatchObject({ ok: false, code: 3 });
  });

  it('the context syscalls version, hash, snapshot and restore (or are UNIMPLEMENTED without memory)', async () => {
    const w1 = await call('ContextWrite', {
      namespace: 'agent-a',
      key: 'plan',
      data: Buffer.from('v1'),
      metadata: { description: 'first' },
    });
    if (!has('memory')) {
      expectUnimplemented(w1, /cam:kernel\/memory/);
      for (const m of [
        'ContextRead',
        'ContextSnapshot',
        'SnapshotContext',
        'ContextRestore',
        'ContextVersionList',
      ]) {
        const req = m === 'ContextRestore' ? { snapshot_id: 'x' } : { namespace: 'agent-a', key: 'plan' };
        expectUnimplemented(await call(m, req), /cam:kernel\/memory/);
      }
      return;
    }
    const r1 = expectOk(w1);
    expect(Number(r1.version)).toBe(1);
    expect(r1.hash).toBe(createHash('sha256').update('v1').digest('hex'));
    expect(r1.hash).toMatch(/^[0-9a-f]{64}$/);
    const snap = expectOk(await call('ContextSnapshot', { namespace: 'agent-a', description: 'before v2' }));
    expect(snap.snapshot_id).toMatch(/\S/);
    const alias = expectOk(await call('SnapshotContext', { namespace: 'agent-a', description: 'alias' }));
    expect(alias.snapshot_id).not.toBe(snap.snapshot_id);
    expect(
      Number(
        expectOk(await call('ContextWrite', { namespace: 'agent-a', key: 'plan', data: Buffer.from('v2') }))
          .version,
      ),
    ).toBe(2);

    const latest = expectOk(await call('ContextRead', { namespace: 'agent-a', key: 'plan', version: 0 }));
    expect(Buffer.from(latest.data as Uint8Array).toString()).toBe('v2');
    expect(Number(latest.version)).toBe(2);
    const first = expectOk(await call('ContextRead', { namespace: 'agent-a', key: 'plan', version: 1 }));
    expect(Buffer.from(first.data as Uint8Array).toString()).toBe('v1');
    expect(first.hash).toBe(r1.hash);

    const list = expectOk(await call('ContextVersionList', { namespace: 'agent-a', key: 'plan', limit: 1 }));
    expect((list.versions as unknown[]).length).toBe(1);
    expect(list.has_more).toBe(true);
    expect(list.next_token).toBe('1');
    expect((list.versions as Array<{ author: string; description: string }>)[0]).toMatchObject({
      author: 'agent-a',
      description: 'first',
    });

    const refused = await call('ContextRestore', { snapshot_id: snap.snapshot_id, force: false });
    expect(refused).toMatchObject({ ok: false, code: 9 });
    const restored = expectOk(await call('ContextRestore', { snapshot_id: snap.snapshot_id, force: true }));
    expect(restored).toMatchObject({ namespace: 'agent-a' });
    expect(Number(restored.restored_items)).toBe(1);
    const back = expectOk(await call('ContextRead', { namespace: 'agent-a', key: 'plan' }));
    expect(Buffer.from(back.data as Uint8Array).toString()).toBe('v1');
    expect(Number(back.version)).toBe(3);

    expect(await call('ContextRead', { namespace: 'agent-a', key: 'nope' })).toMatchObject({
      ok: false,
      code: 5,
    });
    expect(await call('ContextRead', { namespace: 'bad ns', key: 'k' })).toMatchObject({
      ok: false,
      code: 3,
    });
    expect(await call('ContextRestore', { snapshot_id: 'forged~x~y' })).toMatchObject({ ok: false, code: 5 });
    const big = await call('ContextWrite', {
      namespace: 'agent-a',
      key: 'big',
      data: Buffer.alloc(4 * 1024 * 1024 + 1),
    });
    expect(big).toMatchObject({ ok: false, code: 8 });
  });

  it('the task syscalls register, arbitrate, commit and roll back (or are UNIMPLEMENTED without arbitration)', async () => {
    const reg = await call('AgentRegister', {
      agent_id: 'agent-a',
      capabilities: ['plan', 'code'],
      metadata: { provider: 'acme' },
    });
    if (!has('arbitration')) {
      expectUnimplemented(reg, /cam:kernel\/arbitration/);
      for (const m of ['Arbitrate', 'CommitTask', 'TaskRollback']) {
        expectUnimplemented(
          await call(m, { task: { id: 't1' }, agent_id: 'agent-a', task_id: 't1' }),
          /cam:kernel\/arbitration/,
        );
      }
      return;
    }
    expect(expectOk(reg).agent_id).toBe('agent-a');
    expectOk(await call('AgentRegister', { agent_id: 'agent-b', capabilities: ['plan'] }));
    const task = {
      id: 't1',
      description: 'write code',
      requirements: ['code'],
      priority: 70,
      type: 'TASK_TYPE_ANALYSIS',
    };
    const arb = expectOk(await call('Arbitrate', { task }));
    const result = arb.result as Record<string, unknown>;
    // Only agent-a offers 'code'.
    expect(result).toMatchObject({ task_id: 't1', assigned_agent: 'agent-a', provider: 'acme' });
    expect(Number(result.confidence)).toBeGreaterThan(0);
    expect(result.trace_id).toMatch(/\S/);
    const noOne = await call('Arbitrate', { task: { ...task, id: 't2', requirements: ['fly'] } });
    expect(noOne).toMatchObject({ ok: false, code: 9 });
    // A policy_id names a policy that must allow the arbitration; an unknown one is NOT_FOUND.
    expect(await call('Arbitrate', { task, policy_id: 'strict' })).toMatchObject({ ok: false, code: 5 });

    const commit = expectOk(await call('CommitTask', { task, agent_id: 'agent-a' }));
    expect(commit.task_id).toBe('t1');
    expect(commit.commit_id).toMatch(/\S/);
    expect(await call('CommitTask', { task, agent_id: 'agent-a' })).toMatchObject({ ok: false, code: 6 });
    if (has('memory')) {
      // A context write made for the task is undone by the rollback (memory.revert-task).
      expectOk(
        await call('ContextWrite', { namespace: 'agent-a', key: 'task-out', data: Buffer.from('before') }),
      );
      expectOk(
        await call('ContextWrite', {
          namespace: 'agent-a',
          key: 'task-out',
          data: Buffer.from('by t1'),
          metadata: { 'cam.task-id': 't1' },
        }),
      );
    }
    expect(expectOk(await call('TaskRollback', { task_id: 't1', reason: 'changed plan' })).task_id).toBe(
      't1',
    );
    if (has('memory')) {
      const after = expectOk(await call('ContextRead', { namespace: 'agent-a', key: 'task-out' }));
      expect(Buffer.from(after.data as Uint8Array).toString()).toBe('before');
      expect(Number(after.version)).toBe(3);
    }
    expect(await call('TaskRollback', { task_id: 't1', reason: 'again' })).toMatchObject({
      ok: false,
      code: 5,
    });
    expect(await call('Arbitrate', { task: { ...task, priority: 101 } })).toMatchObject({
      ok: false,
      code: 3,
    });
  });

  it('QueryPolicy, PolicyUpdate and ExplainAction answer from the policy engine and the audit log', async () => {
    // The built-in policy: a development-mode caller on loopback has no scope restriction.
    const q = expectOk(await call('QueryPolicy', { context: { syscall: 'ContextWrite', group: 'context' } }));
    expect(q.allowed).toBe(true);
    expect(q.reason).toMatch(/rule 0 of policy 'authz'/);
    // A malformed module is refused with INVALID_ARGUMENT naming what was wrong; nothing is installed.
    const bad = await call('PolicyUpdate', {
      policy_id: 'p',
      policy_data: Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0xff]),
    });
    expect(bad).toMatchObject({ ok: false, code: 3 });
    expect(bad.ok ? '' : bad.message).toMatch(/policy\.wasm is not a valid WebAssembly module/);
    expect(await call('QueryPolicy', { policy_id: 'p', query: 'context.write' })).toMatchObject({
      ok: false,
      code: 5,
    });
    const rules = {
      rules: [
        ['deny', '*', '*', 'agent-b', 'context', '*', 'agent-b may not touch context'],
        ['deny', '*', '*', 'agent-a', 'tasks', 'Arbitrate', 'agent-a may not arbitrate under p'],
        ['allow', '*', '*', '*', '*', '*', 'everyone else may'],
      ],
    };
    const up = expectOk(
      await call('PolicyUpdate', { policy_id: 'p', policy_data: Buffer.from(JSON.stringify(rules)) }),
    );
    expect(up.policy_id).toBe('p');
    expect(Number(up.version)).toBe(1);
    const denied = expectOk(
      await call('QueryPolicy', { policy_id: 'p', context: { caller: 'agent-b', group: 'context' } }),
    );
    expect(denied).toMatchObject({ allowed: false });
    expect(denied.reason).toMatch(/agent-b may not touch context/);
    expect(
      expectOk(
        await call('QueryPolicy', { policy_id: 'p', context: { caller: 'agent-c', group: 'context' } }),
      ).allowed,
    ).toBe(true);
    // Arbitrate under policy p: the caller (agent-a) is denied before the arbitration component runs.
    if (has('arbitration')) {
      const refused = await call('Arbitrate', {
        task: { id: 't9', description: 'x', requirements: ['code'], priority: 1, type: 'TASK_TYPE_ANALYSIS' },
        policy_id: 'p',
      });
      expect(refused).toMatchObject({ ok: false, code: 7 });
      expect(refused.ok ? '' : refused.message).toMatch(/agent-a may not arbitrate under p/);
    }
    // ExplainAction: the arbitration of t1 (task test above) names the chosen agent and why.
    if (has('arbitration')) {
      const ex = expectOk(await call('ExplainAction', { action_id: 't1' }));
      expect(ex.explanation).toMatch(/assigned task 't1' to 'agent-a'/);
      expect(ex.explanation).toMatch(/Cause: \S/);
      // The candidates' scores come from the arbitration component's record of the decision.
      expect(ex.explanation).toMatch(/Scores \(highest first\): .*agent-a = 0\.\d+/);
      expect((ex.evidence as string[])[0]).toMatch(/arbitration .*subject=agent-a/);
      expect(Number(ex.confidence)).toBeGreaterThan(0);
      // The ArbitrationResult's trace_id finds the same decision.
      const entry = k.running.audit
        .recent(100, { kind: 'arbitration' })
        .find((e) => e.inputs?.taskId === 't1');
      const byTrace = expectOk(
        await call('ExplainAction', { trace_id: String(entry?.inputs?.arbitrationTraceId) }),
      );
      expect(byTrace.explanation).toBe(ex.explanation);
    }
    const audit = expectOk(await call('ExplainAction', { action_id: 'policy:p?level=audit' }));
    expect(audit.explanation).toMatch(/installed version 1/);
    expect(audit.explanation).toMatch(/Hash: sha256 [0-9a-f]{64}/);
    expect(await call('ExplainAction', { trace_id: 'no-such-trace' })).toMatchObject({ ok: false, code: 5 });
    expect(await call('ExplainAction', {})).toMatchObject({ ok: false, code: 3 });
  });

  it('the methods whose parts are delivered elsewhere answer UNIMPLEMENTED naming the part', async () => {
    expectUnimplemented(await call('TmpSign', { data: Buffer.from('x') }), /TPM-backed signing/);
    expectUnimplemented(
      await call('VerifyManifest', { manifest_data: Buffer.from('{}') }),
      /manifest verification/,
    );
    expectUnimplemented(await call('EstablishSecureChannel', { peer_id: 'p' }), /secure channels/);
  });

  it('called all 20 methods', () => {
    expect(called.size).toBe(20);
  });
});
