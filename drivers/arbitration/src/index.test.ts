/**
 * The arbitration component as a real component: built by the SDK pipeline (cached), loaded into a real
 * Kernel with the host interfaces over an embedded KvStore, and driven through `kernel.call` only.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KernelError } from '@cam-os/host/errors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComponentHarness } from '../../../sdk/src/build/harness.js';
import { type BuildResult, buildComponent } from '../../../sdk/src/build/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ARB = 'cam:kernel/arbitration';
const LIFE = 'cam:kernel/lifecycle';
const T0 = 1_800_000_000_000;

interface Agent {
  id: string;
  capabilities: string[];
  metadata: Array<[string, string]>;
  load: number;
  performance: number;
  trust: number;
  registeredAtMs: bigint;
  updatedAtMs: bigint;
  tpmIdentity?: { keyId: string; certificateChain: Uint8Array[] };
}

interface Result {
  taskId: string;
  assignedAgent: string;
  provider: string;
  confidence: number;
  reasoning: string;
  traceId: string;
  timestampMs: bigint;
  candidates: Array<{ agentId: string; score: number; capabilityMatch: number }>;
  tpmProof?: unknown;
}

let outDir: string;
let built: BuildResult;
let h: ComponentHarness;

const call = <T = unknown>(fn: string, ...args: unknown[]) => h.call<T>('arbitration', ARB, fn, ...args);

function tpm(keyId: string) {
  return {
    keyId,
    certificateChain: [new Uint8Array([0x30, 0x82, 1, 2, 3])],
    attestationData: new Uint8Array([9, 9]),
    algorithm: 'ecdsa-p256-sha256',
    createdAtMs: BigInt(T0),
    expiresAtMs: undefined,
    attributes: [['org', 'cam']],
  };
}

function reg(agentId: string, capabilities: string[], extra: Record<string, unknown> = {}) {
  return {
    agentId,
    capabilities,
    metadata: [['provider', `${agentId}-inc`]],
    tpmIdentity: undefined,
    ...extra,
  };
}

function task(id: string, requirements: string[], extra: Record<string, unknown> = {}) {
  return {
    id,
    description: `task ${id}`,
    requirements,
    metadata: [],
    priority: 50,
    deadline: undefined,
    taskType: 'analysis',
    agentId: undefined,
    dependsOn: [],
    tpmIdentity: undefined,
    ...extra,
  };
}

function request(t: ReturnType<typeof task>) {
  return {
    task: t,
    policyId: undefined,
    context: [['origin', 'test']],
    caller: { id: 'tester', tpmIdentity: undefined },
  };
}

async function failure(p: Promise<unknown>): Promise<KernelError> {
  const e = await p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KernelError);
  return e as KernelError;
}

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'cam-arb-build-'));
  built = await buildComponent({
    entry: join(ROOT, 'drivers/arbitration/src/index.ts'),
    world: 'arbitration-component',
    outDir,
    cacheDir: join(ROOT, 'drivers/.cache'),
    name: 'arbitration',
  });
  h = await ComponentHarness.start({ startTimeMs: T0 });
  await h.load({ name: 'arbitration', wasmPath: built.wasmPath, imports: built.imports });
}, 180_000);

afterAll(async () => {
  await h?.stop();
  await rm(outDir, { recursive: true, force: true });
});

describe('agent registry', () => {
  it('registers agents with defaults, and binds a TPM identity with higher trust', async () => {
    expect(built.imports).toEqual(['cam:kernel/clock@0.1.0', 'cam:kernel/kv@0.1.0', 'cam:kernel/log@0.1.0']);
    const plain = await call<Agent>('register-agent', reg('alpha', ['gpu', 'llm', 'gpu']));
    expect(plain).toMatchObject({
      id: 'alpha',
      capabilities: ['gpu', 'llm'],
      load: 0,
      performance: 0.5,
      trust: 0.5,
    });
    expect(plain.registeredAtMs).toBe(BigInt(T0));
    const bound = await call<Agent>('register-agent', reg('bravo', ['gpu'], { tpmIdentity: tpm('key-b') }));
    expect(bound.trust).toBe(0.7);
    expect(bound.tpmIdentity?.keyId).toBe('key-b');
    expect(bound.tpmIdentity?.certificateChain).toEqual([new Uint8Array([0x30, 0x82, 1, 2, 3])]);
  });

  it('keeps measurements across re-registration and refuses a different or missing TPM key', async () => {
    await call('update-agent', { agentId: 'alpha', load: 0.3, performance: 0.9, trust: undefined });
    h.clock.advance(1000);
    const again = await call<Agent>('register-agent', reg('alpha', ['gpu', 'llm', 'vision']));
    expect(again).toMatchObject({
      capabilities: ['gpu', 'llm', 'vision'],
      load: 0.3,
      performance: 0.9,
      trust: 0.5,
    });
    expect(again.updatedAtMs).toBe(BigInt(T0 + 1000));
    expect(again.registeredAtMs).toBe(BigInt(T0));
    const other = await failure(call('register-agent', reg('bravo', ['gpu'], { tpmIdentity: tpm('key-x') })));
    expect(other.status).toBe('PERMISSION_DENIED');
    expect(other.message).toContain('key-b');
    const none = await failure(call('register-agent', reg('bravo', ['gpu'])));
    expect(none.status).toBe('PERMISSION_DENIED');
  });

  it('validates updates and registrations', async () => {
    expect((await failure(call('update-agent', { agentId: 'ghost', load: 0.1 }))).status).toBe('NOT_FOUND');
    const high = await failure(call('update-agent', { agentId: 'alpha', load: 1.5 }));
    expect(high.status).toBe('INVALID_ARGUMENT');
    expect(high.message).toContain('load');
    expect((await failure(call('update-agent', { agentId: 'alpha', trust: Number.NaN }))).status).toBe(
      'INVALID_ARGUMENT',
    );
    expect((await failure(call('register-agent', reg('', ['gpu'])))).status).toBe('INVALID_ARGUMENT');
    expect((await failure(call('register-agent', reg('charlie', ['gpu', ''])))).status).toBe(
      'INVALID_ARGUMENT',
    );
    expect((await failure(call('get-agent', 'ghost'))).status).toBe('NOT_FOUND');
  });

  it('lists agents by id and stores them under its own kv partition', async () => {
    await call('register-agent', reg('aardvark', ['cpu']));
    const list = await call<Agent[]>('list-agents');
    expect(list.map((a) => a.id)).toEqual(['aardvark', 'alpha', 'bravo']);
    const stored = await h.kv.scan('arbitration/agents', { limit: 10 });
    expect(stored.map((e) => e.key)).toEqual(['aardvark', 'alpha', 'bravo']);
  });
});

describe('arbitration', () => {
  let traceId: string;

  it('picks the best capable agent, explains why, and records the decision', async () => {
    await call('update-agent', { agentId: 'bravo', load: 0.1, performance: 0.6, trust: undefined });
    const r = await call<Result>('arbitrate', request(task('t1', ['gpu'])));
    // alpha: 0.4*0.9 + 0.35*0.7 + 0.25*0.5 = 0.73; bravo: 0.4*0.6 + 0.35*0.9 + 0.25*0.7 = 0.73 -> tie on score
    expect(r.candidates.map((c) => c.agentId)).toEqual(['bravo', 'alpha']);
    expect(r.assignedAgent).toBe('bravo');
    expect(r.provider).toBe('bravo-inc');
    expect(r.reasoning).toContain('assigned bravo');
    expect(r.reasoning).toContain('ahead of alpha');
    expect(r.confidence).toBeGreaterThan(0);
    expect(r.confidence).toBeLessThanOrEqual(1);
    expect(r.timestampMs).toBe(BigInt(T0 + 1000));
    expect(r.tpmProof).toBeUndefined();
    traceId = r.traceId;
    const ex = await call<{ explanation: string; confidence: number; evidence: string[] }>(
      'explain',
      traceId,
    );
    expect(ex.explanation).toBe(`task t1: ${r.reasoning}`);
    expect(ex.confidence).toBe(r.confidence);
    expect(ex.evidence).toContain('task requires [gpu]');
    expect(ex.evidence).toContain('requested by tester');
  });

  it('skips agents above 0.9 load and fails clearly when no agent can take the task', async () => {
    await call('update-agent', { agentId: 'bravo', load: 0.95 });
    const r = await call<Result>('arbitrate', request(task('t2', ['gpu'])));
    expect(r.assignedAgent).toBe('alpha');
    expect(r.reasoning).toContain('excluded above 0.9 load: bravo 0.95');
    await call('update-agent', { agentId: 'alpha', load: 0.99 });
    const busy = await failure(call('arbitrate', request(task('t3', ['gpu']))));
    expect(busy.status).toBe('RESOURCE_EXHAUSTED');
    const nobody = await failure(call('arbitrate', request(task('t4', ['quantum']))));
    expect(nobody.status).toBe('FAILED_PRECONDITION');
    expect(nobody.message).toContain('no registered agent offers every requirement [quantum]');
    const bad = await failure(call('arbitrate', request(task('t5', ['gpu'], { priority: 101 }))));
    expect(bad.status).toBe('INVALID_ARGUMENT');
    expect((await failure(call('explain', 'arb-999999'))).status).toBe('NOT_FOUND');
    await call('update-agent', { agentId: 'alpha', load: 0.3 });
    await call('update-agent', { agentId: 'bravo', load: 0.1 });
  });

  it('commits and rolls back tasks with a durable task log', async () => {
    const c1 = await call<string>('commit', task('build', ['gpu']), 'alpha');
    expect(c1).toMatch(/^commit-\d+$/);
    expect((await failure(call('commit', task('build', ['gpu']), 'bravo'))).status).toBe('ALREADY_EXISTS');
    expect((await failure(call('commit', task('x', []), 'ghost'))).status).toBe('NOT_FOUND');
    const lacks = await failure(call('commit', task('y', ['cpu']), 'alpha'));
    expect(lacks.status).toBe('FAILED_PRECONDITION');
    expect(lacks.message).toContain('lacks cpu');
    const dep = await failure(call('commit', task('deploy', ['gpu'], { dependsOn: ['test'] }), 'alpha'));
    expect(dep.message).toBe('task deploy depends on test, which is not committed');
    await call('commit', task('deploy', ['gpu'], { dependsOn: ['build'] }), 'bravo');

    h.clock.advance(5000);
    await call('rollback', 'build', 'tests failed');
    expect((await failure(call('rollback', 'build', 'again'))).status).toBe('NOT_FOUND');
    const ex = await call<{ explanation: string; evidence: string[] }>('explain', c1);
    expect(ex.explanation).toContain('task build was committed to agent alpha');
    expect(ex.evidence[1]).toContain('tests failed');
    const c2 = await call<string>('commit', task('build', ['gpu']), 'alpha');
    expect(c2).not.toBe(c1);

    const logEntries = await h.kv.scan('arbitration/tasks', { prefix: 'l/', limit: 100 });
    const kinds = logEntries.map(
      (e) => JSON.parse(Buffer.from(e.value).toString()) as { kind: string; taskId: string },
    );
    expect(kinds.map((k) => `${k.kind}:${k.taskId}`)).toEqual([
      'commit:build',
      'commit:deploy',
      'rollback:build',
      'commit:build',
    ]);
  });
});

describe('isolation and hot-swap', () => {
  it('gives another component its own registry', async () => {
    await h.load({ name: 'arbitration-b', wasmPath: built.wasmPath, imports: built.imports });
    expect(await h.kernel.call('arbitration-b', ARB, 'list-agents', [])).toEqual([]);
    expect((await failure(h.kernel.call('arbitration-b', ARB, 'explain', ['arb-1']))).status).toBe(
      'NOT_FOUND',
    );
    await h.kernel.unload('arbitration-b');
  });

  it('moves to a new build with registry, decisions and sequence numbers intact', async () => {
    const before = await call<Agent[]>('list-agents');
    const state = await h.call<Uint8Array>('arbitration', LIFE, 'export-state');
    expect(JSON.parse(Buffer.from(state).toString())).toMatchObject({ format: 1 });
    const rec = await h.kernel.swap('arbitration', {
      bytes: await readFile(built.wasmPath),
      imports: built.imports,
      memoryMaxPages: 2048,
      version: '0.1.1',
    });
    expect(rec.result).toBe('swapped');
    expect(await call('list-agents')).toEqual(before);
    const ex = await call<{ explanation: string }>('explain', 'arb-1');
    expect(ex.explanation).toContain('task t1');
    const next = await call<Result>('arbitrate', request(task('t9', ['gpu'])));
    expect(next.traceId).toBe('arb-3');
    expect((await failure(h.call('arbitration', LIFE, 'import-state', new Uint8Array([0xff])))).status).toBe(
      'INVALID_ARGUMENT',
    );
  });

  it('traps (and recovers) on a value that does not match the WIT type', async () => {
    await h.load({ name: 'arbitration-c', wasmPath: built.wasmPath, imports: built.imports });
    const e = await failure(h.kernel.call('arbitration-c', ARB, 'get-agent', [42]));
    expect(e.code).toBe('KERNEL_ERR_COMPONENT_TRAP');
    expect(await h.kernel.call('arbitration-c', ARB, 'list-agents', [])).toEqual([]);
    await h.kernel.unload('arbitration-c');
  });
});
